"""Score a model artifact on labelled log lines: what `logdistill evaluate` and the build's dev-set score run.

Input: CSV (a header naming `line` and `label`; an optional `probs` column holds the teacher's soft
label as a JSON {label: p} object; other columns are ignored) or JSON Lines (objects with `line`,
`label`, optional `probs`). Lines go through the shipped runtime (service.classifier.Classifier,
the int8 ONNX student), never torch.

Bad rows are reported, never silently skipped: each one (file, row, reason, error, preview) is kept
out of the scores and listed in the report's `bad_rows`. `row` is the line number in the file where
the record starts (the CSV header is line 1). Fully blank physical lines are not records.

    rows, bad = read_labelled(["mine.csv"], classifier.labels)
    report = evaluate_lines(classifier, rows, bad)
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

import numpy as np

from service.classifier import LineError
from training.evaluation.calibration import escalation_figures, risk_coverage
from training.evaluation.metrics import (accuracy_at_coverage, classification_report, expected_calibration_error,
                                         group_bootstrap_accuracy, soft_agreement, teacher_cross_entropy)

FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
STDIN = "-"
PREVIEW_CHARS = 120
CLASSIFY_CHUNK_ROWS = 512
COVERAGES = (0.5, 0.8, 0.9)
ECE_BINS = 15
SOFT_AGREEMENT_THRESHOLD = 0.3
# group_bootstrap_accuracy draws a (resamples x groups) index matrix: one group per row up to this many
# rows; past it, rows are bootstrapped in this many interleaved blocks (row i in block i % N), which keeps
# the draw matrix at ~40 MB whatever the file size.
BOOTSTRAP_MAX_GROUPS = 5000
BOOTSTRAP_RESAMPLES = 1000
# A CSV field longer than this stops the file (reported); lines up to it reach the classifier, whose
# own --max-line-bytes limit reports them as too_long.
CSV_FIELD_LIMIT = 16 * 1024 * 1024


class InputError(ValueError):
    """The input as a whole cannot be read (unknown format, unreadable file, no usable header)."""


@dataclass(frozen=True)
class LabelledRow:
    file: str
    row: int
    line: str
    label: str
    probs: tuple[float, ...] | None = None  # the teacher's distribution, in the model's label order


@dataclass(frozen=True)
class BadRow:
    file: str
    row: int
    reason: str  # missing_field, empty_line, unknown_label, bad_json, bad_probs, bad_csv, or the classifier's
    error: str   # (too_long, invalid_utf8, ...): a code; error says it in words
    preview: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Prediction:
    row: LabelledRow
    label: str
    confidence: float
    probs: np.ndarray  # the model's distribution, in its label order
    escalate: bool = False  # the cascade's decision (service/confidence.py) under the classifier's policy


# ---- reading --------------------------------------------------------------------------------

def input_format(path: str, forced: str | None = None) -> str:
    """csv or jsonl: `forced` if given, else from the extension; anything else is refused."""
    if forced:
        if forced not in FORMATS:
            raise InputError(f"unknown format {forced!r} (use one of {', '.join(FORMATS)})")
        return forced
    if path == STDIN:
        raise InputError("reading stdin ('-') needs --format csv or --format jsonl")
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise InputError(f"{path}: cannot tell the format from the extension (expected .csv, .jsonl or .json); "
                         "name it with one of those or give --format csv|jsonl")
    return found


def read_labelled(paths: Iterable[str | Path], labels: Iterable[str], fmt: str | None = None,
                  stdin: TextIO | None = None) -> tuple[list[LabelledRow], list[BadRow]]:
    """Every record of every file, in order: (good rows, bad rows). Raises InputError for a whole-file problem.

    `labels` are the model's (Classifier.labels): a gold label outside them is a bad row. `fmt` forces
    the format of every file; `-` is stdin (`stdin`, default sys.stdin), and needs `fmt`.
    """
    labels = tuple(labels)
    paths = [str(p) for p in paths]
    formats = [input_format(p, fmt) for p in paths]  # refuse before reading anything
    if paths.count(STDIN) > 1:
        raise InputError("stdin ('-') can be read only once")
    rows: list[LabelledRow] = []
    bad: list[BadRow] = []
    for path, form in zip(paths, formats):
        if path == STDIN:
            stream = stdin or io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape",
                                               newline="")
            records = _records(stream, form, "<stdin>", labels)
            _collect(records, rows, bad)
            continue
        try:
            # Undecodable bytes survive as surrogates and reach the classifier, which reports the row as
            # invalid_utf8, instead of one bad byte failing the whole file.
            with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
                _collect(_records(stream, form, path, labels), rows, bad)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from exc
    return rows, bad


def _collect(records: Iterator[LabelledRow | BadRow], rows: list, bad: list) -> None:
    for record in records:
        (rows if isinstance(record, LabelledRow) else bad).append(record)


def _records(stream: TextIO, form: str, name: str, labels: tuple[str, ...]) -> Iterator[LabelledRow | BadRow]:
    fields = _csv_fields(stream, name) if form == "csv" else _jsonl_fields(stream, name)
    for item in fields:
        yield item if isinstance(item, BadRow) else _check(name, *item, labels=labels)


def _csv_fields(stream: TextIO, name: str):
    """(row, line, label, probs text) per CSV record, or a BadRow; InputError without a usable header."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{name}: unreadable CSV header: {exc}") from exc
    columns = [c.strip().lower() for c in header or []]
    missing = [c for c in ("line", "label") if c not in columns]
    if missing:
        raise InputError(f"{name}: the CSV header must name the columns 'line' and 'label' "
                         f"(missing {', '.join(missing)}; header: {header or 'none, the file is empty'})")
    at_line, at_label = columns.index("line"), columns.index("label")
    at_probs = columns.index("probs") if "probs" in columns else None
    row = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRow(name, row, "bad_csv", f"CSV error: {exc}; the rest of the file was not read", "")
            return
        start, row = row, reader.line_num + 1
        if not any(field.strip() for field in record):
            continue  # a blank line is not a record
        if len(record) <= max(at_line, at_label):
            yield BadRow(name, start, "missing_field",
                         f"{len(record)} field(s), but 'line' and 'label' are columns {at_line + 1} and "
                         f"{at_label + 1}", _preview(",".join(record)))
            continue
        probs = record[at_probs] if at_probs is not None and at_probs < len(record) else ""
        yield start, record[at_line], record[at_label], probs.strip() or None


