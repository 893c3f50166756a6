"""The model card: a markdown page saying what the artifact is and how well it does."""

from __future__ import annotations

from pathlib import Path

from service.taxonomy import Taxonomy


def _row(name: str, scores: dict) -> str:
    t, line = scores["templates"], scores["lines"]
    return (f"| {name} | {t['accuracy']:.3f} | {t['macro_f1']:.3f} | {line['accuracy']:.3f} | "
            f"{line['macro_f1']:.3f} |")


def _vocabulary(config: dict) -> str:
    size = config["student"]["vocab_size"]
    if config.get("build", {}).get("tokenizer") == "minilm":
        return f"MiniLM's WordPiece vocabulary ({size} tokens), frozen MiniLM token embeddings + learned projection"
    return f"WordPiece vocabulary of {size} trained on the training templates"


def _interval_lines(metrics: dict) -> list[str]:
    """The held-out accuracy's uncertainty and where it comes from (older metrics lack these)."""
    out = []
    ci = metrics.get("student_accuracy_ci", {}).get("templates")
    if ci:
        out.append(f"- Student accuracy on held-out templates {ci['accuracy']:.3f}, {ci['ci_level']:.0%} interval "
                   f"{ci['ci_low']:.3f}–{ci['ci_high']:.3f} (bootstrap over {ci['groups']} source templates).")
    by_source = metrics.get("student_accuracy_by_source")
    if by_source:
        out.append("- By source: " + _with_intervals(by_source) + ".")
    if "soft_agreement" in metrics:
        out.append(_soft_line(metrics))
    return out


def _with_intervals(scores: dict) -> str:
    """'name 0.91 [0.85–0.96] (n)' per entry; entries from before intervals were kept show none."""
    def one(name: str, v: dict) -> str:
        interval = f" [{v['ci_low']:.2f}–{v['ci_high']:.2f}]" if "ci_low" in v else ""
        return f"{name} {v['accuracy']:.2f}{interval} ({v['templates']})"

    return ", ".join(one(name, v) for name, v in scores.items())


def _soft_line(metrics: dict) -> str:
    calibration = metrics["calibration"]
    return (f"- Soft agreement (the student's label holds ≥ 0.3 of the teacher's probability) "
            f"{metrics['soft_agreement']:.3f}; cross-entropy to the teacher "
            f"{metrics['teacher_cross_entropy']:.3f} nats; "
            f"ECE {calibration['ece']:.3f} at mean confidence {calibration['mean_confidence']:.3f}; accuracy on "
            "the most confident " + ", ".join(f"{float(c):.0%}: {a:.3f}" for c, a in
                                               calibration["accuracy_at_coverage"].items()) + ".")


def _component_section(split: dict) -> list[str]:
    """Whole programs never seen in training: what a user meets first."""
    s = split["student"]["templates"]
    ci = split["student_accuracy_ci"]["templates"]
    return [
        "",
        "## Software never seen (component split)",
        f"Every template of {len(split['components'])} programs held out together ({split['held_out']['templates']} "
        f"templates): {', '.join(split['components'])}.",
        "",
        "| predictor | accuracy (templates) | macro-F1 (templates) | accuracy (lines) | macro-F1 (lines) |",
        "|---|---|---|---|---|",
        _row("student (int8 ONNX)", split["student"]),
        _row("keyword baseline `(error|exception|fail)`", split["keyword_baseline"]),
        "",
        f"- Student accuracy {s['accuracy']:.3f} (95% interval {ci['ci_low']:.3f}–{ci['ci_high']:.3f}, "
        f"bootstrap over {ci['groups']} templates), macro-F1 {s['macro_f1']:.3f}.",
        _soft_line(split),
        "- Recall by label: " + _with_intervals(split["student_recall_by_label"]) + ".",
        "- By program: " + _with_intervals(split["student_accuracy_by_source"]) + ".",
        "",
        "![confusion matrix, component split](confusion_components.png)",
    ]


