"""Ablation: what each piece of the distillation adds, one cumulative row at a time.

    .venv/bin/python bench/ablation.py                 # full: 5 builds → bench/results/ablation.{json,md}
    .venv/bin/python bench/ablation.py --quick         # smoke run: tiny student, 150 templates, 2 epochs
    .venv/bin/python bench/ablation.py --epochs 10     # fewer student epochs, the same for every row

Every row is a real `build_model` with the same seed, split and data; each row adds one setting
to the row above (ROWS; extend the list to add a row, e.g. LLM paraphrases as augmentation).
All rows share one label store and teacher-assistant cache in the work directory, so a teacher
labels each template once across rows. Scores are on held-out templates, against gold: the
recorded LLM's labels (Loghub) and hand labels (Kubernetes seed corpus).

Read the multi-teacher row with care: its "recorded" member IS the gold on Loghub templates,
so mixing in any other teacher can only move the teacher's own accuracy down; the row shows
what a second opinion does to the student, not a better teacher.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from machine import ContentionMeter, machine_info, training_run_setup  # noqa: E402


@dataclass
class Row:
    name: str
    adds: str                                     # what this row changes, in words (goes in the table)
    settings: dict = field(default_factory=dict)  # BuildConfig overrides on top of the row above ("train" merges)


MULTI_WEIGHTS = [0.7, 0.3]  # recorded LLM, embedding zero-shot: the LLM keeps the majority of the mass

ROWS: list[Row] = [
    Row("hard labels only", "λ=0 (CE on the teacher's top label), no augmentation",
        {"train": {"lam": 0.0}, "augment_variants": 0}),
    Row("+ soft labels", "λ=0.7, T=2 (KL to the teacher's distribution)", {"train": {"lam": 0.7}}),
    Row("+ augmentation", "4 rewrapped/resampled variants per template", {"augment_variants": 4}),
    # LLM paraphrases (another helper) slot in here as one more augmentation row.
    Row("+ intermediate layers", "β=1 cosine, student block 1↔MiniLM layer 3, 2↔6 (pooled)",
        {"train": {"hidden_beta": 1.0, "hidden_loss": "cosine"}}),
    Row("+ multi-teacher", f"recorded LLM + MiniLM zero-shot, weighted mean {MULTI_WEIGHTS}",
        {"teacher": "multi", "teachers": ["recorded", "embedding"], "teacher_weights": MULTI_WEIGHTS,
         "combine": "mean"}),
]

QUICK_BASE = {"max_train_templates": 150, "seed_lines_per_template": 2,
              "student": {"dim": 32, "layers": 2, "heads": 2, "max_length": 48, "embed_dim": 384},
              "train": {"epochs": 2}, "assistant": {"frozen_layers": 5}}


def merged(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) and key in ("train", "assistant") \
            else copy.deepcopy(value)
    return out


def cumulative(rows: list[Row], base: dict) -> list[dict]:
    """Each row's full overrides: the base, then every row's settings up to and including it."""
    settings, out = dict(base), []
    for row in rows:
        settings = merged(settings, row.settings)
        out.append(settings)
    return out


def row_figures(metrics: dict) -> dict:
    student, teacher = metrics["student"], metrics["teacher"]
    ci = metrics["student_accuracy_ci"]["templates"]
    figures = {"accuracy": student["templates"]["accuracy"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
               "macro_f1": student["templates"]["macro_f1"], "line_accuracy": student["lines"]["accuracy"],
               "agreement_with_teacher": metrics["agreement_with_teacher"]["templates"],
               "retention_accuracy": metrics["retention"]["templates"]["accuracy"],
               "teacher_accuracy": teacher["templates"]["accuracy"], "build_seconds": metrics["build_seconds"],
               "held_out_templates": metrics["held_out"]["templates"],
               "training_examples": metrics["training_examples"]}
    if "assistant" in metrics:
        figures["assistant"] = metrics["assistant"]
    if "teachers" in metrics:
        figures["teachers"] = metrics["teachers"]
    return figures


def markdown(result: dict) -> str:
    status = "" if result["complete"] else f", rows {[row['index'] for row in result['rows']]} of {len(ROWS)}"
    lines = [f"# Ablation ({result['mode']}, seed {result['seed']}, {result['finished']}{status})", "",
             "Held-out templates, scored against gold. Rows are cumulative. CI: 95%, group bootstrap. "
             f"Settings on top of the defaults for every row: {result['base'] or 'none'}.", "",
             "| row | adds | template acc (95% CI) | macro-F1 | line acc | agreement w/ teacher | retention | "
             "teacher acc | build s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        f = row["figures"]
        accuracy = f"{f['accuracy']:.3f} ({f['ci_low']:.3f}–{f['ci_high']:.3f})"
        lines.append(f"| {row['name']} | {row['adds']} | {accuracy} | "
                     f"{f['macro_f1']:.3f} | {f['line_accuracy']:.3f} | {f['agreement_with_teacher']:.3f} | "
                     f"{f['retention_accuracy']:.1%} | {f['teacher_accuracy']:.3f} | {f['build_seconds']:.0f} |")
    lines += ["", "Teacher acc is the teacher's own held-out accuracy; the recorded LLM is the gold on Loghub, "
              "so it is 1.0 by construction and the multi-teacher row can only lower it. Agreement w/ teacher "
              "is against that row's teacher (the combination in the multi-teacher row).", ""]
    for row in result["rows"]:
        f = row["figures"]
        if "assistant" in f:
            a = f["assistant"]
            lines.append(f"- {row['name']}: teacher-assistant held-out {a.get('held_out')}, fine-tuned on "
                         f"{a.get('texts')} texts in {a.get('fine_tune_seconds')} s (cached: {a.get('from_cache')}), "
                         f"targets for {a.get('texts_with_targets')} texts, layer map {a.get('layer_map')}")
        if "teachers" in f:
            t = f["teachers"]
            gold = {k: v["accuracy"] for k, v in t.get("accuracy_vs_gold", {}).items()}
            with_combined = {k: v["agreement"] for k, v in t["with_combined"].items()}
            lines.append(f"- {row['name']}: weights {t['weights']} ({t['combine']}); accuracy vs gold over all "
                         f"train + held-out templates with gold {gold}; agreement with the combination "
                         f"{with_combined}; coverage {t['coverage']}")
    contention = result["contention"]
    lines += ["", f"Machine: {result['machine']['usable_cores']} cores, torch threads {result['threads']}; "
              f"load average before {contention.get('load_avg_before')}, after {contention.get('load_avg_after')}, "
              f"other processes' share of CPU capacity {contention.get('foreign_share_of_capacity')}; "
              f"rows built in {result.get('processes', 1)} parallel process(es), so build seconds compare "
              "only roughly.", ""]
    return "\n".join(lines)


def run_ablation(rows: list[Row], base: dict, work_dir: Path, seed: int, progress: bool,
                 after_row=lambda results: None, only: set[int] | None = None) -> list[dict]:
    """Build the rows (1-based indices in `only`, default all) in order; after_row(results so far)
    runs after each, so partial results survive. Rows are independent builds: a row's settings
    are cumulative, not its model, so rows can run in separate processes and be merged (--merge)."""
    from training import pipeline

    results = []
    for index, (row, settings) in enumerate(zip(rows, cumulative(rows, base)), start=1):
        if only and index not in only:
            continue
        print(f"[ablation] {index}/{len(rows)} {row.name}: {settings}", flush=True)
        cfg = pipeline.BuildConfig(**{**settings, "out_dir": str(work_dir / f"row{index}"),
                                      "label_store": str(work_dir / "labels.sqlite"), "seed": seed,
                                      "progress": progress})
        metrics = pipeline.build_model(cfg)
        results.append({"index": index, "name": row.name, "adds": row.adds, "settings": settings,
                        "figures": row_figures(metrics)})
        print(f"[ablation] {row.name}: {pipeline.summary_line(metrics)}", flush=True)
        after_row(results)
    return results


def merge(parts: list[dict], out: Path) -> str:
    """One result from partial runs of the same settings (rows run in parallel processes)."""
    first = parts[0]
    for part in parts[1:]:
        for key in ("mode", "seed", "base", "threads"):
            if part[key] != first[key]:
                raise ValueError(f"cannot merge runs with different {key}: {first[key]!r} vs {part[key]!r}")
    rows = sorted((row for part in parts for row in part["rows"]), key=lambda row: row["index"])
    contention = {"parts": [part["contention"] for part in parts],
                  "load_avg_before": first["contention"].get("load_avg_before"),
                  "load_avg_after": parts[-1]["contention"].get("load_avg_after"),
                  "foreign_share_of_capacity": max((p["contention"].get("foreign_share_of_capacity") or 0)
                                                   for p in parts)}
    result = {**first, "rows": rows, "complete": [row["index"] for row in rows] == list(range(1, len(ROWS) + 1)),
              "processes": len(parts), "seconds": max(part["seconds"] for part in parts),
              "finished": max(part["finished"] for part in parts), "contention": contention,
              "work_dir": [part["work_dir"] for part in parts]}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True))
    out.with_suffix(".md").write_text(markdown(result))
    return markdown(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny student, 150 templates, 2 epochs")
    parser.add_argument("--epochs", type=int, help="student epochs for every row (default: TrainConfig's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ta-frozen-layers", type=int, help="teacher-assistant layers kept pretrained (CPU budget)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--work-dir", help="label store, TA cache, row artifacts (default: a temp dir)")
    parser.add_argument("--out", help="output prefix (default: bench/results/ablation; --quick: in the work dir)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--rows", help="only these rows, e.g. 4,5 (1-based; settings stay cumulative)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="merge the rows of partial runs into --out")
    args = parser.parse_args(argv)

    work_dir = training_run_setup(args.threads, args.work_dir, "logdistill-ablation-")
    base = dict(QUICK_BASE) if args.quick else {}
    if args.epochs:
        base = merged(base, {"train": {"epochs": args.epochs}})
    if args.ta_frozen_layers is not None:
        base = merged(base, {"assistant": {"frozen_layers": args.ta_frozen_layers}})
    out = Path(args.out) if args.out else (work_dir / "ablation" if args.quick else BENCH_DIR / "results" / "ablation")

    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        print(merge([json.loads(Path(part).read_text()) for part in args.merge], out))
        return 0
    meter, started = ContentionMeter(), time.time()

    def write(rows: list[dict]) -> str:
        result = {"mode": "quick" if args.quick else "full", "seed": args.seed, "threads": args.threads,
                  "base": base, "rows": rows, "complete": len(rows) == len(ROWS), "processes": 1,
                  "seconds": round(time.time() - started, 1),
                  "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "machine": machine_info(), "contention": meter.result(), "work_dir": str(work_dir)}
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True))
        out.with_suffix(".md").write_text(markdown(result))
        return markdown(result)

    only = {int(x) for x in args.rows.split(",")} if args.rows else None
    print(write(run_ablation(ROWS, base, work_dir, args.seed, args.progress, after_row=write, only=only)))
    print(f"[ablation] wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
