"""Evaluation: classification metrics, teacher agreement, retention, confusion matrix plot.

All metrics take integer label indices (gold) and probability or index predictions, with an
optional weight per row: held-out sets are scored per template (each distinct template counts
once: generalisation) and per line (weighted by how often the template occurred: what an
operator sees in the stream).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

KEYWORD_BASELINE_RE = re.compile(r"error|exception|fail", re.IGNORECASE)


def keyword_baseline(texts: list[str], labels: tuple[str, ...]) -> np.ndarray:
    """The regex an SRE would write first: (error|exception|fail) → app_error, else normal."""
    error, normal = labels.index("app_error"), labels.index("normal")
    return np.array([error if KEYWORD_BASELINE_RE.search(t) else normal for t in texts])


def confusion_matrix(gold: np.ndarray, pred: np.ndarray, n_labels: int, weights: np.ndarray | None = None):
    weights = np.ones(len(gold)) if weights is None else weights
    matrix = np.zeros((n_labels, n_labels))
    np.add.at(matrix, (gold, pred), weights)
    return matrix


def classification_report(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...],
                          weights: np.ndarray | None = None) -> dict:
    """Accuracy, macro-F1 over labels present in gold, per-label precision/recall/F1/support."""
    pred = _as_indices(pred)
    matrix = confusion_matrix(gold, pred, len(labels), weights)
    true_pos = np.diag(matrix)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros_like(true_pos), where=predicted > 0)
    recall = np.divide(true_pos, support, out=np.zeros_like(true_pos), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(true_pos),
                   where=(precision + recall) > 0)
    present = support > 0
    return {
        "accuracy": float(true_pos.sum() / max(matrix.sum(), 1e-12)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": int(len(gold)),
        "per_label": {label: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                              "f1": round(float(f1[i]), 4), "support": float(support[i])}
                      for i, label in enumerate(labels) if support[i] > 0 or predicted[i] > 0},
        "confusion": matrix.tolist(),
    }


def agreement(pred_a: np.ndarray, pred_b: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Share of rows on which two predictors pick the same top label."""
    same = (_as_indices(pred_a) == _as_indices(pred_b)).astype(float)
    return float(np.average(same, weights=weights))


def retention(student: dict, teacher: dict) -> dict:
    """Student score as a share of the teacher's, for accuracy and macro-F1."""
    return {metric: (student[metric] / teacher[metric] if teacher[metric] > 0 else 0.0)
            for metric in ("accuracy", "macro_f1")}


def group_bootstrap_accuracy(correct: np.ndarray, groups: list[str], weights: np.ndarray | None = None,
                             resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Accuracy with a percentile confidence interval, resampling whole source groups.

    Held-out rows are not independent: the keys of one source template succeed or fail together.
    Resampling groups (not rows) gives an honest interval for a few hundred held-out templates.
    """
    correct = np.asarray(correct, dtype=float)
    weights = np.ones(len(correct)) if weights is None else np.asarray(weights, dtype=float)
    names, group_of = np.unique(np.asarray(groups), return_inverse=True)
    hits = np.bincount(group_of, weights=correct * weights, minlength=len(names))
    totals = np.bincount(group_of, weights=weights, minlength=len(names))
    draws = np.random.default_rng(seed).integers(0, len(names), size=(resamples, len(names)))
    scores = hits[draws].sum(axis=1) / np.clip(totals[draws].sum(axis=1), 1e-12, None)
    tail = (1 - level) / 2 * 100
    return {"accuracy": float(hits.sum() / max(totals.sum(), 1e-12)), "groups": int(len(names)),
            "ci_level": level, "ci_low": float(np.percentile(scores, tail)),
            "ci_high": float(np.percentile(scores, 100 - tail))}


def plot_confusion(matrix: np.ndarray, labels: tuple[str, ...], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0  # hide labels absent from both axes
    matrix = np.asarray(matrix)[np.ix_(keep, keep)]
    shown = [label for label, k in zip(labels, keep) if k]
    row_share = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1e-12, None)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(shown), 0.8 + 0.55 * len(shown)))
    ax.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(shown)), shown, rotation=45, ha="right")
    ax.set_yticks(range(len(shown)), shown)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    for i in range(len(shown)):
        for j in range(len(shown)):
            if matrix[i, j]:
                ax.text(j, i, f"{matrix[i, j]:g}", ha="center", va="center", fontsize=8,
                        color="white" if row_share[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _as_indices(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else pred


# ---- confidence and soft labels ------------------------------------------------------------

def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> float:
    """ECE: Σ_bins (share of rows in the bin) · |accuracy − mean confidence|, equal-width confidence bins."""
    probs = np.asarray(probs, dtype=float)
    return calibration_gap(probs.max(axis=1), probs.argmax(axis=1) == np.asarray(gold), bins)


def confidence_bins(confidence: np.ndarray, bins: int = 15) -> np.ndarray:
    """The equal-width bin of each confidence (1.0 falls in the last)."""
    return np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)


def calibration_gap(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE from each row's confidence and whether it was right."""
    which = confidence_bins(confidence, bins)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


def accuracy_at_coverage(probs: np.ndarray, gold: np.ndarray, coverages=(0.5, 0.8, 0.9, 1.0)) -> dict:
    """Accuracy on the most confident `coverage` share of rows: what is kept if the rest is escalated."""
    probs = np.asarray(probs, dtype=float)
    order = np.argsort(-probs.max(axis=1), kind="stable")
    correct = (probs.argmax(axis=1) == np.asarray(gold))[order]
    return {f"{c:g}": float(correct[: max(1, int(round(c * len(correct))))].mean()) if len(correct) else 0.0
            for c in coverages}


def soft_agreement(student_probs: np.ndarray, teacher_probs: np.ndarray, threshold: float = 0.3) -> float:
    """Share of rows whose student top label holds ≥ threshold of the teacher's probability mass: right
    where the teacher itself was torn between two labels (its recorded runs disagree on such rows)."""
    top = np.asarray(student_probs).argmax(axis=1)
    mass = np.asarray(teacher_probs)[np.arange(len(top)), top]
    return float((mass >= threshold).mean()) if len(top) else 0.0


def teacher_cross_entropy(student_probs: np.ndarray, teacher_probs: np.ndarray) -> float:
    """Mean cross-entropy H(teacher, student) in nats: how well the student reproduces the soft label."""
    student = np.clip(np.asarray(student_probs, dtype=float), 1e-12, 1.0)
    return float(-(np.asarray(teacher_probs, dtype=float) * np.log(student)).sum(axis=1).mean())
