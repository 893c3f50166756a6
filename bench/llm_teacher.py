"""How fast and how good is the local LLM teacher (SmolLM2-135M-Instruct, Q4_1 GGUF) on this CPU?

It labels the held-out templates of the default build (the same split as `training.pipeline`:
seed 0, test fraction 0.2) and compares its argmax with the gold labels (`pipeline.gold_index`).
One scoring pass gives every label's token log-probabilities, from which every normalisation is
scored: "sum" (whole-answer likelihood), "mean" (per-token average), "calibrated" ("sum" over the
content-free prior) and, for reference, "first" (the first token alone). The query is shown as its
example line (what the teacher uses), and, with --also-key, as its template key too.

    .venv/bin/python bench/llm_teacher.py [--limit N] [--threads 1] [--also-key]

Writes bench/results/llm_teacher.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from service.taxonomy import load_taxonomy  # noqa: E402
from training import pipeline  # noqa: E402
from training.evaluation.metrics import classification_report  # noqa: E402
from training.teachers.base import TeacherQuery  # noqa: E402
from training.teachers.local_lm import LocalCausalLM, LocalLMTeacher, normalise  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "llm_teacher.json"


def held_out_templates(taxonomy):
    cfg = pipeline.BuildConfig(progress=False)
    templates = pipeline.dedup_templates(pipeline.collect_records(cfg))
    gold_table = pipeline.make_gold_table(cfg, taxonomy)
    _, test = pipeline.split_by_group(templates, gold_table, cfg.test_fraction, cfg.seed)
    rows = [(t, pipeline.gold_index(t, gold_table, taxonomy)) for t in test]
    return [(t, g) for t, g in rows if g is not None]


def stratified_sample(rows, limit: int, seed: int = 0):
    """At most `limit` rows, each gold label keeping its share (at least one row each)."""
    if limit >= len(rows):
        return rows
    rng = random.Random(seed)
    by_label: dict[int, list] = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    picked = []
    for label, group in sorted(by_label.items()):
        rng.shuffle(group)
        picked += group[: max(1, round(limit * len(group) / len(rows)))]
    return picked


def score(teacher: LocalLMTeacher, lines: list[str]) -> tuple[list[list[np.ndarray]], float]:
    started = time.perf_counter()
    token_logprobs = [teacher.label_token_logprobs(line) for line in lines]
    return token_logprobs, time.perf_counter() - started


def modes(token_logprobs: list[list[np.ndarray]], prior: np.ndarray) -> dict[str, np.ndarray]:
    aggregate = {"sum": lambda lp: lp.sum(), "mean": lambda lp: lp.mean(), "first": lambda lp: lp[0]}
    out = {mode: np.stack([normalise(np.array([fn(lp) for lp in per_label])) for per_label in token_logprobs])
           for mode, fn in aggregate.items()}
    out["calibrated"] = np.stack([normalise(np.log(p) - np.log(prior)) for p in out["sum"]])
    return out


def report(probs: np.ndarray, gold: np.ndarray, labels: tuple[str, ...]) -> dict:
    result = classification_report(gold, probs, labels)
    predicted = np.bincount(probs.argmax(axis=1), minlength=len(labels)) / len(probs)
    result["predicted_share"] = {label: round(float(share), 4) for label, share in zip(labels, predicted) if share}
    result["mean_top_probability"] = round(float(probs.max(axis=1).mean()), 4)
    result.pop("confusion")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="stratified sample of at most N templates (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--also-key", action="store_true", help="also score the template keys as the query")
    args = parser.parse_args(argv)

    taxonomy = load_taxonomy()
    rows = held_out_templates(taxonomy)
    n_held_out = len(rows)
    if args.limit:
        rows = stratified_sample(rows, args.limit)
    gold = np.array([g for _, g in rows])

    load_avg_start = os.getloadavg()
    started = time.perf_counter()
    lm = LocalCausalLM(threads=args.threads)
    load_seconds = time.perf_counter() - started
    teacher = LocalLMTeacher(taxonomy, lm)  # its modes are all derived below from one scoring pass
    started = time.perf_counter()
    teacher.shared_prefix()
    prefix_seconds = time.perf_counter() - started
    prior = teacher.content_free_prior()

    inputs = {"example": [TeacherQuery(t.key, t.examples[0]) for t, _ in rows]}
    if args.also_key:
        inputs["key"] = [TeacherQuery(t.key, "") for t, _ in rows]  # no example: the teacher shows the key
    results = {}
    for name, lines in inputs.items():
        token_logprobs, seconds = score(teacher, [teacher.shown_line(q) for q in lines])
        results[name] = {"seconds": round(seconds, 1), "labels_per_second": round(len(lines) / seconds, 3),
                         **{mode: report(probs, gold, taxonomy.labels)
                            for mode, probs in modes(token_logprobs, prior).items()}}
        print(name, json.dumps({m: (results[name][m]["accuracy"], results[name][m]["macro_f1"])
                                for m in ("sum", "mean", "first", "calibrated")}), f"{seconds:.0f}s", flush=True)

    gold_share = np.bincount(gold, minlength=len(taxonomy.labels)) / len(gold)
    out = {"model": lm.model_id, "teacher_id": teacher.teacher_id, "threads": args.threads,
           "held_out_templates": n_held_out, "scored_templates": len(rows),
           "sample": "all" if len(rows) == n_held_out else f"stratified {len(rows)} (seed 0)",
           "gold_share": {label: round(float(s), 4) for label, s in zip(taxonomy.labels, gold_share) if s},
           "majority_class_accuracy": round(float(gold_share.max()), 4),
           "load_seconds": round(load_seconds, 1), "prefix_seconds": round(prefix_seconds, 1),
           "prefix_tokens": len(teacher.shared_prefix()[0]),
           "content_free_prior": {label: round(float(p), 4) for label, p in zip(taxonomy.labels, prior)},
           "results": results,
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                       "load_avg_start": [round(x, 2) for x in load_avg_start],
                       "load_avg_end": [round(x, 2) for x in os.getloadavg()]}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
