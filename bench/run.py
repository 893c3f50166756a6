"""logdistill benchmark: the student served with ONNX Runtime vs a MiniLM torch pipeline, in one run.

    .venv/bin/python bench/run.py --model models/default --out bench/results/latest.json [--quick]

What is measured, and how (all on this machine, 2 intra-op threads, batch size 32):

Workload  the real Loghub sample, ../shared/data/loghub/*/*_2k.log: 9 systems x 2,000 = 18,000 lines,
          read as raw bytes in file order, exactly as `logdistill classify` reads them.
1. Machine      CPU model (/proc/cpuinfo), cores, python / onnxruntime / torch / transformers versions,
                model version and the size of model.onnx.
2. Uncached     lines/s of the full path, Classifier.classify_raw on chunks of 512 lines (decode, parse,
                mask, tokenize, ONNX, result objects), over the *distinct* lines (deduplicated by text)
                with cache_size=0. One warm-up chunk, then 3 timed passes; the median is reported.
                Note: classify_raw still runs the model once per distinct template *within a chunk*,
                so "model rows" (also reported) is below the line count.
                Model-only: OnnxStudent.predict_proba on the pre-masked keys (one row per line, chunks of
                512), median of 3. A one-pass stage split (decode / parse / mask / cache+model / rest)
                shows where the full path's time goes.
3. Cached       the Loghub lines repeated to ~100,000 lines, default cache (50,000 templates): one pass
                over the 18,000 lines warms the cache, then the stream is timed (median of 3 passes);
                lines/s and the cache hit ratio over the timed passes.
                Then the same with every digit redrawn, anew for each pass ("fresh variables"): the
                exact-message memo cannot answer, masking runs on every line, the template cache does.
4. Latency      single-line calls classify_raw([line]), cache_size=0, ~1,000 distinct lines (random
                sample): p50/p99 ms. And 32-line batches over the distinct lines: p50/p99 ms per batch
                (and that divided by 32, per line).
5. Process RSS  `logdistill classify --model DIR FILE` (18,000 lines, default settings, stdout to
                /dev/null) as a child of a fresh wrapper interpreter, which reports
                getrusage(RUSAGE_CHILDREN).ru_maxrss once the child exits; its wall time and end-to-end
                lines/s, plus the wall time of the same command on a 1-line file (startup cost).
6. Baseline     bench/torch_baseline.py in its own wrapped process: transformers' text-classification
                pipeline around BertForSequenceClassification with the all-MiniLM-L6-v2 weights (random
                13-way head), torch 2 threads, batch 32, truncation to 64 tokens; lines/s over 2,000 of
                the distinct lines (random sample), single-line p50/p99 over 300, and its peak RSS.
                The student is timed on the very same 2,000 lines for the throughput ratio.
7. End to end   bench/e2e.py (its docstring says how): `logdistill serve` through a real Kafka-protocol
                broker (tansu, on this same machine): lines/s per consumer process, p50/p99 end-to-end
                latency at half that load, serve's peak RSS, where serve's time goes (poll, decode,
                classify, produce, commit), and kafka-python vs confluent-kafka with a projected gain.
8. Ratios and targets: student/baseline ratios, and the targets (uncached >= 3,000 lines/s,
                cached >= 100,000 lines/s, classify and serve RSS <= 200 MB = 200e6 bytes) recorded as booleans.
                Nothing is asserted: a benchmark measures, the tests assert.

Every process gets HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1. --quick shrinks every workload for a
smoke run (its figures are noisier and not comparable with a full run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))  # `service` when run as a script from anywhere

import e2e  # noqa: E402
from machine import ContentionMeter, machine_info  # noqa: E402
from measure import OFFLINE_ENV, latency_ms, median_of, run_measured, time_call  # noqa: E402
from report import print_report  # noqa: E402
from rich.console import Console  # noqa: E402

os.environ.update(OFFLINE_ENV)

from service.classifier import Classifier  # noqa: E402
from service.masking import template_key  # noqa: E402
from service.parsing import parse_line  # noqa: E402

LOGHUB = Path(__file__).resolve().parents[2] / "shared/data/loghub"
DIGIT_RE = re.compile(rb"\d")
CHUNK = 512          # lines per classify_raw call, as in `logdistill classify`
THREADS = 2
BATCH = 32
TARGETS = {"uncached_lines_per_s": 3_000, "cached_lines_per_s": 100_000, "classify_rss_bytes": 200_000_000}


@dataclass(frozen=True)
class Sizes:
    """How much of each workload one run uses."""
    workload_lines: int = 14_000
    uncached_lines: int | None = None   # None: all distinct lines
    repeats: int = 3
    cached_stream_lines: int = 100_000
    single_latency_lines: int = 1_000
    batch_latency_lines: int | None = None  # None: all distinct lines
    classify_lines: int = 14_000
    baseline_lines: int = 2_000
    baseline_latency_lines: int = 300


QUICK = Sizes(uncached_lines=2_000, repeats=1, cached_stream_lines=20_000, single_latency_lines=200,
              batch_latency_lines=640, classify_lines=2_000, baseline_lines=200, baseline_latency_lines=30)


# ---- workload ------------------------------------------------------------------------------

def load_lines(limit: int) -> list[bytes]:
    """Raw lines (newline kept) of every Loghub *_2k.log, file by file, in order."""
    files = sorted(LOGHUB.glob("*/*_2k.log"))
    if not files:
        raise SystemExit(f"no Loghub sample under {LOGHUB}")
    lines: list[bytes] = []
    for path in files:
        with open(path, "rb") as f:
            lines += list(f)
    return lines[:limit]


def distinct(lines: list[bytes]) -> list[bytes]:
    """First occurrence of each line, deduplicated by its text (line ending ignored)."""
    seen: set[bytes] = set()
    out = []
    for raw in lines:
        text = raw.rstrip(b"\r\n")
        if text not in seen:
            seen.add(text)
            out.append(raw)
    return out


def spread(items: list, n: int | None) -> list:
    """n items evenly spaced through the list, in order (all of them when n is None)."""
    if n is None or n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def chunks(items: list, size: int = CHUNK) -> list[list]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def repeat_to(lines: list[bytes], n: int) -> list[bytes]:
    return [lines[i % len(lines)] for i in range(n)]


# ---- 1. model --------------------------------------------------------------------------------

def model_info(model_dir: Path, clf: Classifier) -> dict:
    config = clf.student.artifact.config
    return {"path": str(model_dir), "version": clf.model_version,
            "model_onnx_bytes": (model_dir / "model.onnx").stat().st_size,
            "artifact_bytes": sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file()),
            "n_parameters": config.get("n_parameters"), "max_length": clf.student.artifact.max_length,
            "student": config.get("student"), "labels": len(clf.labels)}


# ---- 2. uncached throughput ------------------------------------------------------------------

def classify_all(clf: Classifier, batches: list[list[bytes]]) -> None:
    for batch in batches:
        clf.classify_raw(batch)


def uncached_throughput(model_dir: Path, lines: list[bytes], repeats: int) -> dict:
    clf = Classifier.from_dir(model_dir, threads=THREADS, batch_size=BATCH, cache_size=0)
    batches = chunks(lines)
    clf.classify_raw(batches[0])  # warm-up
    full_s, full_runs = median_of(lambda: classify_all(clf, batches), repeats)
    mixed = chunks(random.Random(1).sample(lines, len(lines)))
    mixed_s, mixed_runs = median_of(lambda: classify_all(clf, mixed), repeats)
    confidence_off = without_confidence_parts(clf, mixed, repeats)

    key_of = {raw: template_key(parse_line(text)) for raw in lines if isinstance(text := clf.decode(raw), str)}
    key_batches = chunks(list(key_of.values()))  # one key per classifiable line, as the path computes them
    model_s, model_runs = median_of(lambda: [clf.student.predict_proba(b) for b in key_batches], repeats)
    return {
        "lines": len(lines), "chunk_lines": CHUNK, "repeats": repeats, "distinct_templates": len(set(key_of.values())),
        # classify_raw runs the model once per distinct key in a chunk: these are its model rows.
        "model_rows_in_full_path": model_rows(batches, key_of),
        "model_rows_in_mixed_order": model_rows(mixed, key_of),
        "full_path": rate(len(lines), full_s, full_runs),
        "full_path_mixed_order": rate(len(lines), mixed_s, mixed_runs),
        **{name: rate(len(lines), *timing) for name, timing in confidence_off.items()},
        "model_only_per_line": rate(len(key_of), model_s, model_runs),
        "stage_split": stage_split(clf, batches),
    }


def without_confidence_parts(clf: Classifier, batches: list[list[bytes]], repeats: int) -> dict:
    """The mixed-order path again, with the OOD score off, then the evidence off too (the graph asked
    for logits only: onnxruntime then skips the nearest-template search): what they cost
    (service/familiarity.py, service/confidence.py), in the same run on the same lines."""
    saved = clf.familiarity, clf.evidence, clf.student.outputs
    try:
        clf.familiarity = None
        no_ood = median_of(lambda: classify_all(clf, batches), repeats)
        clf.evidence, clf.student.outputs = None, ["logits"]
        neither = median_of(lambda: classify_all(clf, batches), repeats)
    finally:
        clf.familiarity, clf.evidence, clf.student.outputs = saved
    return {"mixed_order_without_ood": no_ood, "mixed_order_without_ood_or_evidence": neither}


def model_rows(batches: list[list[bytes]], key_of: dict[bytes, str]) -> int:
    return sum(len({key_of[raw] for raw in batch if raw in key_of}) for batch in batches)


def rate(n: int, median_s: float, runs: list[float]) -> dict:
    return {"seconds": round(median_s, 4), "runs_s": [round(x, 4) for x in runs],
            "lines_per_s": round(n / median_s, 1), "us_per_line": round(median_s / n * 1e6, 2)}


def stage_split(clf: Classifier, batches: list[list[bytes]],
                full_path_batches: list[list[bytes]] | None = None) -> dict:
    """One pass through the path's stages, timed separately; `rest` = the full path minus the stages
    (mostly building result objects: a Classification per line). The full path is timed on
    full_path_batches when given: a stream of never-seen lines must not meet its own memoised keys."""
    totals = dict.fromkeys(("decode", "parse", "mask", "cache_and_model"), 0.0)
    full = 0.0
    for batch, full_batch in zip(batches, full_path_batches or batches):
        t0 = time.perf_counter()
        texts = [d for d in (clf.decode(raw) for raw in batch) if isinstance(d, str)]
        t1 = time.perf_counter()
        parsed = [parse_line(text) for text in texts]
        t2 = time.perf_counter()
        keys = clf.template_keys(parsed)  # as the path does: memoised when the cache is on
        t3 = time.perf_counter()
        clf.probabilities(keys)
        t4 = time.perf_counter()
        for name, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            totals[name] += seconds
        full += time_call(lambda: clf.classify_raw(full_batch))
    n = sum(len(b) for b in batches)
    totals["rest"] = max(full - sum(totals.values()), 0.0)
    return {"full_s": round(full, 4),
            **{name: {"us_per_line": round(s / n * 1e6, 2), "share": round(s / full, 3)}
               for name, s in totals.items()}}


# ---- 3. cached throughput --------------------------------------------------------------------

def cached_throughput(model_dir: Path, base: list[bytes], stream_lines: int, repeats: int,
                      fresh_variables: bool = False) -> dict:
    """Exact repeats of the Loghub lines (every cache answers), or with fresh_variables every digit
    redrawn, anew for each pass: the same templates in lines never seen before, so masking runs
    on every line (the message memo cannot help) and only the template cache answers."""
    clf = Classifier.from_dir(model_dir, threads=THREADS, batch_size=BATCH)  # default cache
    classify_all(clf, chunks(base))  # warm the cache: one pass over the distinct Loghub content
    lines = repeat_to(base, stream_lines)
    streams = iter([chunks(redraw_digits(lines, seed) if fresh_variables else lines) for seed in range(repeats + 2)])
    hits0, misses0 = clf.cache.hits, clf.cache.misses
    shape_hits0, shape_misses0 = clf.shapes.hits, clf.shapes.misses
    seconds, runs = median_of(lambda: classify_all(clf, next(streams)), repeats)
    hits, misses = clf.cache.hits - hits0, clf.cache.misses - misses0
    shape_hits, shape_misses = clf.shapes.hits - shape_hits0, clf.shapes.misses - shape_misses0
    return {"lines": stream_lines, "cache_size": clf.cache.max_entries, "cache_entries": len(clf.cache),
            "repeats": repeats, "fresh_variables": fresh_variables, **rate(stream_lines, seconds, runs),
            "hit_ratio": round(hits / max(hits + misses, 1), 5),
            # lines not repeated exactly that got their key by shape (service/shape_memo.py), not masking
            "shape_memo_hit_ratio": round(shape_hits / max(shape_hits + shape_misses, 1), 5),
            "stage_split": stage_split(clf, next(streams), next(streams))}


def redraw_digits(lines: list[bytes], seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [DIGIT_RE.sub(lambda _: b"%d" % rng.randrange(10), line) for line in lines]


# ---- 4. latency ------------------------------------------------------------------------------

def latency(model_dir: Path, single: list[bytes], batch_lines: list[bytes]) -> dict:
    clf = Classifier.from_dir(model_dir, threads=THREADS, batch_size=BATCH, cache_size=0)
    for raw in single[:20]:
        clf.classify_raw([raw])  # warm-up
    singles = latency_ms(lambda raw: clf.classify_raw([raw]), single)
    batches = [b for b in chunks(batch_lines, BATCH) if len(b) == BATCH]
    per_batch = latency_ms(clf.classify_raw, batches)
    per_line = {k: (round(v / BATCH, 4) if k.endswith("_ms") else v) for k, v in per_batch.items()}
    return {"single_line": singles, "batch_32": per_batch, "batch_32_per_line": per_line}


# ---- 5. classify process ---------------------------------------------------------------------

def classify_process(model_dir: Path, lines: list[bytes], scratch: Path) -> dict:
    logdistill = str(Path(sys.executable).with_name("logdistill"))
    big, one = scratch / "classify.log", scratch / "one.log"
    big.write_bytes(b"".join(lines))
    one.write_bytes(lines[0])
    run_measured([logdistill, "classify", "--model", str(model_dir), str(one)])  # warm the page cache
    startup = run_measured([logdistill, "classify", "--model", str(model_dir), str(one)])
    full = run_measured([logdistill, "classify", "--model", str(model_dir), str(big)])
    return {"command": f"logdistill classify --model {model_dir} <{len(lines)}-line file> >/dev/null",
            "lines": len(lines), "peak_rss_bytes": full["maxrss_kb"] * 1024,
            "peak_rss_mib": round(full["maxrss_kb"] / 1024, 1), "wall_s": round(full["wall_s"], 3),
            "cpu_s": round(full["user_s"] + full["sys_s"], 3),
            "lines_per_s": round(len(lines) / full["wall_s"], 1),
            "startup_wall_s": round(startup["wall_s"], 3), "startup_peak_rss_mib": round(startup["maxrss_kb"] / 1024, 1)}


# ---- 6. baseline -----------------------------------------------------------------------------

def baseline(lines: list[str], latency_lines: int, scratch: Path) -> dict:
    source, out = scratch / "baseline_lines.json", scratch / "baseline_out.json"
    source.write_text(json.dumps(lines), encoding="utf-8")
    proc = run_measured([sys.executable, str(BENCH_DIR / "torch_baseline.py"), "--lines", str(source),
                         "--limit", str(len(lines)), "--latency-lines", str(latency_lines),
                         "--threads", str(THREADS), "--batch-size", str(BATCH)], stdout_path=str(out))
    result = json.loads(out.read_text())
    result["process"] = {"peak_rss_bytes": proc["maxrss_kb"] * 1024, "peak_rss_mib": round(proc["maxrss_kb"] / 1024, 1),
                         "wall_s": round(proc["wall_s"], 3)}
    return result


def student_on(model_dir: Path, lines: list[bytes], repeats: int) -> dict:
    """The student's full path (uncached) on exactly the baseline's lines."""
    clf = Classifier.from_dir(model_dir, threads=THREADS, batch_size=BATCH, cache_size=0)
    batches = chunks(lines)
    clf.classify_raw(batches[0])
    seconds, runs = median_of(lambda: classify_all(clf, batches), repeats)
    return {"lines": len(lines), **rate(len(lines), seconds, runs)}


# ---- 7. end to end through Kafka ------------------------------------------------------------

def end_to_end(model_dir: Path, quick: bool, say) -> dict:
    try:
        return e2e.measure(model_dir, e2e.QUICK if quick else e2e.Sizes(), say)
    except Exception as exc:  # e.g. no tansu binary here: recorded in the JSON, the other sections stand
        return {"failures": [f"could not run: {type(exc).__name__}: {exc}"]}


# ---- 8. ratios and targets -------------------------------------------------------------------

def ratios(r: dict) -> dict:
    s, b = r["student"], r["baseline"]
    same = s["same_lines_as_baseline"]["lines_per_s"]
    return {
        "throughput_student_over_baseline_same_lines": round(same / b["throughput"]["lines_per_s"], 1),
        "throughput_student_uncached_over_baseline": round(
            s["uncached"]["full_path"]["lines_per_s"] / b["throughput"]["lines_per_s"], 1),
        "single_line_p50_latency_student_over_baseline": round(
            s["latency"]["single_line"]["p50_ms"] / b["single_line_latency"]["p50_ms"], 4),
        "single_line_p99_latency_student_over_baseline": round(
            s["latency"]["single_line"]["p99_ms"] / b["single_line_latency"]["p99_ms"], 4),
        "peak_rss_student_over_baseline": round(
            s["classify_process"]["peak_rss_bytes"] / b["process"]["peak_rss_bytes"], 3),
        **confidence_cost(s["uncached"]),
    }


def confidence_cost(uncached: dict) -> dict:
    """Uncached mixed-order throughput with the OOD score (and evidence) over without: 1 − ratio is the cost."""
    full = uncached["full_path_mixed_order"]["lines_per_s"]
    out = {}
    for name, key in (("uncached_with_ood_over_without", "mixed_order_without_ood"),
                      ("uncached_with_ood_and_evidence_over_without", "mixed_order_without_ood_or_evidence")):
        if key in uncached:
            out[name] = round(full / uncached[key]["lines_per_s"], 3)
    return out


def targets(r: dict) -> dict:
    s = r["student"]
    uncached = s["uncached"]["full_path"]["lines_per_s"]
    mixed = s["uncached"]["full_path_mixed_order"]["lines_per_s"]
    cached = s["cached"]["lines_per_s"]
    fresh = s["cached_fresh_variables"]["lines_per_s"]
    rss = s["classify_process"]["peak_rss_bytes"]
    out = {
        "uncached_lines_per_s": {"value": uncached, "target": ">= 3000", "met": uncached >= TARGETS["uncached_lines_per_s"]},
        "uncached_lines_per_s_mixed_order": {"value": mixed, "target": ">= 3000",
                                             "met": mixed >= TARGETS["uncached_lines_per_s"]},
        "cached_lines_per_s": {"value": cached, "target": ">= 100000", "met": cached >= TARGETS["cached_lines_per_s"]},
        "cached_lines_per_s_fresh_variables": {"value": fresh, "target": ">= 100000",
                                               "met": fresh >= TARGETS["cached_lines_per_s"]},
        "classify_rss_bytes": {"value": rss, "target": "<= 200 MB (200e6 bytes)",
                               "met": rss <= TARGETS["classify_rss_bytes"]},
    }
    ood = r.get("ratios", {}).get("uncached_with_ood_over_without")
    if ood is not None:
        out["ood_score_throughput_cost"] = {"value": round(1 - ood, 3), "target": "<= 0.10 of uncached throughput",
                                            "met": 1 - ood <= 0.10}
    serve_rss = r.get("end_to_end", {}).get("serve_process", {}).get("peak_rss_bytes")
    if serve_rss:
        out["serve_rss_bytes"] = {"value": serve_rss, "target": "<= 200 MB (200e6 bytes), through Kafka",
                                  "met": serve_rss <= TARGETS["classify_rss_bytes"]}
    return out


# ---- the run ---------------------------------------------------------------------------------

def run(model_dir: Path, sizes: Sizes, quick: bool, say) -> dict:
    started = time.perf_counter()
    whole_run = ContentionMeter()
    lines = load_lines(sizes.workload_lines)
    unique = distinct(lines)
    shuffled = random.Random(0).sample(unique, len(unique))  # random sample, mixed systems; prefixes too
    probe = Classifier.from_dir(model_dir, threads=THREADS, batch_size=BATCH, cache_size=0)
    result = {"schema": 1, "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "quick": quick, "machine": machine_info(), "model": model_info(model_dir, probe),
              "workload": {"source": str(LOGHUB), "lines": len(lines), "distinct_lines": len(unique),
                           "systems": sorted(p.parent.name for p in LOGHUB.glob("*/*_2k.log"))},
              "settings": {"threads": THREADS, "batch_size": BATCH, "chunk_lines": CHUNK}}
    del probe
    student: dict = {}
    other_load: dict[str, float | None] = {}  # share of CPU capacity other processes used, per section
    result["student"] = student

    def section(name: str, title: str, measure):
        say(title)
        meter = ContentionMeter()
        value = measure()
        other_load[name] = meter.result().get("foreign_share_of_capacity")
        return value

    student["uncached"] = section("uncached", "uncached throughput (cache_size=0, distinct lines)",
                                  lambda: uncached_throughput(model_dir, spread(unique, sizes.uncached_lines),
                                                              sizes.repeats))
    student["cached"] = section("cached", "cached throughput (repetitive stream)",
                                lambda: cached_throughput(model_dir, lines, sizes.cached_stream_lines, sizes.repeats))
    student["cached_fresh_variables"] = section(
        "cached_fresh_variables", "cached throughput (same templates, every digit redrawn)",
        lambda: cached_throughput(model_dir, lines, sizes.cached_stream_lines, sizes.repeats, fresh_variables=True))
    student["latency"] = section("latency", "latency (single lines, 32-line batches)",
                                 lambda: latency(model_dir, shuffled[: sizes.single_latency_lines],
                                                 spread(unique, sizes.batch_latency_lines)))
    baseline_raw = shuffled[: sizes.baseline_lines]
    baseline_texts = [raw.rstrip(b"\r\n").decode("utf-8", errors="replace") for raw in baseline_raw]
    with tempfile.TemporaryDirectory(prefix="logdistill-bench-") as scratch:
        student["classify_process"] = section(
            "classify_process", "classify process (peak RSS)",
            lambda: classify_process(model_dir, lines[: sizes.classify_lines], Path(scratch)))
        student["same_lines_as_baseline"] = section("same_lines_as_baseline", "student on the baseline's lines",
                                                    lambda: student_on(model_dir, baseline_raw, sizes.repeats))
        result["baseline"] = section("baseline", "torch baseline (separate process)",
                                     lambda: baseline(baseline_texts, sizes.baseline_latency_lines, Path(scratch)))

    result["end_to_end"] = section("end_to_end", "end to end through Kafka (tansu + `logdistill serve`)",
                                   lambda: end_to_end(model_dir, quick, say))

    result["contention"] = {**whole_run.result(), "by_section": other_load}
    result["ratios"] = ratios(result)
    result["targets"] = targets(result)
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark the logdistill student against a MiniLM torch baseline.")
    p.add_argument("--model", default="models/default", help="model artifact directory")
    p.add_argument("--out", default="bench/results/latest.json", help="where to write the JSON results")
    p.add_argument("--quick", action="store_true", help="small workloads: a smoke run, not comparable figures")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_dir = Path(args.model).resolve()
    console = Console(stderr=True)
    result = run(model_dir, QUICK if args.quick else Sizes(), args.quick,
                 lambda msg: console.log(f"[bold]bench[/]: {msg}"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    console.log(f"wrote {out} in {result['bench_seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
