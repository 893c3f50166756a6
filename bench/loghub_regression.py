"""Held-out Loghub templates: the current default build against an earlier build's code, on the same groups.

    .venv/bin/python bench/loghub_regression.py --model models/default [--baseline-commit 3c7ea43]
        → bench/results/loghub_regression.json

Adding cloud-native data must not cost the non-Kubernetes systems. This trains the baseline commit's
default build (its code, from a git worktree; today's shared data) with exactly the Loghub and seed
groups the current build holds out in its template split held out too (`held_out_groups`, nothing
else held out), and compares its held-out accuracy per Loghub system with the current model's
(`student_accuracy_by_source` in its metrics.json). Masking differs between the two builds, so each
scores its own template keys of the same source groups.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from machine import ContentionMeter, machine_info  # noqa: E402
from ceiling import NOT_LOGHUB, _pooled  # noqa: E402

BASELINE_BUILD = """
import json, sys
from training.pipeline import BuildConfig, build_model
groups, out = json.load(open(sys.argv[1])), sys.argv[2]
metrics = build_model(BuildConfig(out_dir=out, label_store=out + ".labels.sqlite", held_out_groups=groups,
                                  test_fraction=0.0, progress=False))
json.dump(metrics, open(out + ".metrics.json", "w"))
"""


def held_out_groups(seed: int) -> list[str]:
    """The Loghub and seed-corpus groups of the current default build's template split."""
    from training import pipeline

    with tempfile.TemporaryDirectory(prefix="logdistill-split-") as tmp:
        cfg = pipeline.BuildConfig(seed=seed, progress=False, label_store=str(Path(tmp) / "labels.sqlite"))
        data = pipeline.prepare_training_data(cfg)
    return sorted({t.group for t in data.test_templates if t.meta.get("system") not in (None, "k8s-labels")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="the current default build (its metrics.json)")
    parser.add_argument("--baseline-commit", default="3c7ea43", help="the earlier default build's commit")
    parser.add_argument("--out", default=str(BENCH_DIR / "results" / "loghub_regression.json"))
    args = parser.parse_args(argv)

    meter = ContentionMeter()
    current = json.loads((Path(args.model) / "metrics.json").read_text())
    config = json.loads((Path(args.model) / "config.json").read_text())
    groups = held_out_groups(config["build"]["seed"])
    with tempfile.TemporaryDirectory(prefix="logdistill-baseline-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline_commit], cwd=REPO, check=True)
        try:
            (Path(tmp) / "groups.json").write_text(json.dumps(groups))
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(tree),
                   "LOGDISTILL_SHARED_DATA": str(Path(os.environ.get("LOGDISTILL_SHARED_DATA")
                                                      or REPO.parent / "shared" / "data"))}
            subprocess.run([sys.executable, "-c", BASELINE_BUILD, str(Path(tmp) / "groups.json"),
                            str(Path(tmp) / "model")], cwd=tree, env=env, check=True)
            baseline = json.loads((Path(tmp) / "model.metrics.json").read_text())
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)

    def loghub(metrics: dict) -> dict:
        by_source = {k: v for k, v in metrics["student_accuracy_by_source"].items() if k not in NOT_LOGHUB}
        return {"pooled_accuracy": _pooled(by_source, lambda _: True), "by_system": by_source}

    result = {"held_out_groups": len(groups), "baseline_commit": args.baseline_commit,
              "current_model": config["model_version"], "current": loghub(current), "baseline": loghub(baseline),
              "machine": machine_info(), "contention": meter.result()}
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True))
    print(json.dumps({k: result[k] for k in ("held_out_groups", "current_model")}
                     | {"current": result["current"]["pooled_accuracy"],
                        "baseline": result["baseline"]["pooled_accuracy"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
