"""bench/ceiling.py's arithmetic: the learning-curve fit and the figures it reads from a build."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("ceiling", Path(__file__).resolve().parents[1] / "bench" / "ceiling.py")
ceiling = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ceiling)


def test_log_linear_fit_recovers_a_known_line_and_the_groups_for_a_target():
    # accuracy = 0.1 + 0.1·log2(groups): 0.5 at 16 groups, 0.95 at 2^8.5 ≈ 362
    points = [{"source_groups": g, "accuracy": 0.1 + 0.1 * math.log2(g)} for g in (2, 4, 8, 16)]
    fit = ceiling.log_linear_fit(points, 0.95)
    assert fit["intercept"] == pytest.approx(0.1) and fit["gain_per_doubling"] == pytest.approx(0.1)
    assert fit["source_groups_for_target"] == round(2 ** 8.5)
    assert fit["times_current"] == pytest.approx(2 ** 8.5 / 16, abs=0.05)


def test_log_linear_fit_without_a_trend_makes_no_forecast():
    assert ceiling.log_linear_fit([{"source_groups": 8, "accuracy": 0.7}], 0.95) is None
    flat = ceiling.log_linear_fit([{"source_groups": 8, "accuracy": 0.7}, {"source_groups": 16, "accuracy": 0.6}], 0.95)
    assert "source_groups_for_target" not in flat and flat["gain_per_doubling"] < 0


def test_pooled_accuracy_weights_sources_by_their_templates():
    by_source = {"k8s": {"accuracy": 0.5, "templates": 10}, "BGL": {"accuracy": 1.0, "templates": 30},
                 "HDFS": {"accuracy": 0.0, "templates": 10}}
    assert ceiling._pooled(by_source, lambda s: s != "k8s") == pytest.approx(0.75)
    assert ceiling._pooled(by_source, lambda s: s == "k8s") == 0.5
    assert ceiling._pooled(by_source, lambda s: s == "none") is None
