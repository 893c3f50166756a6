"""What the larger teacher-labelled corpus pays for: one change to the default build per row.

    .venv/bin/python bench/student_ablation.py                 # → bench/results/student_ablation.{json,md}
    .venv/bin/python bench/student_ablation.py --epochs 10     # every row at 10 epochs (2-core budget)
    .venv/bin/python bench/student_ablation.py --rows 1,4      # some rows only (1-based)
    .venv/bin/python bench/student_ablation.py --quick         # smoke run: tiny student, few templates

Unlike bench/ablation.py (cumulative rows: what each distillation piece adds), every row here is the
default build with ONE setting changed, so rows compare with row 1. Each row is a real `build_model`
with the same seed, corpus and splits; what decides is the component split (whole programs never
seen), then the real lines (k8s_dev_lines.csv) and the held-out Loghub templates, which must not fall.
"""

from __future__ import annotations

import argparse
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

from ablation import QUICK_BASE, merged  # noqa: E402
from ceiling import NOT_LOGHUB, _pooled  # noqa: E402
from machine import ContentionMeter, machine_info, training_run_setup  # noqa: E402


@dataclass
class Row:
    name: str
    settings: dict = field(default_factory=dict)  # BuildConfig overrides on top of the default ("train" merges)


ROWS: list[Row] = [
    Row("default (make model)"),
    Row("no class balance (weight 1)", {"train": {"class_balance": 0.0}}),
    Row("full class balance (1/frequency)", {"train": {"class_balance": 1.0}}),
    Row("soft labels only, λ=1 (the teacher's doubt, no hard CE)", {"train": {"lam": 1.0}}),
    Row("max_length 128 tokens", {"student": {"dim": 128, "layers": 2, "heads": 4, "max_length": 128,
                                              "embed_dim": 384}}),
    Row("deeper: 4 layers", {"student": {"dim": 128, "layers": 4, "heads": 4, "max_length": 64, "embed_dim": 384}}),
    Row("wider: dim 256, 8 heads", {"student": {"dim": 256, "layers": 2, "heads": 8, "max_length": 64,
                                                "embed_dim": 384}}),
    Row("8 augmented variants per template", {"augment_variants": 8}),
    Row("MiniLM token rows fine-tuned, not frozen", {"freeze_embeddings": False}),
    Row("full class balance + soft labels only", {"train": {"class_balance": 1.0, "lam": 1.0}}),
]


def row_figures(metrics: dict) -> dict:
    """The figures a row is judged on, from its metrics.json."""
    def split(m: dict) -> dict:
        s, ci = m["student"]["templates"], m["student_accuracy_ci"]["templates"]
        return {"accuracy": s["accuracy"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                "macro_f1": s["macro_f1"], "soft_agreement": m["soft_agreement"],
                "ece": m["calibration"]["ece"], "templates": m["held_out"]["templates"]}

    figures = {"template_split": split(metrics),
               "loghub_accuracy": _pooled(metrics["student_accuracy_by_source"], lambda s: s not in NOT_LOGHUB),
               "build_seconds": metrics["build_seconds"], "training_examples": metrics["training_examples"]}
    if "component_split" in metrics:
        figures["component_split"] = split(metrics["component_split"])
    if "real_lines" in metrics:
        real = metrics["real_lines"]
        figures["real_lines"] = {"accuracy": real["accuracy"], "macro_f1": real["macro_f1"], "n": real["n"]}
    return figures


def markdown(result: dict) -> str:
    lines = [f"# Student ablation ({result['mode']}, seed {result['seed']}, {result['finished']})", "",
             "One change to the default build per row. Accuracy on held-out templates against the recorded "
             "teacher's top label; CI 95%, group bootstrap; soft = the student's label holds ≥ 0.3 of the "
             f"teacher's mass. Settings on top of the defaults for every row: {result['base'] or 'none'}.", "",
             "| row | component split acc (95% CI) | comp. macro-F1 | comp. soft | template split acc | tmpl. macro-F1 "
             "| tmpl. soft | Loghub held-out acc | real lines acc | build s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        f = row["figures"]
        c, t = f.get("component_split"), f["template_split"]
        comp = (f"{c['accuracy']:.3f} ({c['ci_low']:.3f}–{c['ci_high']:.3f}) | {c['macro_f1']:.3f} | "
                f"{c['soft_agreement']:.3f}") if c else "– | – | –"
        real = f"{f['real_lines']['accuracy']:.3f}" if "real_lines" in f else "–"
        lines.append(f"| {row['index']}. {row['name']} | {comp} | {t['accuracy']:.3f} | {t['macro_f1']:.3f} | "
                     f"{t['soft_agreement']:.3f} | {f['loghub_accuracy']} | {real} | {f['build_seconds']:.0f} |")
    c = result["contention"]
    lines += ["", f"Machine: {result['machine']['cpu_model']}, {result['machine']['usable_cores']} cores, torch threads "
              f"{result['threads']}; other processes' share of CPU capacity {c.get('foreign_share_of_capacity')}, "
              f"load average before {c.get('load_avg_before')}, after {c.get('load_avg_after')}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny student, 150 templates, 2 epochs")
    parser.add_argument("--epochs", type=int, help="student epochs for every row (default: TrainConfig's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--rows", help="only these rows, e.g. 1,4 (1-based)")
    parser.add_argument("--work-dir", help="label store and row artifacts (default: a temp dir)")
    parser.add_argument("--out", help="output prefix (default: bench/results/student_ablation)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    work_dir = training_run_setup(args.threads, args.work_dir, "logdistill-student-")
    from training import pipeline

    base = dict(QUICK_BASE) if args.quick else {}
    if args.epochs:
        base = merged(base, {"train": {"epochs": args.epochs}})
    out = Path(args.out) if args.out else (work_dir / "student_ablation" if args.quick
                                           else BENCH_DIR / "results" / "student_ablation")
    out.parent.mkdir(parents=True, exist_ok=True)
    only = {int(x) for x in args.rows.split(",")} if args.rows else None
    meter, started, results = ContentionMeter(), time.time(), []
    for index, row in enumerate(ROWS, start=1):
        if only and index not in only:
            continue
        settings = merged(base, row.settings)
        print(f"[student-ablation] {index}/{len(ROWS)} {row.name}: {settings}", flush=True)
        cfg = pipeline.BuildConfig(**{**settings, "out_dir": str(work_dir / f"row{index}"),
                                      "label_store": str(work_dir / "labels.sqlite"), "seed": args.seed,
                                      "progress": args.progress})
        metrics = pipeline.build_model(cfg)
        results.append({"index": index, "name": row.name, "settings": settings, "figures": row_figures(metrics)})
        print(f"[student-ablation] {row.name}: {pipeline.summary_line(metrics)}", flush=True)
        result = {"mode": "quick" if args.quick else "full", "seed": args.seed, "threads": args.threads,
                  "base": base, "rows": results, "seconds": round(time.time() - started, 1),
                  "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "machine": machine_info(), "contention": meter.result(), "work_dir": str(work_dir)}
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True))
        out.with_suffix(".md").write_text(markdown(result))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
