"""`logdistill evaluate`: score a model artifact on the user's own labelled lines.

Registered into the `logdistill` command through an entry point. Runs the shipped int8 ONNX
artifact through the runtime (service.classifier), so it needs no torch: this module and
training.evaluation.labelled_lines import neither torch nor the training pipeline.

Exit status: 0; 2 when the input or the model cannot be read or no row is valid; 1 with
--strict when any row is bad.
"""

from __future__ import annotations

import argparse
import json
import sys

from service.cli import add_policy_arguments, policy_of

DESCRIPTION = """\
Classify labelled log lines with a model artifact and score the answers: accuracy (95% bootstrap CI),
macro-F1, per-label precision/recall/F1, confusion matrix, ECE, accuracy at 50/80/90% coverage, and
agreement with the teacher when the rows carry its probs. Input: CSV with a header naming `line` and
`label` (optional `probs`: a JSON {label: p} teacher distribution; other columns ignored), or JSON Lines
with `line`, `label`, optional `probs`; the format comes from the extension (.csv, .jsonl, .json) or
--format. Bad rows (unknown label, empty line, missing field, bad JSON, a line the classifier refuses)
are listed and left out of the scores, never skipped silently.
Exit status: 0; 2 if the input or model is unreadable or no row is valid; 1 with --strict and a bad row."""


def register(commands) -> None:
    p = commands.add_parser("evaluate", help="score a model on your own labelled lines (CSV or JSONL)",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="labelled lines: .csv, .jsonl/.json, or - (stdin, "
                                                            "with --format)")
    p.add_argument("--model", required=True, help="model artifact directory")
    p.add_argument("--format", choices=["csv", "jsonl"], help="read every FILE as this format "
                                                              "(default: from the extension)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument("--predictions", metavar="PATH", help="also write one JSON line per evaluated line "
                                                         "(file, row, line, gold, predicted, confidence, correct)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any row is bad")
    p.add_argument("--max-bad-shown", type=int, default=20, metavar="N",
                   help="bad rows listed in the tables (default 20; 0: all); --json always lists all")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-line-bytes", type=int, default=64 * 1024,
                   help="longer lines are bad rows (too_long), as `classify` refuses them")
    add_policy_arguments(p)  # the report's "cascade": what this τ/δ would escalate, and the accuracy kept
    p.set_defaults(handler=run_evaluate)


