"""`logdistill evaluate` end to end (the installed console script) on the session's tiny model.

Expected figures are computed here, independently, from the runtime's own `classify` answers for the
same lines: nothing depends on what a particular model predicts.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from service.classifier import Classifier
from training.evaluation.labelled_lines import read_labelled

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LOGDISTILL_SHARED_DATA") or REPO.parent / "shared" / "data")
REQUIRED_KEYS = {"accuracy", "macro_f1", "per_label", "ece", "n"}

LINES = [
    "2024-06-12T10:01:02.123456789Z stderr F dial tcp 10.0.0.7:5432: connect: connection refused",
    "E0612 10:01:02.123456       1 schedule_one.go:345] 0/3 nodes are available: 3 Insufficient cpu.",
    "Started container nginx in pod web-7d9f8b6c5-x2kqz",
    json.dumps({"level": "error", "ts": "2024-06-12T10:01:02Z", "msg": "failed to mount volume",
                "error": "permission denied"}),
    'Failed to pull image "registry.local/app:v2": rpc error: code = NotFound desc = manifest unknown',
    "OOMKilled: container web exceeded its memory limit, with a comma",
    "Liveness probe failed: HTTP probe failed with statuscode: 503",
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "x509: certificate has expired or is not yet valid",
    "ERROR: deadlock detected while updating table orders",
    "Successfully assigned default/web-0 to node-3",
    'error parsing config file "/etc/app/config.yaml": yaml: line 3: mapping values are not allowed',
]


def run_cli(exe, args, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *map(str, args)], input=stdin, capture_output=True, timeout=300)


def evaluate_json(exe, model, *args, expect_rc: int = 0) -> dict:
    result = run_cli(exe, ["evaluate", "--model", model, "--json", *args])
    assert result.returncode == expect_rc, result.stderr.decode(errors="replace")
    return one_json_object(result.stdout)


def one_json_object(stdout: bytes) -> dict:
    text = stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text[:500]  # exactly one line: one object
    report = json.loads(text)
    assert isinstance(report, dict)
    return report


@pytest.fixture(scope="module")
def model(tiny_model) -> Path:
    return tiny_model[0]


@pytest.fixture(scope="module")
def classifier(model) -> Classifier:
    return Classifier.from_dir(model, threads=2, cache_size=0)  # as the CLI runs it


@pytest.fixture(scope="module")
def answers(classifier) -> list[str]:
    """The model's label for each of LINES, as `classify` gives it."""
    return [c.label for c in classifier.classify_texts(LINES)]


def other_label(labels, label: str) -> str:
    return next(candidate for candidate in labels if candidate != label)


@pytest.fixture(scope="module")
def gold(classifier, answers) -> list[str]:
    """Gold labels built to be right on even rows and wrong on odd ones, whatever the model says."""
    return [a if i % 2 == 0 else other_label(classifier.labels, a) for i, a in enumerate(answers)]


def expected_scores(golds: list[str], predicted: list[str]) -> dict:
    """Accuracy, macro-F1 (labels present in gold), per-label support and (gold, predicted) counts."""
    pairs = Counter(zip(golds, predicted))
    f1s = []
    for label in set(golds):
        tp = pairs[(label, label)]
        precision = tp / max(sum(p == label for p in predicted), 1)
        recall = tp / sum(g == label for g in golds)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return {"accuracy": sum(g == p for g, p in zip(golds, predicted)) / len(golds),
            "macro_f1": sum(f1s) / len(f1s), "support": Counter(golds), "pairs": pairs}


