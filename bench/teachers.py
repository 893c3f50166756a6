"""Teacher throughput, and what template dedup saves, on the shared Loghub corpus.

Every teacher labels the same N templates (a seeded sample of the Loghub templates, shown as one
real line each), cold (no label store), in one run on one machine:
    recorded    the recorded LLM labels (a table lookup: the floor)
    embedding   MiniLM zero-shot
    local-lm    SmolLM2-135M-Instruct in process (few-shot prefix KV-cached, 13 label continuations scored)
    openai      the same model behind `logdistill teacher-server`'s OpenAI-compatible API, over a socket,
                soft labels from the returned token logprobs (the server reuses the KV of the prompt start
                that requests share: automatic prefix caching)
    openai-no-prefix-cache  the same, the server's prefix cache off (--prompt-cache 0): its baseline
and the dedup saving is priced with each teacher's measured rate: labelling every Loghub line
versus labelling each template once.

    .venv/bin/python bench/teachers.py [--n 20] [--threads 2]      → bench/results/teachers.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import ContentionMeter, machine_info  # noqa: E402
from service.taxonomy import load_taxonomy  # noqa: E402
from training import pipeline  # noqa: E402
from training.corpus.readers import dedup_templates, read_loghub_dir  # noqa: E402
from training.teachers.base import TeacherQuery  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "teachers.json"


def loghub_sample(n: int, seed: int) -> tuple[list, dict]:
    records = list(read_loghub_dir(pipeline.SHARED_DATA / "loghub"))
    templates = dedup_templates(records)
    dedup = {"lines": len(records), "templates": len(templates),
             "teacher_call_saving": round(1 - len(templates) / len(records), 4)}
    return random.Random(seed).sample(templates, n), dedup


def timed_labels(name: str, make_teacher, queries: list[TeacherQuery], gold: list[int]) -> dict:
    started = time.perf_counter()
    teacher = make_teacher()
    loaded = time.perf_counter()
    answers = teacher.distributions(queries)
    done = time.perf_counter()
    labelled = [(a, g) for a, g in zip(answers, gold) if a is not None]
    result = {"teacher_id": teacher.teacher_id, "load_seconds": round(loaded - started, 2),
              "label_seconds": round(done - loaded, 3), "labelled": len(labelled), "failed": len(queries) - len(labelled),
              "labels_per_second": round(len(labelled) / max(done - loaded, 1e-9), 4),
              "agreement_with_recorded": round(sum(int(a.argmax()) == g for a, g in labelled) / max(len(labelled), 1), 3)}
    if hasattr(teacher, "report"):
        usage = teacher.report()
        result["tokens_per_label"] = round((usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
                                           / max(len(labelled), 1), 1)
    print(f"{name:22s} {result['labels_per_second']:>10.3f} labels/s  load {result['load_seconds']:.0f} s  "
          f"agreement with recorded {result['agreement_with_recorded']:.2f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="templates each teacher labels")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], help="teachers to leave out")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    taxonomy = load_taxonomy()
    templates, dedup = loghub_sample(args.n, args.seed)
    queries = [TeacherQuery(t.key, t.meta.get("content") or t.examples[0], t.meta) for t in templates]
    recorded = pipeline.make_gold_table(pipeline.BuildConfig(use_seed_corpus=False), taxonomy)
    gold = [int(p.argmax()) for p in recorded.distributions(queries)]
    meter = ContentionMeter()  # other processes' CPU during the run: the figures are only as clean as this

    def local_lm():
        from training.teachers.local_lm import LocalLMTeacher, load_local_lm

        return LocalLMTeacher(taxonomy, load_local_lm(threads=args.threads))

    def openai_over_http(prompt_cache: int | None = None):
        from training.teachers.server import LLMServer
        from training.teachers.local_lm import load_local_lm
        from training.teachers.openai_http import OpenAITeacher

        # the default: the model local-lm loaded (load_local_lm keeps it); with a cache setting, another
        lm = load_local_lm(threads=args.threads, **({} if prompt_cache is None else {"prompt_cache": prompt_cache}))
        server = LLMServer(lm, max_concurrent=4).__enter__()  # ends with the bench
        return OpenAITeacher(taxonomy, server.base_url, "SmolLM2-135M-Instruct", concurrency=1, logprobs="on",
                             timeout_s=600)

    def embedding():
        from training.teachers.embedding import EmbeddingTeacher

        return EmbeddingTeacher(taxonomy)

    makers = {"recorded": lambda: recorded, "embedding": embedding, "local-lm": local_lm, "openai": openai_over_http,
              # the baseline of the server's prefix cache: every request's whole prompt computed
              "openai-no-prefix-cache": lambda: openai_over_http(prompt_cache=0)}
    teachers = {name: timed_labels(name, make, queries, gold) for name, make in makers.items() if name not in args.skip}
    for result in teachers.values():  # what labelling the whole Loghub corpus costs, line by line vs by template
        rate = max(result["labels_per_second"], 1e-9)
        result["loghub_hours"] = {"every_line": round(dedup["lines"] / rate / 3600, 3),
                                  "each_template_once": round(dedup["templates"] / rate / 3600, 3)}
    report = {"machine": machine_info(), "threads": args.threads, "templates": args.n, "seed": args.seed,
              "loghub_dedup": dedup, "teachers": teachers, "contention": meter.result()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"Loghub: {dedup['lines']} lines → {dedup['templates']} templates "
          f"(teacher calls saved: {dedup['teacher_call_saving']:.1%}); wrote {args.out}")


if __name__ == "__main__":
    main()