def _jsonl_fields(stream: TextIO, name: str):
    """(row, line, label, probs object) per JSON Lines record, or a BadRow."""
    for row, text in enumerate(stream, 1):
        if not text.strip():
            continue  # a blank line is not a record
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield BadRow(name, row, "bad_json", f"not valid JSON: {exc}", _preview(text.rstrip("\r\n")))
            continue
        if not isinstance(record, dict):
            yield BadRow(name, row, "bad_json", f"expected a JSON object, got {type(record).__name__}",
                         _preview(text.rstrip("\r\n")))
            continue
        absent = [key for key in ("line", "label") if record.get(key) is None]
        wrong = [key for key in ("line", "label") if key not in absent and not isinstance(record[key], str)]
        if absent or wrong:
            why = ([f"no {', '.join(repr(k) for k in absent)}"] if absent else []) + \
                  [f"{key!r} is a {type(record[key]).__name__}, not a string" for key in wrong]
            yield BadRow(name, row, "missing_field", "; ".join(why), _preview(text.rstrip("\r\n")))
            continue
        yield row, record["line"], record["label"], record.get("probs")


def _check(name: str, row: int, line: str, label: str, probs, labels: tuple[str, ...]) -> LabelledRow | BadRow:
    label = label.strip()
    if not line.strip():
        return BadRow(name, row, "empty_line", "the line is empty (nothing to classify)", _preview(line))
    if not label:
        return BadRow(name, row, "missing_field", "no label", _preview(line))
    if label not in labels:
        return BadRow(name, row, "unknown_label",
                      f"label {_preview(label, 40)!r} is not one of the model's {len(labels)} labels", _preview(line))
    teacher = None
    if probs is not None:
        teacher = _teacher_probs(probs, labels)
        if isinstance(teacher, str):
            return BadRow(name, row, "bad_probs", teacher, _preview(line))
    return LabelledRow(name, row, line, label, teacher)


