"""Small timing and process-measurement helpers shared by bench/run.py and bench/torch_baseline.py."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# Runs argv[2:] as its only child, stdout to argv[1], and reports the child's peak RSS and wall time.
# Running it in a fresh interpreter means no earlier child of the bench can raise RUSAGE_CHILDREN.
_WRAPPER = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t0 = time.perf_counter()
    rc = subprocess.run(sys.argv[2:], stdout=out).returncode
    wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall_s": wall, "maxrss_kb": ru.ru_maxrss,
                  "user_s": ru.ru_utime, "sys_s": ru.ru_stime}))
"""


def offline_env() -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV}


def run_measured(cmd: list[str], stdout_path: str = os.devnull, timeout: float | None = None) -> dict:
    """Run cmd in a fresh wrapper process; return rc, wall_s, maxrss_kb (peak RSS of cmd), user_s, sys_s."""
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, stdout_path, *cmd], env=offline_env(),
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measurement wrapper failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{cmd[:3]}... exited {result['rc']}: {proc.stderr[-2000:]}")
    return result


def time_call(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_of(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Median wall seconds of `repeats` calls of fn, and all of them."""
    times = [time_call(fn) for _ in range(repeats)]
    return statistics.median(times), times


def latency_ms(fn: Callable[[object], object], items: list) -> dict:
    """Call fn(item) for each item; p50/p99/mean/max of the per-call wall time, in ms."""
    samples = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        samples.append((time.perf_counter() - t0) * 1000)
    return summarize_ms(samples)


def summarize_ms(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50_ms": round(percentile(ordered, 50), 3),
            "p99_ms": round(percentile(ordered, 99), 3), "mean_ms": round(statistics.fmean(ordered), 3),
            "max_ms": round(ordered[-1], 3)}


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (numpy's default method)."""
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
