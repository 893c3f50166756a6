"""Soft labels from an LLM's token log-probabilities: where the label name starts, what else it might have said.

An LLM asked for {"label": "<name>"} spends its uncertainty at one place: the first token of the
name. A server that returns `top_logprobs` shows the k most likely tokens there, so one greedy
answer gives a whole distribution instead of one label.

The rule, in words:
- The label starts right after the answer prefix {"label": " in the generated text (whitespace
  inside the prefix is tolerated); an answer that is a bare label name starts at its first letter.
  The token holding that character is the label position; if it also holds the end of the prefix
  (e.g. ` "net`), only alternatives with the same beginning count, and that beginning is dropped.
- An alternative token goes to every label it is consistent with: the token is a beginning of the
  name ("net" -> network), or the whole name followed by something that cannot continue a name
  ('normal"}' -> normal, but "crashes" is not crash).
- A token consistent with several labels (labels sharing a first token, e.g. "app" for app_error
  and app_crash) is split by what the model said next when that token is the one it generated (the
  next position's alternatives, recursively); otherwise, not knowing, it is split equally.
- Mass on tokens that fit no label is dropped: the distribution is conditioned on the answer being
  a label (renormalised). A label no alternative reached gets PROB_FLOOR, then it is renormalised
  again, so log(p) stays finite and the top-k cut is visible as the floor.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from training.teachers.base import PROB_FLOOR

_ANSWER_PREFIX_RE = re.compile(r'\{\s*"label"\s*:\s*"')


@dataclass(frozen=True)
class TokenStep:
    token: str                        # the token generated at this position
    alternatives: dict[str, float]    # the top-k tokens at this position -> log-probability, the generated
                                      # one included (a sampled token can be outside the top k)


def label_start(generated: str, labels: tuple[str, ...]) -> int | None:
    """Character offset where the label name begins in a generated answer, or None (no answer there)."""
    match = _ANSWER_PREFIX_RE.search(generated)
    if match:
        return match.end()
    stripped = generated.lstrip()
    if any(stripped.startswith(label) for label in labels):  # a bare label name
        return len(generated) - len(stripped)
    return None


def label_mass(steps: list[TokenStep], start: int, labels: tuple[str, ...]) -> dict[str, float]:
    """Probability mass per label read from the alternatives at (and, for shared beginnings, after) `start`."""
    offset = 0
    for index, step in enumerate(steps):
        if offset + len(step.token) > start:
            return _spread(steps, index, start - offset, "", labels, 1.0)
        offset += len(step.token)
    return {}  # the answer stopped before the label (e.g. max_tokens too small)


def _spread(steps: list[TokenStep], index: int, skip: int, said: str, candidates: tuple[str, ...],
            mass: float) -> dict[str, float]:
    step = steps[index]
    head = step.token[:skip]  # the end of the answer prefix, inside this token
    spread: dict[str, float] = defaultdict(float)
    for token, logprob in step.alternatives.items():
        text = said + token[skip:]
        if not token.startswith(head) or text == said:
            continue
        fits = tuple(label for label in candidates if _consistent(text, label))
        if not fits:
            continue
        token_mass = mass * math.exp(logprob)
        if len(fits) > 1 and token == step.token and index + 1 < len(steps):
            shares = _spread(steps, index + 1, 0, text, fits, token_mass)
        else:
            shares = {label: token_mass / len(fits) for label in fits}
        for label, share in shares.items():
            spread[label] += share
    return dict(spread)


def _consistent(text: str, label: str) -> bool:
    """Can a label name begin with `text` (or `text` begin with the whole name, then a non-name character)?"""
    if len(text) <= len(label):
        return label.startswith(text)
    return text.startswith(label) and not _continues_name(text[len(label)])


def _continues_name(char: str) -> bool:
    return char.isalnum() or char in "_-"


def to_distribution(mass: dict[str, float], labels: tuple[str, ...]) -> np.ndarray | None:
    """Taxonomy-ordered probabilities: conditioned on the answer being a label, floored, summing to 1.
    None when no mass reached any label (nothing to say, so nothing is guessed)."""
    vector = np.array([mass.get(label, 0.0) for label in labels], dtype=np.float64)
    if not np.isfinite(vector).all() or vector.sum() <= 0:
        return None
    vector = np.maximum(vector / vector.sum(), PROB_FLOOR)
    return (vector / vector.sum()).astype(np.float32)


def one_hot(label: str, labels: tuple[str, ...]) -> np.ndarray:
    """The distribution of a parsed (no-logprobs) answer: 1 on the label, PROB_FLOOR elsewhere, renormalised,
    the same floor the logprob path gives a label outside the top k."""
    distribution = to_distribution({label: 1.0}, labels)
    assert distribution is not None
    return distribution
