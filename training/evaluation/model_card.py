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
        out.append("- By source: " + ", ".join(f"{name} {v['accuracy']:.2f} ({v['templates']})"
                                               for name, v in by_source.items()) + ".")
    return out


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
        "## Held-out evaluation",
        f"Split by source template: {held['templates']} templates ({held['lines']} lines) never seen in training. "
        "Gold = recorded LLM labels for Loghub (a strong teacher's judgement, not human truth) and hand labels "
        "for the Kubernetes seed templates.",
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
        "",
        "## Limits",
        "- Trained on Loghub (HDFS, Hadoop, Linux, Apache, BGL, Proxifier, HealthApp) and hand-written "
        "Kubernetes templates; other systems' vocabulary is unseen. Labels with few or no training templates "
        "(see support above) are unreliable.",
        "- Low-confidence predictions should be escalated to the teacher rather than trusted.",
    ]
    Path(path).write_text("\n".join(lines) + "\n")


def _from_groups(examples: dict) -> str:
    """How many labelled sources the templates came from: what held-out accuracy grows with (bench/ceiling.py)."""
    groups = examples.get("source_groups")  # absent in artifacts built before it was counted
    return f" from {groups} labelled source templates" if groups else ""