def _teacher_probs(probs, labels: tuple[str, ...]) -> tuple[float, ...] | str:
    """The teacher distribution as a vector over `labels` (normalised), or why it is unusable."""
    if isinstance(probs, str):
        try:
            probs = json.loads(probs)
        except ValueError as exc:
            return f"probs is not valid JSON: {exc}"
    if not isinstance(probs, dict) or not probs:
        return "probs must be a non-empty JSON object {label: probability}"
    unknown = [str(k) for k in probs if k not in labels]
    if unknown:
        return f"probs names label(s) the model does not have: {', '.join(map(repr, unknown[:5]))}"
    values = list(probs.values())
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
               for v in values):
        return "probs values must be non-negative numbers"
    total = float(sum(values))
    if total <= 0:
        return "probs sum to 0"
    return tuple(float(probs.get(label, 0.0)) / total for label in labels)


def _preview(text: str, chars: int = PREVIEW_CHARS) -> str:
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") \
        if _has_surrogates(text) else text
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _raw(line: str) -> bytes:
    """The line's bytes as in the file (undecodable bytes restored), for Classifier.classify_raw."""
    try:
        return line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \\ud800 escape: invalid UTF-8, reported as such
        return line.encode("utf-8", "surrogatepass")


# ---- classifying and scoring ----------------------------------------------------------------

def predict_rows(classifier, rows: list[LabelledRow],
                 chunk_rows: int = CLASSIFY_CHUNK_ROWS) -> tuple[list[Prediction], list[BadRow]]:
    """Classify every row through the runtime, in batches: (predictions, rows the classifier refused).

    The answer is classify_raw's; its exact probabilities (Classification.probs is rounded for output)
    are read back with Classifier.probabilities, from the template cache the classification just filled.
    """
    labels = tuple(classifier.labels)
    predictions: list[Prediction] = []
    bad: list[BadRow] = []
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start: start + chunk_rows]
        results = classifier.classify_raw([_raw(row.line) for row in chunk])
        answered = [(row, r) for row, r in zip(chunk, results) if not isinstance(r, LineError)]
        exact = classifier.probabilities(list(dict.fromkeys(r.template for _, r in answered)))
        for row, result in zip(chunk, results):
            if isinstance(result, LineError):  # too_long, invalid_utf8, empty
                bad.append(BadRow(row.file, row.row, result.reason, result.error, _preview(row.line)))
        for row, result in answered:
            probs = np.asarray(exact[result.template], dtype=float)
            predictions.append(Prediction(row, result.label, float(result.confidence), probs, result.escalate))
    return predictions, bad


