"""How far can the labelled data take a student? A learning curve and a pretrained ceiling.

    .venv/bin/python bench/ceiling.py                 # → bench/results/ceiling.{json,md}
    .venv/bin/python bench/ceiling.py --quick         # smoke run: tiny student, 2 epochs, MiniLM 1 step

Three measurements on the default build's split (the same held-out templates throughout):

1. Learning curve: the default build trained on a seeded share of the training source groups
   (--fractions; BuildConfig.train_fraction), each point a real `build_model`. A least-squares
   fit of accuracy against log2(source groups) says how many labelled sources the target would
   take if the trend held; learning curves flatten, so read it as a lower bound.
2. Pretrained ceiling: MiniLM-L6 (22M parameters, pretrained), every layer fine-tuned with the
   student's KD loss on the student's own training set (templates + augmented), scored on the
   same held-out templates. If it does no better than the student, the student's size is not
   what limits held-out accuracy: the labelled data is.
3. Teacher ambiguity: the probability the recorded LLM puts on its own top label, for the
   held-out Loghub templates (the seed corpus's hand labels are one-hot, so they are left out),
   on the ones the full-data student gets right and on the ones it misses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from machine import ContentionMeter, machine_info, training_run_setup  # noqa: E402

FRACTIONS = [0.125, 0.25, 0.5, 0.75, 1.0]
# Issue 11's targets: template split accuracy ≥ 0.85, component split (programs never seen) ≥ 0.80.
TARGETS = {"accuracy": 0.85, "component_accuracy": 0.80}
NOT_LOGHUB = ("k8s", "k8s-labels", "other")  # HeldOut sources that are not a Loghub system
# MiniLM, every layer trained: BERT fine-tuning's usual rate and a few epochs (11 min on 2 cores).
CEILING_ASSISTANT = {"epochs": 3, "frozen_layers": 0, "lr": 5e-5, "head_lr": 1e-3}
QUICK = {"base": {"student": {"dim": 32, "layers": 1, "heads": 2, "max_length": 32, "embed_dim": 384},
                  "train": {"epochs": 2}, "seed_lines_per_template": 2, "max_test_templates": 60},
         "fractions": [0.5, 1.0], "assistant": {"epochs": 1, "frozen_layers": 5}, "ceiling_texts": 64}


def curve_point(metrics: dict, fraction: float) -> dict:
    """One learning-curve row from a build's metrics.json."""
    ci = metrics["student_accuracy_ci"]["templates"]
    by_source = metrics["student_accuracy_by_source"]
    component = metrics.get("component_split", {}).get("student", {}).get("templates", {})  # absent: no split
    return {"fraction": fraction, "source_groups": metrics["training_examples"]["source_groups"],
            "templates": metrics["training_examples"]["templates"],
            "accuracy": metrics["student"]["templates"]["accuracy"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "macro_f1": metrics["student"]["templates"]["macro_f1"],
            "retention": metrics["retention"]["templates"]["accuracy"],
            "teacher_accuracy": metrics["teacher"]["templates"]["accuracy"],
            "accuracy_loghub": _pooled(by_source, lambda s: s not in NOT_LOGHUB),
            "accuracy_k8s_seed": _pooled(by_source, lambda s: s == "k8s"),
            "accuracy_k8s_labels": _pooled(by_source, lambda s: s == "k8s-labels"),
            "soft_agreement": metrics.get("soft_agreement"),
            "component_accuracy": component.get("accuracy"), "component_macro_f1": component.get("macro_f1"),
            "real_lines_accuracy": metrics.get("real_lines", {}).get("accuracy"),
            "build_seconds": metrics["build_seconds"]}


def _pooled(by_source: dict, keep) -> float | None:
    rows = [(v["accuracy"], v["templates"]) for source, v in by_source.items() if keep(source)]
    n = sum(t for _, t in rows)
    return round(sum(a * t for a, t in rows) / n, 4) if n else None


def log_linear_fit(points: list[dict], target: float) -> dict | None:
    """accuracy ≈ a + b·log2(source groups), least squares; the groups at which it reaches target."""
    import numpy as np

    xs = [math.log2(p["source_groups"]) for p in points]
    if len(set(xs)) < 2:
        return None
    slope, intercept = (float(c) for c in np.polyfit(xs, [p["accuracy"] for p in points], 1))
    fit = {"intercept": round(intercept, 4), "gain_per_doubling": round(slope, 4), "target_accuracy": target}
    if slope > 0:
        groups = 2 ** ((target - intercept) / slope)
        fit["source_groups_for_target"] = round(groups)
        fit["times_current"] = round(groups / max(p["source_groups"] for p in points), 1)
    return fit


def teacher_ambiguity(data, student_dir: Path) -> dict:
    """The recorded teacher's top-label probability on held-out templates that came with a soft label
    (the seed corpus's hand labels are one-hot), overall and where the student (`student_dir`, run
    through the runtime) misses or hits its label; and how often a miss is the teacher's second choice."""
    import numpy as np

    from service.classifier import Classifier

    rows = [t for t in data.test_templates if t.key in data.soft and "gold" not in t.meta]
    if not rows:
        return {"templates": 0}
    soft = np.stack([data.soft[t.key] for t in rows])
    predicted = Classifier.from_dir(student_dir, cache_size=0).student.predict_proba([t.key for t in rows]).argmax(1)
    top, hit = soft.max(axis=1), predicted == soft.argmax(axis=1)
    second = np.argsort(soft, axis=1)[:, -2]
    misses = ~hit
    return {"templates": len(rows), "mean_top_probability": round(float(top.mean()), 4),
            "share_top_below_0.7": round(float(np.mean(top < 0.7)), 4),
            "share_top_below_0.9": round(float(np.mean(top < 0.9)), 4),
            "student_hits": int(hit.sum()), "student_misses": int(misses.sum()),
            "mean_top_probability_on_hits": round(float(top[hit].mean()), 4) if hit.any() else None,
            "mean_top_probability_on_misses": round(float(top[misses].mean()), 4) if misses.any() else None,
            "misses_on_teachers_second_choice": int(np.sum(misses & (predicted == second)
                                                           & (soft[np.arange(len(rows)), predicted] > 0)))}


def pretrained_ceiling(data, cfg, assistant_overrides: dict, cache_dir: Path, limit: int | None) -> dict:
    """MiniLM-L6 fine-tuned (all layers) on the student's training set, scored on the held-out templates."""
    import numpy as np

    from training import pipeline
    from training.distill import assistant
    from training.distill.loop import TrainConfig
    from training.evaluation.metrics import classification_report, group_bootstrap_accuracy

    texts, probs = data.texts[:limit], np.stack(data.probs[:limit])
    tokenizer = pipeline.make_tokenizer(cfg, texts)
    settings = assistant.config_for(assistant_overrides, TrainConfig(**{"seed": cfg.seed, **cfg.train}),
                                    cfg.student.get("max_length", 64))
    model, info = assistant.load_or_fine_tune(cache_dir, tokenizer, texts, probs, len(data.taxonomy.labels),
                                              settings)
    held_out = data.held_out()
    logits, _ = assistant.run(model, tokenizer, held_out.keys, [], settings.max_length)
    scores = classification_report(held_out.gold, logits, held_out.labels)
    ci = group_bootstrap_accuracy(logits.argmax(axis=1) == held_out.gold, held_out.groups)
    return {"model": "all-MiniLM-L6-v2, every layer fine-tuned", "parameters": sum(p.numel() for p in model.parameters()),
            "settings": info["settings"], "texts": len(texts), "fine_tune_seconds": info.get("fine_tune_seconds"),
            "from_cache": info["from_cache"], "loss_history": info.get("loss_history"),
            "accuracy": round(scores["accuracy"], 4), "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "macro_f1": round(scores["macro_f1"], 4), "held_out_templates": len(held_out.keys)}


def markdown(result: dict) -> str:
    lines = [f"# Ceiling ({result['mode']}, seed {result['seed']}, {result['finished']})", "",
             "Held-out templates of the default split, scored against gold (recorded LLM on Loghub and k8s_labels, hand labels on "
             "the seed corpus). CI: 95%, bootstrap over held-out source groups.", "",
             "## Learning curve: the default build on a share of the training source groups", "",
             "| share | source groups | templates | template split acc (95% CI) | macro-F1 | soft | Loghub acc | "
             "k8s seed acc | k8s_labels acc | component split acc | comp. macro-F1 | real lines acc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["curve"]:
        lines.append(f"| {p['fraction']:g} | {p['source_groups']} | {p['templates']} | {p['accuracy']:.3f} "
                     f"({p['ci_low']:.2f}–{p['ci_high']:.2f}) | {p['macro_f1']:.3f} | {_fmt(p.get('soft_agreement'))} | "
                     f"{_fmt(p['accuracy_loghub'])} | {_fmt(p['accuracy_k8s_seed'])} | "
                     f"{_fmt(p.get('accuracy_k8s_labels'))} | {_fmt(p.get('component_accuracy'))} | "
                     f"{_fmt(p.get('component_macro_f1'))} | {_fmt(p.get('real_lines_accuracy'))} |")
    for name, fit in (("template split", result.get("fit")), ("component split", result.get("component_fit"))):
        if not fit:
            continue
        lines += ["", f"Fit ({name}): accuracy ≈ {fit['intercept']:.3f} + {fit['gain_per_doubling']:.3f}·log2(source "
                  "groups)."]
        if "source_groups_for_target" in fit:
            lines.append(f"At that rate {fit['target_accuracy']:.2f} takes ~{fit['source_groups_for_target']} labelled "
                         f"source groups, {fit['times_current']}× today's; learning curves flatten, so this is a "
                         "lower bound.")
    c = result.get("ceiling")
    if c:
        lines += ["", "## Pretrained ceiling", "",
                  f"{c['model']} ({c['parameters'] / 1e6:.1f}M parameters), {c['settings']['epochs']} epoch(s) on the "
                  f"student's {c['texts']} training texts: held-out acc **{c['accuracy']:.3f}** "
                  f"({c['ci_low']:.2f}–{c['ci_high']:.2f}), macro-F1 {c['macro_f1']:.3f}; the full-data student: "
                  f"{result['curve'][-1]['accuracy']:.3f}. Fine-tune {c['fine_tune_seconds']} s "
                  f"(cached: {c['from_cache']})."]
    a = result.get("teacher_ambiguity", {})
    if a.get("templates"):
        lines += ["", "## Teacher ambiguity", "",
                  f"On {a['templates']} held-out templates with a recorded soft label (Loghub, k8s_labels) "
                  f"the recorded LLM puts {a['mean_top_probability']:.3f} "
                  f"on its own top label on average; below 0.7 on {a['share_top_below_0.7']:.0%} of them, below 0.9 "
                  f"on {a['share_top_below_0.9']:.0%}. The student with the most data misses {a['student_misses']}: "
                  f"there the teacher's top label had {_fmt(a['mean_top_probability_on_misses'])} on average "
                  f"({_fmt(a['mean_top_probability_on_hits'])} on the {a['student_hits']} it gets right), and "
                  f"{a['misses_on_teachers_second_choice']} of the misses are the teacher's second choice."]
    contention = result["contention"]
    lines += ["", f"Machine: {result['machine']['cpu_model']}, {result['machine']['usable_cores']} cores, torch threads "
              f"{result['threads']}; other processes' share of CPU capacity "
              f"{contention.get('foreign_share_of_capacity')}; {result['seconds']:.0f} s in all.", ""]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny student, 2 epochs, a MiniLM step")
    parser.add_argument("--fractions", help=f"comma-separated shares of the training groups (default {FRACTIONS})")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the MiniLM fine-tune (11 min on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--work-dir", help="label store, MiniLM cache, artifacts (default: a temp dir)")
    parser.add_argument("--out", help="output prefix (default: bench/results/ceiling; --quick: in the work dir)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    work_dir = training_run_setup(args.threads, args.work_dir, "logdistill-ceiling-")
    from training import pipeline
    out = Path(args.out) if args.out else (work_dir / "ceiling" if args.quick else BENCH_DIR / "results" / "ceiling")
    out.parent.mkdir(parents=True, exist_ok=True)
    base = QUICK["base"] if args.quick else {}
    fractions = ([float(x) for x in args.fractions.split(",")] if args.fractions
                 else QUICK["fractions"] if args.quick else FRACTIONS)
    meter, started = ContentionMeter(), time.time()

    def config(**fields) -> "pipeline.BuildConfig":
        return pipeline.BuildConfig(**{**base, "label_store": str(work_dir / "labels.sqlite"), "seed": args.seed,
                                       "progress": args.progress, **fields})

    result = {"mode": "quick" if args.quick else "full", "seed": args.seed, "threads": args.threads, "base": base,
              "curve": []}

    def write() -> str:
        result.update({"seconds": round(time.time() - started, 1), "machine": machine_info(),
                       "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "contention": meter.result(), "work_dir": str(work_dir)})
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True))
        out.with_suffix(".md").write_text(markdown(result))
        return markdown(result)

    for fraction in sorted(fractions):
        print(f"[ceiling] learning curve: {fraction:g} of the training source groups", flush=True)
        metrics = pipeline.build_model(config(out_dir=str(work_dir / f"share-{fraction:g}"), train_fraction=fraction))
        result["curve"].append(curve_point(metrics, fraction))
        result["fit"] = log_linear_fit(result["curve"], TARGETS["accuracy"])
        component_points = [{**p, "accuracy": p["component_accuracy"]} for p in result["curve"]
                            if p["component_accuracy"] is not None]
        result["component_fit"] = log_linear_fit(component_points, TARGETS["component_accuracy"])
        print(f"[ceiling] {pipeline.summary_line(metrics)}", flush=True)
        write()

    data = pipeline.prepare_training_data(config())
    result["teacher_ambiguity"] = teacher_ambiguity(data, work_dir / f"share-{max(fractions):g}")
    if not args.no_ceiling:
        print("[ceiling] pretrained ceiling: fine-tuning MiniLM-L6, every layer", flush=True)
        overrides = QUICK["assistant"] if args.quick else CEILING_ASSISTANT
        result["ceiling"] = pretrained_ceiling(data, config(), overrides, work_dir / "assistant_cache",
                                               QUICK["ceiling_texts"] if args.quick else None)
    print(write())
    print(f"[ceiling] wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
