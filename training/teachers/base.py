"""The teacher interface.

A teacher answers a batch of queries with one distribution per query at temperature 1 (or None
when it cannot label that query: the query is then left out, never guessed). Temperature is
applied later, at training time, so the label store holds one answer per (teacher, template)
whatever T a run uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

PROB_FLOOR = 1e-4  # recorded labels omit small probabilities; a floor keeps log(p) finite


@dataclass(frozen=True)
class TeacherQuery:
    key: str                 # the template key (what the student sees)
    example: str             # one real line of that template (what an LLM would be shown)
    meta: dict = field(default_factory=dict, hash=False, compare=False)


class Teacher(Protocol):
    teacher_id: str  # identifies the teacher and its settings in the label store

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        """Probabilities over the taxonomy's labels (in taxonomy order), one per query."""
        ...


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) distributions: softmax(log p / T), row-wise."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logp = np.log(np.clip(probs, PROB_FLOOR, None)) / temperature
    logp -= logp.max(axis=-1, keepdims=True)
    out = np.exp(logp)
    return out / out.sum(axis=-1, keepdims=True)
