"""A held-out set and its scores: the templates a build never trained on, with their gold labels and
the teacher's soft labels, scored per template, per line, per label, per source, with 95% intervals."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.taxonomy import Taxonomy
from training.corpus.readers import Template
from training.evaluation.metrics import (accuracy_at_coverage, agreement, classification_report,
                                         expected_calibration_error, group_bootstrap_accuracy, keyword_baseline,
                                         retention, soft_agreement, teacher_cross_entropy)
from training.evaluation.splits import gold_index
from training.teachers.recorded import RecordedTeacher

COVERAGES = (0.5, 0.8, 0.9, 1.0)


@dataclass
class HeldOut:
    keys: list[str]
    gold: np.ndarray           # label index per key
    counts: np.ndarray         # lines per key (for line-weighted scores)
    teacher: np.ndarray        # the teacher's distribution per key
    groups: list[str]          # source template per key: its keys succeed or fail together
    sources: list[str]         # what a per-source table groups by: Loghub system, "k8s", a component...
    labels: tuple[str, ...]

    @classmethod
    def build(cls, templates: list[Template], gold_teacher: RecordedTeacher, soft: dict[str, np.ndarray],
              taxonomy: Taxonomy, source_key: str = "system") -> "HeldOut":
        """`source_key`: the meta field a per-source score groups by ("system"; "component" for a
        component split); templates without it count under "other"."""
        rows = [(t, gold_index(t, gold_teacher, taxonomy)) for t in templates]
        rows = [(t, g) for t, g in rows if g is not None and t.key in soft]
        return cls(keys=[t.key for t, _ in rows], gold=np.array([g for _, g in rows], dtype=int),
                   counts=np.array([t.count for t, _ in rows], dtype=float),
                   teacher=np.stack([soft[t.key] for t, _ in rows]) if rows else np.zeros((0, len(taxonomy.labels))),
                   groups=[t.group for t, _ in rows],
                   sources=[str(t.meta.get(source_key) or "other") for t, _ in rows], labels=taxonomy.labels)

    def scores(self, pred: np.ndarray) -> dict:
        return {"templates": classification_report(self.gold, pred, self.labels),
                "lines": classification_report(self.gold, pred, self.labels, weights=self.counts)}

    def metrics(self, student_probs: np.ndarray, fp32_logits: np.ndarray) -> dict:
        student = self.scores(student_probs)
        teacher = self.scores(self.teacher)
        return {
            "held_out": {"templates": len(self.keys), "lines": int(self.counts.sum()),
                         "source_groups": len(set(self.groups))},
            "student": student,
            "teacher": teacher,
            "keyword_baseline": self.scores(keyword_baseline(self.keys, self.labels)),
            "retention": {unit: retention(student[unit], teacher[unit]) for unit in ("templates", "lines")},
            "agreement_with_teacher": {"templates": agreement(student_probs, self.teacher),
                                       "lines": agreement(student_probs, self.teacher, self.counts)},
            # The teacher is itself unsure on borderline rows (a second LLM run agrees on ~87% of them):
            # right = the student's top label holds ≥ 0.3 of the teacher's mass.
            "soft_agreement": soft_agreement(student_probs, self.teacher),
            "teacher_cross_entropy": teacher_cross_entropy(student_probs, self.teacher),
            "calibration": {"ece": expected_calibration_error(student_probs, self.gold),
                            "mean_confidence": float(np.asarray(student_probs).max(axis=1).mean()),
                            "accuracy_at_coverage": accuracy_at_coverage(student_probs, self.gold, COVERAGES)},
            "int8_vs_fp32_agreement": agreement(student_probs, fp32_logits),
            "student_accuracy_by_source": self.accuracy_by_source(student_probs),
            "student_recall_by_label": self.recall_by_label(student_probs),
            "student_accuracy_ci": self.accuracy_ci(student_probs),
        }

    def accuracy_ci(self, pred: np.ndarray) -> dict:
        """95% intervals from resampling source groups: how much the held-out figure could move."""
        correct = np.asarray(pred).argmax(axis=1) == self.gold
        return {"templates": group_bootstrap_accuracy(correct, self.groups),
                "lines": group_bootstrap_accuracy(correct, self.groups, weights=self.counts)}

    def accuracy_by_source(self, pred: np.ndarray) -> dict:
        """Accuracy per source, with its 95% interval over that source's groups."""
        return self._by(np.array(self.sources), pred)

    def recall_by_label(self, pred: np.ndarray) -> dict:
        """Recall per gold label, with its 95% interval over that label's groups."""
        return self._by(np.array([self.labels[g] for g in self.gold]), pred)

    def _by(self, names: np.ndarray, pred: np.ndarray) -> dict:
        correct = np.asarray(pred).argmax(axis=1) == self.gold
        groups = np.array(self.groups)
        out = {}
        for name in sorted(set(names.tolist())):
            rows = names == name
            ci = group_bootstrap_accuracy(correct[rows], groups[rows].tolist())
            out[name] = {"templates": int(rows.sum()), "accuracy": round(ci["accuracy"], 4),
                         "ci_low": round(ci["ci_low"], 4), "ci_high": round(ci["ci_high"], 4)}
        return out

    def write(self, path: Path, held_out_templates: list[Template]) -> Path:
        """The held-out set as JSON (training/loop/retrain.py scores the served model on it), with every
        held-out group, scored or not (no gold, no label), so the next build holds them out too."""
        path.write_text(json.dumps({
            "held_out_groups": sorted({t.group for t in held_out_templates}), "labels": list(self.labels),
            "keys": self.keys, "gold": self.gold.tolist(), "counts": self.counts.tolist(), "groups": self.groups},
            indent=0))
        return path
