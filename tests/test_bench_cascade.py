"""bench/cascade.py: the demo stream's pairing with its gold labels, and the report's invariants on a tiny build."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("bench_cascade", Path(__file__).resolve().parents[1] / "bench" / "cascade.py")
cascade = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = cascade  # its dataclasses look their module up while being built
SPEC.loader.exec_module(cascade)

LIMIT = 600


def _write_system(root: Path, system: str, raw: list[str], rows: list[tuple[int, str, str]]) -> Path:
    folder = root / system
    folder.mkdir(parents=True)
    log = folder / f"{system}_2k.log"
    log.write_text("".join(line + "\n" for line in raw))
    (folder / f"{system}_2k.log_structured.csv").write_text(
        "LineId,Content,EventId\n" + "".join(f"{i},{content},{event}\n" for i, content, event in rows))
    return log


def test_pairing_joins_gold_labels_and_refuses_files_that_do_not_pair(tmp_path):
    labels = {("Sys", "E1"): "normal", ("Sys", "E2"): "crash"}
    log = _write_system(tmp_path / "ok", "Sys", ["t1 hello", "t2 boom", "t3 other"],
                        [(1, "hello", "E1"), (2, "boom", "E2"), (3, "other", "E9")])
    paired = cascade.pair_system(log, labels)
    assert [(p.line, p.gold, p.event_id) for p in paired] == [
        (b"t1 hello", "normal", "E1"), (b"t2 boom", "crash", "E2"), (b"t3 other", None, "E9")]

    short = _write_system(tmp_path / "short", "Sys", ["t1 hello", "t2 boom"], [(1, "hello", "E1")])
    with pytest.raises(cascade.StreamError, match="2 raw lines but 1 rows"):
        cascade.pair_system(short, labels)
    shifted = _write_system(tmp_path / "shifted", "Sys", ["t1 hello", "t2 boom"], [(1, "boom", "E2"), (2, "hello", "E1")])
    with pytest.raises(cascade.StreamError, match="do not pair"):
        cascade.pair_system(shifted, labels)


def _shares(figures: dict):
    for name in ("escalated", "kept_share", "student_accuracy", "kept_accuracy", "system_accuracy",
                 "errors_escalated", "escalated_novel", "escalated_seen", "student_accuracy_novel",
                 "student_accuracy_seen"):
        if figures[name] is not None:
            yield name, figures[name]
    yield from figures["escalated_by_reason"].items()


def _thresholds(model: Path) -> tuple[list[float], list[float]]:
    """τs and δs inside the tiny model's own confidence and OOD ranges on the lines the bench will see: its
    confidences are low (13 labels, a toy), so the bench's default τs would escalate every line and the
    checks below would hold trivially."""
    import numpy as np

    from service.classifier import Classifier
    from service.demo import replay_lines

    results = Classifier.from_dir(model).classify_raw(replay_lines(None, LIMIT))
    confidence = np.array([r.confidence for r in results if hasattr(r, "confidence")])
    taus = sorted({round(float(q), 4) for q in np.quantile(confidence, (0.1, 0.3, 0.5, 0.7, 0.9))})
    ood = np.array([r.ood for r in results if getattr(r, "ood", None) is not None])
    deltas = sorted({round(float(q), 4) for q in np.quantile(ood, (0.5, 0.8, 0.95))} | {1.0}) if len(ood) else [1.0]
    return taus, deltas


def test_report_on_a_tiny_build_holds_its_invariants(tiny_model, tmp_path):
    model, _ = tiny_model
    taus, deltas = _thresholds(model)
    out = tmp_path / "out"
    assert cascade.main(["--model", str(model), "--limit", str(LIMIT), "--out-dir", str(out),
                         "--low-confidence", str(taus[len(taus) // 2]), "--max-ood", str(deltas[-2 if len(deltas) > 1 else -1]),
                         "--taus", *map(str, taus), "--deltas", *map(str, deltas)]) == 0
    report = json.loads((out / "cascade.json").read_text())
    stream, default = report["stream"], report["default"]
    # Some lines kept, some escalated: otherwise the accuracy checks below prove nothing.
    assert 0 < default["escalated"] < 1 and default["kept_accuracy"] is not None
    assert len({f["escalated"] for f in report["sweep"]["tau"]}) > 1

    from service.demo import replay_lines
    assert stream["lines"] == LIMIT and stream["stream_lines"] == len(replay_lines(None))
    assert stream["classified"] + sum(stream["refused"].values()) == LIMIT
    assert default["labelled"] == stream["classified"] - stream["unlabelled"] - sum(stream["gold_not_in_taxonomy"].values())

    rows = [default, *report["sweep"]["tau"], *report["sweep"]["delta"], *report["by_system"].values()]
    for figures in rows:
        for name, value in _shares(figures):
            assert 0.0 <= value <= 1.0, (name, value)
        # Escalated lines are answered by the teacher (right by construction); kept ones by the student.
        assert figures["system_accuracy"] >= figures["student_accuracy"] - 1e-9
        assert figures["system_accuracy"] >= figures["kept_share"] * figures["kept_accuracy"] - 1e-4 \
            if figures["kept_accuracy"] is not None else True
        if figures["kept_accuracy"] is not None:
            expected = (1 - figures["kept_share"]) + figures["kept_share"] * figures["kept_accuracy"]
            assert figures["system_accuracy"] == pytest.approx(expected, abs=2e-4)
        # One call per escalated template (one model, dedup far above the templates here), never per line.
        assert figures["teacher_calls"] <= figures["escalated_lines"]
        assert figures["teacher_calls"] == figures["escalated_templates"]
        assert figures["teacher_calls_per_1000_lines"] == pytest.approx(1000 * figures["teacher_calls"]
                                                                         / figures["classified"], abs=0.01)
        assert sum(figures["escalated_by_reason"].values()) == pytest.approx(figures["escalated"], abs=5e-4)
    assert sum(f["classified"] for f in report["by_system"].values()) == stream["classified"]
    assert sum(f["teacher_calls"] for f in report["by_system"].values()) == default["teacher_calls"]

    taus, deltas = report["sweep"]["tau"], report["sweep"]["delta"]
    assert [f["low_confidence"] for f in taus] == sorted(f["low_confidence"] for f in taus)
    for lower, higher in zip(taus, taus[1:]):  # a higher τ escalates every line a lower one did, and more
        assert higher["escalated"] >= lower["escalated"]
        assert higher["teacher_calls"] >= lower["teacher_calls"]
        assert higher["system_accuracy"] >= lower["system_accuracy"]
    for lower, higher in zip(deltas, deltas[1:]):  # a higher δ escalates fewer
        assert higher["escalated"] <= lower["escalated"]
    # The sweep's rows at the streamed policy are the streamed figures.
    policy = report["policy"]
    for row in (*taus, *deltas):
        if (row["low_confidence"], row["max_ood"]) == (policy["low_confidence"], policy["max_ood"]):
            assert {k: v for k, v in row.items() if k not in ("low_confidence", "max_ood")} == default

    k8s = report["k8s_dev_lines"]
    assert k8s["n"] + k8s["n_bad"] == 48 and 0 <= k8s["escalated"] <= 1

    md = (out / "cascade.md").read_text()
    assert report["model_version"] in md and "right by construction" in md
    assert f"--limit {LIMIT}" in md and "per 1,000 lines" in md