def run_evaluate(args) -> int:
    from service.artifact import ArtifactError
    from service.classifier import Classifier
    from training.evaluation.labelled_lines import (InputError, input_format, predict_rows, prediction_record,
                                                    read_labelled, score)

    try:
        for path in args.files:  # a wrong extension is refused before the model is loaded
            input_format(path, args.format)
        classifier = Classifier.from_dir(args.model, threads=args.threads, batch_size=args.batch_size,
                                         max_line_bytes=args.max_line_bytes, policy=policy_of(args))
        rows, bad = read_labelled(args.files, classifier.labels, fmt=args.format)
    except (ArtifactError, InputError) as exc:
        print(f"logdistill evaluate: {exc}", file=sys.stderr)
        return 2
    predictions, refused = predict_rows(classifier, rows)
    report = score(predictions, classifier.labels, [*bad, *refused], model_version=classifier.model_version,
                   files=["<stdin>" if f == "-" else f for f in args.files])
    report["model"] = str(args.model)
    if report.get("cascade"):
        report["cascade"]["policy"] = {"low_confidence": classifier.policy.low_confidence,
                                       "max_ood": classifier.policy.max_ood}
    if args.predictions:
        try:
            with open(args.predictions, "w", encoding="utf-8") as out:
                for prediction in predictions:
                    out.write(json.dumps(prediction_record(prediction), ensure_ascii=False) + "\n")
        except OSError as exc:
            print(f"logdistill evaluate: cannot write --predictions {args.predictions}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(render(report, args.max_bad_shown))
    if report["n"] == 0:
        print(f"logdistill evaluate: no valid row to score ({report['n_bad']} bad)", file=sys.stderr)
        return 2
    if args.strict and report["n_bad"]:
        print(f"logdistill evaluate: {report['n_bad']} bad row(s) (--strict)", file=sys.stderr)
        return 1
    return 0


# ---- the tables -----------------------------------------------------------------------------

def render(report: dict, max_bad_shown: int = 20) -> str:
    out: list[str] = []
    add = out.append
    add(f"model     {report.get('model', '?')} (version {report['model_version']})")
    add(f"files     {', '.join(report['files'])}")
    add(f"rows      {report['n']} evaluated, {report['n_bad']} bad")
    if report["n"]:
        ci = report["accuracy_ci"]
        add(f"accuracy  {report['accuracy']:.4f}   {ci['ci_level']:.0%} CI {ci['ci_low']:.4f}-{ci['ci_high']:.4f} "
            f"({ci['method']})")
        add(f"macro-F1  {report['macro_f1']:.4f}")
        add(f"ECE       {report['ece']:.4f} ({report['ece_bins']} bins); mean confidence "
            f"{report['mean_confidence']:.4f}")
        coverage = "  ".join(f"{float(k):.0%}: {v:.4f}" for k, v in report["accuracy_at_coverage"].items())
        add(f"accuracy at coverage (most confident share kept)   {coverage}")
        cascade = report["cascade"]
        kept = "n/a" if cascade["kept_accuracy"] is None else f"{cascade['kept_accuracy']:.4f}"
        caught = "n/a" if cascade["errors_caught"] is None else f"{cascade['errors_caught']:.0%}"
        policy = cascade.get("policy", {})
        add(f"cascade   escalate: {cascade['escalated']:.1%} of lines (--low-confidence {policy.get('low_confidence')}, "
            f"--max-ood {policy.get('max_ood')}); accuracy kept {kept}; errors escalated {caught}")
        if "soft_agreement" in report:
            add(f"teacher   {report['n_with_probs']} rows with probs: soft agreement {report['soft_agreement']:.4f} "
                f"(top label holds >= {report['soft_agreement_threshold']:g} of the teacher's mass), "
                f"cross-entropy {report['teacher_cross_entropy']:.4f} nats")
        if "per_file" in report:
            add("")
            width = max(len(name) for name in report["per_file"])
            add(f"{'file':<{width}}  {'n':>6}  {'bad':>5}  accuracy")
            for name, f in report["per_file"].items():
                acc = "-" if f["accuracy"] is None else f"{f['accuracy']:.4f}"
                add(f"{name:<{width}}  {f['n']:>6}  {f['n_bad']:>5}  {acc}")
        add("")
        add(per_label_table(report["per_label"]))
        add("")
        add(confusion_table(report["confusion"]))
    bad = report["bad_rows"]
    if bad:
        add("")
        reasons = ", ".join(f"{reason} {count}" for reason, count in report["bad_reasons"].items())
        add(f"bad rows ({len(bad)}, not scored): {reasons}")
        shown = bad if max_bad_shown <= 0 else bad[:max_bad_shown]
        for b in shown:
            add(f"  {b['file']}:{b['row']}: {b['reason']}: {b['error']}" + (f"  | {b['preview']}" if b["preview"]
                                                                               else ""))
        if len(shown) < len(bad):
            add(f"  ... and {len(bad) - len(shown)} more (--max-bad-shown 0 or --json lists them all)")
        if "unknown_label" in report["bad_reasons"]:
            add(f"  the model's labels: {', '.join(report['labels'])}")
    return "\n".join(out)


def per_label_table(per_label: dict) -> str:
    width = max([len("label"), *map(len, per_label)])
    lines = [f"{'label':<{width}}  precision  recall      f1  support"]
    for label, m in per_label.items():
        lines.append(f"{label:<{width}}  {m['precision']:>9.4f}  {m['recall']:>6.4f}  {m['f1']:>6.4f}  "
                     f"{m['support']:>7}")
    return "\n".join(lines)


def confusion_table(confusion: dict) -> str:
    """Rows: gold, columns: predicted; only the labels that occur on either side."""
    labels, matrix = confusion["labels"], confusion["matrix"]
    keep = [i for i in range(len(labels))
            if sum(matrix[i]) or sum(row[i] for row in matrix)]
    short = short_names([labels[i] for i in keep])
    cell = max(5, *(len(s) for s in short), *(len(str(matrix[i][j])) for i in keep for j in keep))
    width = max(len(labels[i]) for i in keep)
    lines = ["confusion matrix (rows: gold, columns: predicted)",
             " " * width + "  " + " ".join(f"{s:>{cell}}" for s in short)]
    for i in keep:
        lines.append(f"{labels[i]:<{width}}  " + " ".join(f"{matrix[i][j] or '.':>{cell}}" for j in keep))
    return "\n".join(lines)


def short_names(labels: list[str], size: int = 5) -> list[str]:
    """Unique prefixes of at least `size` characters: normal -> norma, app_error -> app_e."""
    for length in range(size, max(map(len, labels), default=size) + 1):
        short = [label[:length] for label in labels]
        if len(set(short)) == len(short):
            return short
    return list(labels)