def score(predictions: list[Prediction], labels: Iterable[str], bad_rows: Iterable[BadRow] = (),
          model_version: str | None = None, files: Iterable[str] | None = None) -> dict:
    """The report: accuracy (95% bootstrap CI), macro-F1, per label, confusion, ECE, coverage, teacher
    agreement when rows carry teacher probs, per file when there are several, and every bad row."""
    labels = tuple(labels)
    files = list(files) if files is not None else None
    bad_rows = sorted(bad_rows, key=lambda b: _file_order(b, files))
    n = len(predictions)
    report: dict = {"model_version": model_version, "n": n, "n_bad": len(bad_rows), "labels": list(labels)}
    files = list(dict.fromkeys(files if files is not None else
                               [p.row.file for p in predictions] + [b.file for b in bad_rows]))
    report["files"] = files
    if n == 0:
        report.update(accuracy=None, accuracy_ci=None, macro_f1=None, per_label={}, confusion=None, ece=None,
                      mean_confidence=None, accuracy_at_coverage=None)
    else:
        gold = np.array([labels.index(p.row.label) for p in predictions])
        pred = np.array([labels.index(p.label) for p in predictions])
        probs = np.stack([p.probs for p in predictions])
        base = classification_report(gold, pred, labels)
        correct = gold == pred
        groups = [str(i % BOOTSTRAP_MAX_GROUPS) for i in range(n)]
        boot = group_bootstrap_accuracy(correct, groups, resamples=BOOTSTRAP_RESAMPLES)
        report.update(
            accuracy=round(base["accuracy"], 4),
            accuracy_ci={"ci_level": boot["ci_level"], "ci_low": round(boot["ci_low"], 4),
                         "ci_high": round(boot["ci_high"], 4), "groups": boot["groups"],
                         "method": "bootstrap over rows" if boot["groups"] == n else
                                   f"bootstrap over {boot['groups']} interleaved blocks of rows"},
            macro_f1=round(base["macro_f1"], 4),
            per_label={label: {**m, "support": int(m["support"])} for label, m in base["per_label"].items()},
            confusion={"labels": list(labels), "rows": "gold", "columns": "predicted",
                       "matrix": [[int(v) for v in row] for row in base["confusion"]]},
            ece=round(expected_calibration_error(probs, gold, bins=ECE_BINS), 4),
            ece_bins=ECE_BINS,
            mean_confidence=round(float(np.mean([p.confidence for p in predictions])), 4),
            accuracy_at_coverage={key: round(value, 4)
                                  for key, value in accuracy_at_coverage(probs, gold, COVERAGES).items()},
            cascade=cascade_report(predictions, correct),
        )
        with_teacher = [i for i, p in enumerate(predictions) if p.row.probs is not None]
        if with_teacher:
            teacher = np.array([predictions[i].row.probs for i in with_teacher])
            report.update(
                n_with_probs=len(with_teacher),
                soft_agreement=round(soft_agreement(probs[with_teacher], teacher, SOFT_AGREEMENT_THRESHOLD), 4),
                soft_agreement_threshold=SOFT_AGREEMENT_THRESHOLD,
                teacher_cross_entropy=round(teacher_cross_entropy(probs[with_teacher], teacher), 4),
            )
    if len(files) > 1:
        per_file = {}
        for name in files:
            mine = [p.label == p.row.label for p in predictions if p.row.file == name]
            per_file[name] = {"n": len(mine), "n_bad": sum(b.file == name for b in bad_rows),
                              "accuracy": round(float(np.mean(mine)), 4) if mine else None}
        report["per_file"] = per_file
    report["bad_reasons"] = dict(Counter(b.reason for b in bad_rows).most_common())
    report["bad_rows"] = [b.to_dict() for b in bad_rows]
    return report


def cascade_report(predictions: list[Prediction], correct: np.ndarray) -> dict:
    """What the classifier's escalation policy did on these rows, and what any τ alone could do."""
    return {**escalation_figures(np.array([p.escalate for p in predictions]), correct),
            "risk_coverage": risk_coverage(np.array([p.confidence for p in predictions]), correct)}


def _file_order(bad: BadRow, files) -> tuple:
    order = list(files) if files is not None else []
    return (order.index(bad.file) if bad.file in order else len(order), bad.file, bad.row)


def evaluate_lines(classifier, rows: list[LabelledRow], bad_rows: Iterable[BadRow] = (),
                   files: Iterable[str] | None = None) -> dict:
    """Classify `rows` with `classifier` (a service.classifier.Classifier) and score them (see score())."""
    predictions, refused = predict_rows(classifier, rows)
    return score(predictions, classifier.labels, [*bad_rows, *refused], model_version=classifier.model_version,
                 files=files)


def prediction_record(prediction: Prediction) -> dict:
    """One row of `--predictions`: for error analysis."""
    row = prediction.row
    return {"file": row.file, "row": row.row, "line": row.line.encode("utf-8", "surrogateescape")
            .decode("utf-8", "backslashreplace") if _has_surrogates(row.line) else row.line,
            "gold": row.label, "predicted": prediction.label, "confidence": round(prediction.confidence, 4),
            "escalate": prediction.escalate, "correct": row.label == prediction.label}
