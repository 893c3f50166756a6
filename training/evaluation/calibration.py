"""Fitting what service/confidence.py reads, the temperature and the OOD model's reference; and measuring
what they buy: reliability, risk–coverage, the escalation policy's outcome.

Everything is fitted on the calibration split (whole programs neither trained on nor scored), with
the int8 runtime's own logits, so what is measured is what is served.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.confidence import EscalationPolicy
from service.familiarity import CharNgramModel
from service.inference import softmax
from training.evaluation.metrics import calibration_gap, confidence_bins, expected_calibration_error

TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(20.0), 400))  # a grid fine enough: 1.2% steps
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)


def nll(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the gold labels under softmax(logits / T)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    return float((log_norm - scaled[np.arange(len(gold)), gold]).mean())


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): the T minimising the gold labels' NLL. One parameter,
    so a few hundred held-out templates fit it without overfitting; argmax (accuracy) is unchanged."""
    if not len(gold):
        return 1.0
    losses = [nll(logits, gold, t) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def reliability(probs: np.ndarray, gold: np.ndarray, bins: int = 15) -> list[dict]:
    """Per equal-width confidence bin: rows, mean confidence, accuracy (the reliability diagram's data)."""
    probs = np.asarray(probs, dtype=float)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(gold)
    which = confidence_bins(confidence, bins)
    return [{"low": b / bins, "high": (b + 1) / bins, "n": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def ece_noise_floor(probs: np.ndarray, bins: int = 15, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would still show on this many rows with these confidences
    (each row right with probability = its confidence; mean over draws): sampling noise, not miscalibration."""
    confidence = np.asarray(probs, dtype=float).max(axis=1)
    if not len(confidence):
        return 0.0
    rng = np.random.default_rng(seed)
    return float(np.mean([calibration_gap(confidence, rng.random(len(confidence)) < confidence, bins)
                          for _ in range(draws)]))


def calibration_report(logits: np.ndarray, gold: np.ndarray, temperature: float) -> dict:
    """ECE (15 bins) and mean confidence before and after scaling, and the reliability table after."""
    before, after = softmax(np.asarray(logits)), softmax(np.asarray(logits) / temperature)
    accuracy = float((after.argmax(axis=1) == gold).mean()) if len(gold) else 0.0
    return {"templates": int(len(gold)), "accuracy": round(accuracy, 4),
            "ece_before": round(expected_calibration_error(before, gold), 4),
            "ece_after": round(expected_calibration_error(after, gold), 4),
            "ece_noise_floor": round(ece_noise_floor(after), 4),
            "mean_confidence_before": round(float(before.max(axis=1).mean()), 4) if len(gold) else 0.0,
            "mean_confidence_after": round(float(after.max(axis=1).mean()), 4) if len(gold) else 0.0,
            "reliability_after": reliability(after, gold),
            "reliability_before": reliability(before, gold)}


def plot_reliability(reports: dict[str, dict], path: str | Path, title: str) -> None:
    """Reliability diagram: accuracy against confidence per bin, before and after scaling, per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(4.2 * len(reports), 4.2), squeeze=False)
    for ax, (name, report) in zip(axes[0], reports.items()):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect")
        for when, style in (("before", "o-"), ("after", "s-")):
            rows = report[f"reliability_{when}"]
            ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], style, ms=4,
                    label=f"{when} (ECE {report[f'ece_{when}']:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name} (n={report['templates']})", fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fit_familiarity(train_texts: list[str], calibration_keys: list[str]) -> CharNgramModel:
    """The OOD model: character n-grams of everything the student trained on (templates and augmented
    lines), its scores ranked against the calibration programs' templates."""
    return CharNgramModel.fit(train_texts).with_reference(calibration_keys)


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, coverages=COVERAGES) -> list[dict]:
    """Accuracy on the most confident share of rows, the rest escalated: what a threshold on calibrated
    confidence can buy, and the τ that gives it."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    ranked_conf, ranked_correct = np.asarray(confidence)[order], np.asarray(correct)[order]
    rows = []
    for coverage in coverages:
        kept = max(1, int(round(coverage * len(order))))
        rows.append({"coverage": coverage, "escalated": round(1 - kept / len(order), 4),
                     "kept_accuracy": round(float(ranked_correct[:kept].mean()), 4),
                     "tau": round(float(ranked_conf[kept - 1]), 4)})
    return rows


def escalation_figures(escalated: np.ndarray, correct: np.ndarray) -> dict:
    """Share escalated, accuracy on the rows kept, and the share of the errors that were escalated."""
    escalated, correct = np.asarray(escalated, dtype=bool), np.asarray(correct, dtype=bool)
    return {"escalated": round(float(escalated.mean()), 4) if len(escalated) else 0.0,
            "kept_accuracy": round(float(correct[~escalated].mean()), 4) if (~escalated).any() else None,
            "errors_caught": round(float(escalated[~correct].mean()), 4) if (~correct).any() else None}


def policy_outcome(confidence: np.ndarray, ood: np.ndarray | None, correct: np.ndarray,
                   policy: EscalationPolicy, teacher_correct: np.ndarray | None = None) -> dict:
    """What the policy does on a labelled set: share escalated (and why), accuracy on the lines kept, and
    with the teacher's answers on the escalated ones, the system's accuracy."""
    reasons = [policy.reason(float(c), None if ood is None else float(o))
               for c, o in zip(confidence, ood if ood is not None else [None] * len(confidence))]
    escalated = np.array([r is not None for r in reasons], dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    out = {"n": int(len(correct)), **escalation_figures(escalated, correct),
           "escalated_by_reason": {r: int(sum(x == r for x in reasons)) for r in ("low_confidence",
                                                                                "out_of_distribution", "both")},
           "student_accuracy": round(float(correct.mean()), 4) if len(correct) else 0.0}
    if teacher_correct is not None:
        system = np.where(escalated, np.asarray(teacher_correct, dtype=bool), correct)
        out["system_accuracy"] = round(float(system.mean()), 4)
    return out
