"""Several teachers as one: each labels through the label store, their answers are combined per template.

Teachers err differently (the recorded LLM on rare systems, the zero-shot embedding teacher on
routine lines); a combination keeps their disagreement as soft mass instead of picking a winner:

  mean     p = Σ wᵢ pᵢ / Σ wᵢ                 (default; a mixture: mass where any teacher puts it)
  product  p ∝ Π pᵢ^(wᵢ / Σ wᵢ)               (normalised weighted geometric mean: mass where all agree)

Each member is asked through the store under its own teacher_id, so a member's answers are
paid for once and shared with single-teacher builds. A template a member could not label is
combined from the others, their weights renormalised; one no member labelled is left out.
The product floors probabilities at PROB_FLOOR (as apply_temperature does): a member's zero
would otherwise veto a label outright.

`agreement_report` says how far members agree with each other, with the combination and,
where a gold label exists, with the gold (it goes to metrics.json under "teachers").
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from service.label_store import LabelStore
from training.teachers.label_store import label_templates
from training.teachers.base import PROB_FLOOR, Teacher, TeacherQuery

COMBINE_RULES = ("mean", "product")


def combine(distributions: list[np.ndarray | None], weights: list[float], rule: str = "mean") -> np.ndarray | None:
    """One template: members' distributions (None = no answer) → the combined distribution, or None."""
    if rule not in COMBINE_RULES:
        raise ValueError(f"unknown combine rule {rule!r} ({' | '.join(COMBINE_RULES)})")
    if len(distributions) != len(weights):
        raise ValueError(f"{len(distributions)} distributions for {len(weights)} weights")
    present = [(np.asarray(p, dtype=np.float64), w) for p, w in zip(distributions, weights)
               if p is not None and w > 0]
    if not present:
        return None
    total = sum(w for _, w in present)
    if rule == "mean":
        mixed = sum(w * p for p, w in present) / total
    else:
        log_mixed = sum(w * np.log(np.clip(p, PROB_FLOOR, None)) for p, w in present) / total
        mixed = np.exp(log_mixed - log_mixed.max())
    return (mixed / mixed.sum()).astype(np.float32)


def agreement_report(members: dict[str, dict[str, np.ndarray]], combined: dict[str, np.ndarray],
                     gold: dict[str, int] | None = None) -> dict:
    """Top-label agreement between members, with the combination, and accuracy against gold.

    members: name → {template key: distribution}; each figure is over the templates both sides
    answered, with the count alongside.
    """
    def score(a: dict[str, np.ndarray], b: dict[str, np.ndarray | int]) -> dict:
        keys = sorted(a.keys() & b.keys())
        if not keys:
            return {"agreement": None, "templates": 0}
        same = [int(np.argmax(a[k])) == (b[k] if isinstance(b[k], (int, np.integer)) else int(np.argmax(b[k])))
                for k in keys]
        return {"agreement": round(float(np.mean(same)), 4), "templates": len(keys)}

    report = {"coverage": {name: len(answers) for name, answers in members.items()},
              "pairwise": {a: {b: score(members[a], members[b]) for b in members if b != a} for a in members},
              "with_combined": {name: score(answers, combined) for name, answers in members.items()}}
    if gold:
        report["accuracy_vs_gold"] = {name: _renamed(score(answers, gold), "accuracy")
                                      for name, answers in {**members, "combined": combined}.items()}
    return report


def _renamed(figures: dict, name: str) -> dict:
    return {name: figures["agreement"], "templates": figures["templates"]}


class MultiTeacher:
    """A Teacher whose answer is the combination of its members' (each labelled through `store`)."""

    def __init__(self, members: dict[str, Teacher], store: LabelStore, labels: tuple[str, ...],
                 weights: list[float] | None = None, rule: str = "mean"):
        if not members:
            raise ValueError("a multi-teacher needs at least one member")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members):
            raise ValueError(f"{len(weights)} teacher weights for {len(members)} teachers")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"teacher weights must be >= 0 with a positive sum, got {weights}")
        if rule not in COMBINE_RULES:
            raise ValueError(f"unknown combine rule {rule!r} ({' | '.join(COMBINE_RULES)})")
        self.members, self.store, self.labels, self.weights, self.rule = members, store, labels, weights, rule
        spec = json.dumps([rule, [[m.teacher_id, w] for m, w in zip(members.values(), weights)]])
        self.teacher_id = f"multi:{rule}:{'+'.join(members)}:{hashlib.sha256(spec.encode()).hexdigest()[:12]}"

    def member_answers(self, queries: list[TeacherQuery]) -> dict[str, dict[str, np.ndarray]]:
        """Each member's distributions (store first, the member only for what the store lacks)."""
        return {name: label_templates(member, self.store, queries, self.labels)[0]
                for name, member in self.members.items()}

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        answers = self.member_answers(queries)
        return [combine([answers[name].get(q.key) for name in self.members], self.weights, self.rule)
                for q in queries]

    def report(self, queries: list[TeacherQuery], combined: dict[str, np.ndarray],
               gold: dict[str, int] | None = None) -> dict:
        return {"members": {name: member.teacher_id for name, member in self.members.items()},
                "weights": dict(zip(self.members, self.weights)), "combine": self.rule,
                **agreement_report(self.member_answers(queries), combined, gold)}