def _real_lines_section(real: dict) -> list[str]:
    """Real lines quoted in public issue threads, labels checked by hand (never trained on)."""
    ci = real.get("accuracy_ci", {})
    interval = f" (95% interval {ci['ci_low']:.3f}–{ci['ci_high']:.3f})" if ci else ""
    out = ["", "## Real lines", f"{real['n']} real log lines from public issue threads ({', '.join(real['files'])}), "
           f"labels checked by hand: accuracy {real['accuracy']:.3f}{interval}, macro-F1 {real['macro_f1']:.3f}, "
           f"ECE {real['ece']:.3f}."]
    if "soft_agreement" in real:
        out.append(f"Soft agreement with the labels' own distributions {real['soft_agreement']:.3f}.")
    if real.get("n_bad"):
        out.append(f"{real['n_bad']} rows could not be scored (see metrics.json `real_lines.bad_rows`).")
    return out


SPLIT_NAMES = {"calibration_split": "calibration programs (fitted on)", "template_split": "template split",
               "component_split": "component split"}


def _confidence_section(confidence: dict, calibration: dict | None) -> list[str]:
    """Calibration, the OOD score and the escalation policy: what `escalate` means for this model."""
    policy = confidence["policy"]
    out = ["", "## Confidence and escalation",
           f"Temperature scaling, T = {confidence['temperature']:.3g}, fitted on "
           + (f"{calibration['templates']} templates of {len(calibration['components'])} programs neither trained "
              f"on nor scored ({', '.join(calibration['components'])})." if calibration else "nothing (T = 1)."),
           "Out-of-distribution score (service/familiarity.py): how unusual the line's characters are for the "
           "training templates (a character 4-gram model), as the share of those programs' templates that look "
           "more familiar; 1.0 = stranger than all of them, or no word left after masking.",
           f"A result is escalated (`escalate: true`) when calibrated confidence < τ = {policy['low_confidence']} or "
           f"OOD score > δ = {policy['max_ood']} (serve/classify settings `low_confidence`, `max_ood`).", "",
           "ECE in 15 bins; 'noise' is what a perfectly calibrated model would still show on that many templates.",
           "",
           "| split | templates | ECE before | ECE after | noise | escalated | flagged OOD | accuracy kept | "
           "errors escalated |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, report in confidence["splits"].items():
        outcome = confidence["policy_outcome"].get(name, {})
        kept = outcome.get("kept_accuracy")
        caught = outcome.get("errors_caught")
        reasons = outcome.get("escalated_by_reason", {})
        ood = (reasons.get("out_of_distribution", 0) + reasons.get("both", 0)) / max(outcome.get("n", 0), 1)
        out.append(f"| {SPLIT_NAMES.get(name, name)} | {report['templates']} | {report['ece_before']:.3f} | "
                   f"{report['ece_after']:.3f} | {report.get('ece_noise_floor', float('nan')):.3f} | "
                   f"{outcome.get('escalated', 0):.1%} | {ood:.1%} | "
                   f"{'n/a' if kept is None else f'{kept:.3f}'} | {'n/a' if caught is None else f'{caught:.0%}'} |")
    rows = confidence["risk_coverage"].get("component_split")
    if rows:
        out += ["", "Risk–coverage on the component split (confidence alone; the most confident share kept):", "",
                "| kept | escalated | accuracy kept | τ that gives it |", "|---|---|---|---|",
                *[f"| {r['coverage']:.0%} | {r['escalated']:.0%} | {r['kept_accuracy']:.3f} | {r['tau']:.3f} |"
                  for r in rows]]
    non_log = confidence.get("non_log_inputs")
    if non_log:
        out += ["", f"Text that is not a log ({non_log['n']} lines: prose, code, SQL, base64, control bytes, other "
                f"scripts...): {non_log['escalated']:.0%} escalated."]
    return out + ["", "![reliability diagram](reliability.png)"]


def write_model_card(path: str | Path, config: dict, metrics: dict, taxonomy: Taxonomy) -> None:
    student, train = config["student"], config["train"]
    held = metrics["held_out"]
    r = metrics["retention"]
    per_label = metrics["student"]["templates"]["per_label"]
    lines = [
        f"# logdistill student `{config['model_version']}`",
        "",
        "Classifies one log line (after envelope parsing and variable masking) into one of "
        f"{len(taxonomy.labels)} labels: {', '.join(taxonomy.labels)}.",
        "",
        "## Model",
        f"- Transformer encoder, {student['layers']} layers, hidden {student['dim']}, {student['heads']} heads, "
        f"max {student['max_length']} tokens, {config['n_parameters']:,} parameters; {_vocabulary(config)}.",
        "- Served as ONNX with dynamic int8 weight quantization (onnxruntime), no torch needed.",
        f"- Distilled from teacher `{config['teacher']}`: loss = λ·T²·KL(teacher_T‖student_T) + (1−λ)·CE(hard), "
        f"λ={train['lam']}, T={train['temperature']}, {train['epochs']} epochs, seed {train['seed']}.",
        f"- Training examples: {metrics['training_examples']['templates']} templates"
        f"{_from_groups(metrics['training_examples'])} + "
        f"{metrics['training_examples']['augmented']} augmented lines (resampled variables, other envelopes).",
        f"- Corpus: {metrics['dedup']['lines']} lines → {metrics['dedup']['templates']} templates; dedup saved "
        f"{metrics['dedup']['teacher_call_saving']:.1%} of teacher calls.",
        "",
        "## Held-out evaluation (template split)",
        f"Split by source template: {held['templates']} templates ({held['lines']} lines) never seen in training, "
        "from programs that were. Gold = recorded LLM labels for Loghub and the cloud-native templates (a strong "
        "teacher's judgement, not human truth) and hand labels for the Kubernetes seed templates.",
        "",
        "| predictor | accuracy (templates) | macro-F1 (templates) | accuracy (lines) | macro-F1 (lines) |",
        "|---|---|---|---|---|",
        _row("student (int8 ONNX)", metrics["student"]),
        _row("teacher", metrics["teacher"]),
        _row("keyword baseline `(error|exception|fail)`", metrics["keyword_baseline"]),
        "",
        f"- Retention (student / teacher), templates: accuracy {r['templates']['accuracy']:.1%}, "
        f"macro-F1 {r['templates']['macro_f1']:.1%}; lines: accuracy {r['lines']['accuracy']:.1%}, "
        f"macro-F1 {r['lines']['macro_f1']:.1%}.",
        *_interval_lines(metrics),
        f"- Top-1 agreement with the teacher: {metrics['agreement_with_teacher']['templates']:.1%} of templates.",
        f"- int8 vs fp32 top-1 agreement: {metrics['int8_vs_fp32_agreement']:.1%}.",
        f"- On the {metrics['seen_templates']['templates']} templates seen in training, top-1 agreement with the "
        f"teacher is {metrics['seen_templates']['agreement_with_teacher']:.1%} (fp32): held-out templates are "
        "the hard part.",
        "",
        "### Per label (held-out templates)",
        "| label | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[f"| {label} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['support']:g} |"
          for label, v in per_label.items()],
        "",
        "![confusion matrix](confusion.png)",
        *(_component_section(metrics["component_split"]) if "component_split" in metrics else []),
        *(_real_lines_section(metrics["real_lines"]) if "real_lines" in metrics else []),
        *(_confidence_section(metrics["confidence"], config.get("calibration")) if metrics.get("confidence") else []),
        "",
        "## Limits",
        "- Trained on the teacher-labelled corpora above (Loghub systems, cloud-native program templates, "
        "hand-written Kubernetes templates); the teacher itself is unsure on borderline lines (a second LLM run "
        "agrees with the recorded one on ~87% of the cloud-native rows). Labels with few training templates "
        "(see support above) are less reliable.",
        "- Results with `escalate: true` should go to the teacher rather than be trusted (see above).",
    ]
    Path(path).write_text("\n".join(lines) + "\n")


def _from_groups(examples: dict) -> str:
    """How many labelled sources the templates came from: what held-out accuracy grows with (bench/ceiling.py)."""
    groups = examples.get("source_groups")  # absent in artifacts built before it was counted
    return f" from {groups} labelled source templates" if groups else ""
