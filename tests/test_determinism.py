"""`make model` must be reproducible: the same seed and data give byte-identical model files."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.artifact import read_checksums
from tests.conftest import TINY_STUDENT
from training import pipeline

pytestmark = pytest.mark.skipif(not (Path(pipeline.SHARED_DATA) / "loghub").is_dir(),
                                reason="needs ../shared/data/loghub")


def build(out: Path, seed: int) -> dict[str, str]:
    pipeline.build_model(pipeline.BuildConfig(
        out_dir=str(out), label_store=str(out.parent / f"ls-{out.name}.sqlite"), max_train_templates=120,
        student=dict(TINY_STUDENT), train={"epochs": 2}, augment_variants=1, seed_lines_per_template=2,
        seed=seed, progress=False))
    return read_checksums(out)


def test_seed_decides_the_artifact(tmp_path):
    first, again, other = build(tmp_path / "a", 3), build(tmp_path / "b", 3), build(tmp_path / "c", 4)
    # metrics.json differs by its wall-clock build time; everything the runtime loads must not.
    for name in ("model.onnx", "tokenizer.json", "config.json", "labels.json"):
        assert first[name] == again[name], f"{name} differs between two builds with the same seed"
    assert first["model.onnx"] != other["model.onnx"], "a different seed should give different weights"
