"""The serving image carries no torch: checked on what it is built from, without building it.

The Dockerfile's `serve` target installs the package with no extras (`pip wheel .`), so it holds the
closure of pyproject's [project] dependencies. Two checks, both offline and fast:
  - that closure, walked through the installed distributions' own metadata (what pip resolves from),
    contains no torch / transformers;
  - every service/ module imports, and `logdistill serve --help` runs, in a fresh interpreter where
    torch, transformers and training/ cannot be imported at all.
Plus the Dockerfile's shape: the targets the chart uses, a numeric non-root USER, torch only in `train`.
(The image itself was built and run by hand: deploy/README.md; Docker is not part of `make test`.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
TRAINING_ONLY = {"torch", "transformers", "sentence-transformers", "onnx", "onnxscript", "matplotlib"}


def runtime_closure(distribution: str) -> set[str]:
    """Names of every distribution a plain `pip install <distribution>` pulls in (no extras)."""
    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_serving_install_pulls_no_torch():
    closure = runtime_closure("logdistill")
    assert {"onnxruntime", "tokenizers", "kafka-python", "confluent-kafka", "prometheus-client"} <= closure
    assert not closure & TRAINING_ONLY, f"the serving install would pull {sorted(closure & TRAINING_ONLY)}"


def test_the_train_extra_is_where_torch_comes_from():
    """The check above can fail: the same walk with the train extra does find torch."""
    extras = [Requirement(r) for r in metadata.requires("logdistill") or []]
    train = [r.name for r in extras if r.marker is not None and r.marker.evaluate({"extra": "train"})
             and not r.marker.evaluate({"extra": ""})]
    assert "torch" in {canonicalize_name(name) for name in train}


BLOCKER = r"""
import importlib, pkgutil, sys
BLOCKED = ("torch", "transformers", "sentence_transformers", "training")

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the serving image)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
import service
for module in pkgutil.iter_modules(service.__path__):
    importlib.import_module(f"service.{module.name}")
from service.cli import main
sys.argv = ["logdistill", "serve", "--help"]
try:
    main()
except SystemExit as exc:
    assert exc.code == 0, exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("ok")
"""


def test_service_runs_with_torch_and_training_unimportable():
    done = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok") and "usage: logdistill serve" in done.stdout


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current and line.strip() and not line.lstrip().startswith("#"):
            stages[current].append(line)
    return stages


def test_dockerfile_targets():
    stages = dockerfile_stages()
    assert {"builder", "serve", "model", "train"} <= set(stages)
    serve = "\n".join(stages["serve"])
    assert re.search(r"^USER\s+[1-9]\d*:[1-9]\d*$", serve, re.MULTILINE), "serve must run as a numeric non-root user"
    assert "PYTHONDONTWRITEBYTECODE=1" in serve and "HOME=/tmp" in serve  # read-only root: nothing written
    installs = [line for line in stages["builder"] + stages["serve"] if re.search(r"pip\s+(install|wheel)", line)]
    assert installs and not [line for line in installs if "torch" in line or "[" in line], installs  # no extras
    assert "torch==2.13.0" in "\n".join(stages["train"])
    model = "\n".join(stages["model"])
    # the chart's model.image.path default and the init scripts' checksum check
    assert "/opt/logdistill/model" in model and "sha256sum -c" in model