def check_scores(report: dict, golds: list[str], predicted: list[str]) -> None:
    expected = expected_scores(golds, predicted)
    assert report["n"] == len(golds)
    assert report["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-4)
    assert report["macro_f1"] == pytest.approx(expected["macro_f1"], abs=1e-4)
    assert {label: m["support"] for label, m in report["per_label"].items() if m["support"]} == expected["support"]
    labels, matrix = report["confusion"]["labels"], report["confusion"]["matrix"]
    assert {(labels[i], labels[j]): v for i, row in enumerate(matrix) for j, v in enumerate(row) if v} \
        == dict(expected["pairs"])
    ci = report["accuracy_ci"]
    assert 0 <= ci["ci_low"] <= report["accuracy"] <= ci["ci_high"] <= 1 and ci["ci_level"] == 0.95
    assert 0 <= report["ece"] <= 1 and 0 < report["mean_confidence"] <= 1
    assert set(report["accuracy_at_coverage"]) == {"0.5", "0.8", "0.9"}


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# ---- good input -----------------------------------------------------------------------------

def test_csv_scores_match_classify(model, logdistill_exe, tmp_path, gold, answers):
    # Columns in another order, an ignored column, quoted commas and quotes in lines.
    rows = [{"source": f"s{i}", "label": g, "line": line} for i, (line, g) in enumerate(zip(LINES, gold))]
    path = write_csv(tmp_path / "mine.csv", rows, ["source", "label", "line"])
    report = evaluate_json(logdistill_exe, model, path)
    assert REQUIRED_KEYS <= set(report)
    check_scores(report, gold, answers)
    assert report["accuracy"] == pytest.approx(0.5, abs=1e-4)  # by construction: right on even rows only
    assert report["n_bad"] == 0 and report["bad_rows"] == []
    assert "soft_agreement" not in report and "per_file" not in report  # no probs column; one file
    assert report["model_version"] == json.loads((model / "config.json").read_text())["model_version"]


def test_jsonl_gives_the_same_report_as_csv(model, logdistill_exe, tmp_path, gold, answers):
    rows = [{"line": line, "label": g, "note": 1} for line, g in zip(LINES, gold)]
    from_csv = evaluate_json(logdistill_exe, model, write_csv(tmp_path / "a.csv", rows, ["line", "label"]))
    from_jsonl = evaluate_json(logdistill_exe, model, write_jsonl(tmp_path / "a.jsonl", rows))
    check_scores(from_jsonl, gold, answers)
    same = ("n", "accuracy", "macro_f1", "per_label", "confusion", "ece", "accuracy_at_coverage", "accuracy_ci")
    assert {k: from_jsonl[k] for k in same} == {k: from_csv[k] for k in same}
    # .json is read as JSON Lines too, and stdin with --format.
    assert evaluate_json(logdistill_exe, model, write_jsonl(tmp_path / "a.json", rows))["accuracy"] \
        == from_jsonl["accuracy"]
    result = run_cli(logdistill_exe, ["evaluate", "--model", model, "--json", "--format", "jsonl", "-"],
                     (tmp_path / "a.jsonl").read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert one_json_object(result.stdout)["accuracy"] == from_jsonl["accuracy"]


def test_realistic_labels_and_several_files(model, logdistill_exe, tmp_path, answers):
    golds = ["network", "scheduling", "normal", "storage", "image", "resource", "probe", "crash", "security",
             "database", "normal", "config"]
    rows = [{"line": line, "label": g} for line, g in zip(LINES, golds)]
    first = write_csv(tmp_path / "first.csv", rows[:5], ["line", "label"])
    second = write_jsonl(tmp_path / "second.jsonl", rows[5:])
    report = evaluate_json(logdistill_exe, model, first, second)
    check_scores(report, golds, answers)
    per_file = report["per_file"]
    assert list(per_file) == [str(first), str(second)]
    for name, part in ((str(first), slice(0, 5)), (str(second), slice(5, None))):
        expected = expected_scores(golds[part], answers[part])["accuracy"]
        assert per_file[name]["n"] == len(golds[part])
        assert per_file[name]["accuracy"] == pytest.approx(expected, abs=1e-4)


def test_human_output(model, logdistill_exe, tmp_path, gold):
    rows = [{"line": line, "label": g} for line, g in zip(LINES, gold)]
    rows.append({"line": "some line", "label": "not-a-label"})
    path = write_csv(tmp_path / "h.csv", rows, ["line", "label"])
    result = run_cli(logdistill_exe, ["evaluate", "--model", model, path])
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert f"{len(LINES)} evaluated, 1 bad" in out
    assert "accuracy  0.5000" in out and "macro-F1" in out and "ECE" in out and "coverage" in out
    assert "precision  recall" in out
    for label in set(gold):
        assert any(line.startswith(label + " ") for line in out.splitlines())
    assert "confusion matrix (rows: gold, columns: predicted)" in out
    assert f"{path}:{len(rows) + 1}: unknown_label" in out  # header is line 1
    assert "the model's labels:" in out
    assert "Traceback" not in result.stderr.decode()


# ---- bad rows -------------------------------------------------------------------------------

def test_bad_rows_are_listed_and_excluded(model, logdistill_exe, tmp_path, gold, answers):
    good = [(line, g) for line, g in zip(LINES, gold)]
    csv_path = tmp_path / "bad.csv"
    csv_path.write_bytes(
        b"line,label\n"
        + "".join(f'"{line.replace(chr(34), chr(34) * 2)}",{g}\n' for line, g in good[:6]).encode()
        + b"a line with a made-up label,nonsense\n"        # 8: unknown_label
        + b"  ,normal\n"                                     # 9: empty_line
        + b"only one field\n"                                # 10: missing_field
        + b"a line without a label,\n"                       # 11: missing_field (no label)
        + b"\n"                                              # a blank line is not a record
        + b"caf\xe9 latin-1 bytes,normal\n"                  # 13: the classifier's invalid_utf8
        + b"x" * 300 + b",normal\n")                         # 14: the classifier's too_long
    jsonl_path = tmp_path / "bad.jsonl"
    jsonl_path.write_text(
        "".join(json.dumps({"line": line, "label": g}) + "\n" for line, g in good[6:9])
        + "{not json\n"                                      # 4: bad_json
        + json.dumps(["line", "label"]) + "\n"               # 5: bad_json (not an object)
        + json.dumps({"line": "no label here"}) + "\n"       # 6: missing_field
        + json.dumps({"line": 42, "label": "normal"}) + "\n"  # 7: missing_field (not a string)
        + json.dumps({"line": "", "label": "normal"}) + "\n"  # 8: empty_line
        + "".join(json.dumps({"line": line, "label": g}) + "\n" for line, g in good[9:]))
    report = evaluate_json(logdistill_exe, model, csv_path, jsonl_path, "--max-line-bytes", 200)
    found = [(b["file"], b["row"], b["reason"]) for b in report["bad_rows"]]
    c, j = str(csv_path), str(jsonl_path)
    assert found == [(c, 8, "unknown_label"), (c, 9, "empty_line"), (c, 10, "missing_field"),
                     (c, 11, "missing_field"), (c, 13, "invalid_utf8"), (c, 14, "too_long"),
                     (j, 4, "bad_json"), (j, 5, "bad_json"), (j, 6, "missing_field"), (j, 7, "missing_field"),
                     (j, 8, "empty_line")]
    assert all(b["error"] for b in report["bad_rows"])
    assert report["n_bad"] == len(found)
    assert report["bad_reasons"] == dict(Counter(reason for *_, reason in found))
    assert "nonsense" in report["bad_rows"][0]["error"]
    assert "\\xe9" in report["bad_rows"][4]["preview"]  # undecodable bytes escaped, not dropped
    assert len(report["bad_rows"][5]["preview"]) < 300
    check_scores(report, gold, answers)  # exactly the good rows, nothing else
    assert report["per_file"][c] == {"n": 6, "n_bad": 6, "accuracy": pytest.approx(0.5, abs=1e-4)}
    assert report["per_file"][j]["n"] == 6 and report["per_file"][j]["n_bad"] == 5


def test_exit_codes(model, logdistill_exe, tmp_path, gold):
    good = [{"line": line, "label": g} for line, g in zip(LINES, gold)]
    clean = write_jsonl(tmp_path / "clean.jsonl", good)
    one_bad = write_jsonl(tmp_path / "one_bad.jsonl", good + [{"line": "x", "label": "nope"}])
    all_bad = write_jsonl(tmp_path / "all_bad.jsonl",
                          [{"line": "x", "label": "nope"}, {"line": " ", "label": "normal"}])

    assert evaluate_json(logdistill_exe, model, "--strict", clean)["n_bad"] == 0
    assert evaluate_json(logdistill_exe, model, one_bad)["n_bad"] == 1  # reported, exit 0
    strict = run_cli(logdistill_exe, ["evaluate", "--model", model, "--strict", one_bad])
    assert strict.returncode == 1 and "1 bad row(s)" in strict.stderr.decode()
    assert "unknown_label" in strict.stdout.decode()

    nothing = evaluate_json(logdistill_exe, model, all_bad, expect_rc=2)  # still one JSON object
    assert nothing["n"] == 0 and nothing["n_bad"] == 2 and nothing["accuracy"] is None
    assert REQUIRED_KEYS <= set(nothing)
    human = run_cli(logdistill_exe, ["evaluate", "--model", model, all_bad])
    assert human.returncode == 2 and "no valid row" in human.stderr.decode()
    assert "empty_line" in human.stdout.decode() and "unknown_label" in human.stdout.decode()


@pytest.mark.parametrize("args, message", [
    (["notes.txt"], "--format"),
    (["-"], "--format"),
    (["missing.csv"], "No such file"),
    (["noheader.csv"], "'line' and 'label'"),
])
def test_unreadable_input_is_refused(model, logdistill_exe, tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("line,label\nhello,normal\n")
    (tmp_path / "noheader.csv").write_text("hello,normal\n")
    args = [a if a == "-" else tmp_path / a for a in args]
    result = run_cli(logdistill_exe, ["evaluate", "--model", model, *args])
    assert result.returncode == 2
    assert result.stdout == b""
    assert message in result.stderr.decode() and "Traceback" not in result.stderr.decode()


def test_other_extension_with_format(model, logdistill_exe, tmp_path, gold):
    path = tmp_path / "notes.txt"
    write_csv(path, [{"line": line, "label": g} for line, g in zip(LINES, gold)], ["line", "label"])
    assert evaluate_json(logdistill_exe, model, "--format", "csv", path)["n"] == len(LINES)


def test_missing_model(logdistill_exe, tmp_path):
    path = write_csv(tmp_path / "a.csv", [{"line": "hello", "label": "normal"}], ["line", "label"])
    result = run_cli(logdistill_exe, ["evaluate", "--model", tmp_path / "nope", path])
    assert result.returncode == 2 and "not a model directory" in result.stderr.decode()


# ---- teacher probs and predictions ----------------------------------------------------------

def test_probs_column_gives_soft_agreement(model, logdistill_exe, tmp_path, classifier, answers, gold):
    # The teacher puts its mass on the model's answer on rows 0, 3, 6, 9 and elsewhere on the others.
    teacher = [{a: 1.0} if i % 3 == 0 else {a: 0.2, other_label(classifier.labels, a): 0.8}
               for i, a in enumerate(answers)]
    rows = [{"line": line, "label": g, "probs": json.dumps(t)} for line, g, t in zip(LINES, gold, teacher)]
    report = evaluate_json(logdistill_exe, model, write_csv(tmp_path / "p.csv", rows, ["line", "label", "probs"]))
    assert report["n_with_probs"] == len(LINES)
    assert report["soft_agreement"] == pytest.approx(4 / 12, abs=1e-4)
    results = classifier.classify_texts(LINES)
    exact = classifier.probabilities([r.template for r in results])
    labels = list(classifier.labels)
    cross_entropy = -sum(sum(p * math.log(max(float(exact[r.template][labels.index(label)]), 1e-12))
                             for label, p in t.items()) for r, t in zip(results, teacher)) / len(LINES)
    assert report["teacher_cross_entropy"] == pytest.approx(cross_entropy, abs=1e-3)
    # A probs value that is not a distribution over the model's labels is a bad row.
    rows.append({"line": "disk full", "label": "resource", "probs": '{"resource": 0.5, "weather": 0.5}'})
    rows.append({"line": "disk full", "label": "resource", "probs": "{oops"})
    report = evaluate_json(logdistill_exe, model, write_csv(tmp_path / "q.csv", rows, ["line", "label", "probs"]))
    assert [b["reason"] for b in report["bad_rows"]] == ["bad_probs", "bad_probs"]
    assert report["n"] == len(LINES)


def test_predictions_file(model, logdistill_exe, tmp_path, gold, answers):
    rows = [{"line": line, "label": g} for line, g in zip(LINES, gold)] + [{"line": "", "label": "normal"}]
    out = tmp_path / "pred.jsonl"
    report = evaluate_json(logdistill_exe, model, "--predictions", out, write_jsonl(tmp_path / "in.jsonl", rows))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == report["n"] == len(LINES)
    assert [r["line"] for r in records] == LINES
    assert [r["gold"] for r in records] == gold
    assert [r["predicted"] for r in records] == answers
    assert [r["row"] for r in records] == list(range(1, len(LINES) + 1))
    assert all(0 < r["confidence"] <= 1 and r["correct"] == (r["gold"] == r["predicted"]) for r in records)


# ---- the shared dev set, the runtime only ---------------------------------------------------

def test_shared_dev_lines(model, logdistill_exe, classifier):
    path = SHARED_DATA / "k8s_dev_lines.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared data directory is absent)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    report = evaluate_json(logdistill_exe, model, path)
    assert report["n"] + report["n_bad"] == len(rows)
    good = [r for r in rows if r["label"] in classifier.labels and r["line"].strip()]
    assert report["n"] == len(good)
    check_scores(report, [r["label"] for r in good], [c.label for c in classifier.classify_texts(
        [r["line"] for r in good])])
    assert report["n_with_probs"] == report["n"]
    assert 0 <= report["soft_agreement"] <= 1 and report["teacher_cross_entropy"] > 0
    human = run_cli(logdistill_exe, ["evaluate", "--model", model, path])
    assert human.returncode == 0 and b"confusion matrix" in human.stdout


def test_no_torch_needed(model, tmp_path, gold):
    """The module and its scoring run on an edge install: torch is never imported."""
    path = write_jsonl(tmp_path / "in.jsonl", [{"line": line, "label": g} for line, g in zip(LINES, gold)])
    code = (
        "import sys, json\n"
        "import training.evaluation.cli\n"
        "from service.classifier import Classifier\n"
        "from training.evaluation.labelled_lines import evaluate_lines, read_labelled\n"
        f"c = Classifier.from_dir({str(model)!r}, threads=1)\n"
        f"rows, bad = read_labelled([{str(path)!r}], c.labels)\n"
        "report = evaluate_lines(c, rows, bad)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(json.dumps(report))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["n"] == len(LINES)


# ---- reading, no model ----------------------------------------------------------------------

def test_read_labelled_row_numbers_and_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b'\xef\xbb\xbfLabel,Line\r\nnormal,"two\nlines"\r\n\r\nnetwork,after a blank line\r\n'
                     b'normal,"a ""quoted"" word"\r\n')
    rows, bad = read_labelled([path], ("normal", "network"))
    assert bad == []
    assert [(r.row, r.label, r.line) for r in rows] == [
        (2, "normal", "two\nlines"), (5, "network", "after a blank line"), (6, "normal", 'a "quoted" word')]


def test_score_orientation_and_figures():
    """score() on hand-made predictions (the tiny model answers nearly everything alike): the confusion
    matrix is rows=gold, columns=predicted, and each figure is the one worked out by hand."""
    import numpy as np

    from training.evaluation.labelled_lines import BadRow, LabelledRow, Prediction, score

    labels = ("normal", "network", "crash")
    cases = [("normal", "normal", 0.9), ("normal", "normal", 0.8), ("network", "normal", 0.7),
             ("network", "network", 0.6), ("crash", "network", 0.5)]
    predictions = []
    for i, (gold, pred, confidence) in enumerate(cases):
        probs = np.full(3, (1 - confidence) / 2)
        probs[labels.index(pred)] = confidence
        teacher = (0.0, 0.0, 1.0) if gold == "crash" else None
        predictions.append(Prediction(LabelledRow("a.csv" if i < 3 else "b.csv", i + 2, f"l{i}", gold, teacher),
                                      pred, confidence, probs))
    bad = [BadRow("b.csv", 9, "unknown_label", "x", "p"), BadRow("a.csv", 7, "empty_line", "x", "")]
    report = score(predictions, labels, bad, model_version="v1", files=["a.csv", "b.csv"])
    assert report["accuracy"] == 0.6 and report["n"] == 5 and report["model_version"] == "v1"
    assert report["confusion"]["matrix"] == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]
    assert report["per_label"]["normal"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert report["per_label"]["network"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["per_label"]["crash"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 0.0) / 3, abs=1e-4)
    assert report["mean_confidence"] == pytest.approx(0.7)
    # The most confident rows: 0.9 ✓ 0.8 ✓ 0.7 ✗ 0.6 ✓ 0.5 ✗ -> 50%: 2 rows, 80% and 90%: 4 rows.
    assert report["accuracy_at_coverage"] == {"0.5": 1.0, "0.8": 0.75, "0.9": 0.75}
    # 15 bins, one row in each of five: mean |correct - confidence| = (.1 + .2 + .7 + .4 + .5) / 5.
    assert report["ece"] == pytest.approx(0.38, abs=1e-4)
    assert (report["n_with_probs"], report["soft_agreement"], report["soft_agreement_threshold"]) == (1, 0.0, 0.3)
    assert report["teacher_cross_entropy"] == pytest.approx(-math.log(0.25), abs=1e-4)
    assert report["per_file"] == {"a.csv": {"n": 3, "n_bad": 1, "accuracy": pytest.approx(2 / 3, abs=1e-4)},
                                  "b.csv": {"n": 2, "n_bad": 1, "accuracy": 0.5}}
    assert [(b["file"], b["row"]) for b in report["bad_rows"]] == [("a.csv", 7), ("b.csv", 9)]
