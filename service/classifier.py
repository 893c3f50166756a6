"""The classification path for one batch of lines: decode → parse → mask → cache → model → verdict.

Every input line comes back as exactly one result: a Classification, or a LineError that says
why the line could not be classified. Nothing is dropped, nothing raises per line. A
Classification carries the cascade's decision (`escalate`, service/confidence.py): calibrated
confidence under τ or an out-of-distribution score over δ sends it to the teacher.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.artifact import load_artifact
from service.cache import TemplateCache
from service.confidence import EscalationPolicy, EvidenceTable, Neighbour
from service.inference import OnnxStudent
from service.masking import key_of
from service.parsing import ParsedLine, parse_line
from service.shape_memo import ShapeMemo

DEFAULT_MAX_LINE_BYTES = 64 * 1024
# The (message, level) -> key memos hold whole messages: bounded in count and in message length,
# so their worst case stays ~25 MB on a 200 MB edge budget (typical log messages are ~130 chars).
MEMO_MAX_ENTRIES = 20_000
MEMO_MAX_CHARS = 256
ERROR_PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)  # one per cached template: no per-instance dict
class Verdict:
    """The model's answer for one template key (what the cache holds): calibrated probabilities, the
    OOD score and nearest training template (None without an index in the artifact)."""
    probs: np.ndarray
    ood: float | None = None
    evidence: Neighbour | None = None


@dataclass(frozen=True)
class Answer:
    """A Verdict read for the lines of one batch: built once per template, shared by its lines."""
    label: str
    confidence: float
    probs: dict[str, float]
    ood: float | None
    evidence: Neighbour | None
    escalation_reason: str | None  # LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, BOTH (confidence.py); None: kept

    @property
    def escalate(self) -> bool:
        return self.escalation_reason is not None

    @functools.cached_property
    def fields(self) -> dict:
        """The decision and why, as every result spells it: built once per template and batch, not per
        line (read-only by convention: callers copy it into their own records)."""
        record = {"escalate": self.escalate, "escalation_reason": self.escalation_reason}
        if self.ood is not None:
            record["ood"] = round(self.ood, 4)
        if self.evidence is not None:
            record["evidence"] = self.evidence.to_record()
        return record


@dataclass
class Classification:
    line: str
    template: str
    answer: Answer
    parsed: ParsedLine

    label = property(lambda self: self.answer.label)
    confidence = property(lambda self: self.answer.confidence)
    probs = property(lambda self: self.answer.probs)
    ood = property(lambda self: self.answer.ood)
    evidence = property(lambda self: self.answer.evidence)
    escalate = property(lambda self: self.answer.escalate)
    escalation_reason = property(lambda self: self.answer.escalation_reason)

    def verdict_fields(self) -> dict:
        """The cascade's decision and why, as every result (classify, serve, escalations) spells it."""
        return self.answer.fields

    def to_record(self) -> dict:
        return {"line": self.line, "label": self.label, "confidence": round(self.confidence, 4),
                "probs": self.probs, "template": self.template, **self.verdict_fields()}


@dataclass
class LineError:
    reason: str  # short machine-readable code: invalid_utf8, empty, too_long
    error: str   # human-readable explanation
    preview: str  # start of the offending line, undecodable bytes escaped

    def to_record(self) -> dict:
        return {"line": self.preview, "error": self.error, "reason": self.reason}


class Classifier:
    def __init__(self, student: OnnxStudent, cache_size: int = 50_000,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, policy: EscalationPolicy | None = None):
        self.student = student
        self.labels = student.labels
        self.policy = policy or EscalationPolicy()
        # Older artifacts have no OOD model and no evidence (table and graph output go together).
        self.familiarity = student.artifact.familiarity
        self.evidence: EvidenceTable | None = student.artifact.evidence if student.has_nearest else None
        self.cache = TemplateCache(cache_size)
        # Masking is the costliest step of a cache hit (tens of µs of regexes). Messages repeat
        # exactly (a probe failing every 10 s, one error from 50 pods, envelope timestamps aside),
        # so (message, level) -> template key is memoised too; a message that is new but differs from
        # an earlier one only in its numbers gets that one's key by its shape (service/shape_memo.py).
        # Both are off with the cache (cache_size 0).
        self.shapes = ShapeMemo(min(cache_size, MEMO_MAX_ENTRIES))
        self._memo_key_of = functools.lru_cache(maxsize=min(cache_size, MEMO_MAX_ENTRIES))(self.shapes.key_of)
        self._memo = cache_size > 0
        self.max_line_bytes = max_line_bytes

    @classmethod
    def from_dir(cls, model_dir: str | Path, threads: int = 2, batch_size: int = 32,
                 cache_size: int = 50_000, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 policy: EscalationPolicy | None = None) -> "Classifier":
        student = OnnxStudent(load_artifact(model_dir), threads=threads, batch_size=batch_size)
        return cls(student, cache_size=cache_size, max_line_bytes=max_line_bytes, policy=policy)

    @property
    def model_version(self) -> str:
        return self.student.artifact.version

    def decode(self, raw: bytes) -> str | LineError:
        """Bytes → text, or the reason this line is not classifiable."""
        raw = raw.rstrip(b"\r\n")
        if len(raw) > self.max_line_bytes:
            return LineError("too_long", f"line is {len(raw)} bytes, over the {self.max_line_bytes}-byte limit",
                             preview(raw))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return LineError("invalid_utf8", f"not valid UTF-8: {exc.reason} at byte {exc.start}", preview(raw))
        if not text.strip():
            return LineError("empty", "empty line (nothing to classify)", text[:ERROR_PREVIEW_CHARS])
        return text

    def classify_raw(self, raws: list[bytes]) -> list[Classification | LineError]:
        decoded = [self.decode(raw) for raw in raws]
        texts = [d for d in decoded if isinstance(d, str)]
        classified = iter(self.classify_texts(texts))
        return [next(classified) if isinstance(d, str) else d for d in decoded]

    def classify_texts(self, texts: list[str]) -> list[Classification]:
        """One Classification per text. Lines of one template share one (read-only) Answer."""
        parsed = [parse_line(text) for text in texts]
        keys = self.template_keys(parsed)
        answers = {key: self._answer(verdict) for key, verdict in self.verdicts(keys).items()}
        return [Classification(text, key, answers[key], parsed=p) for text, p, key in zip(texts, parsed, keys)]

    def template_keys(self, parsed: list[ParsedLine]) -> list[str]:
        """masking.template_key of each line, through the memo of exact (message, level) repeats."""
        return [self._key_of(p.message, p.level) for p in parsed]

    def _key_of(self, message: str, level: str | None) -> str:
        if self._memo and len(message) <= MEMO_MAX_CHARS:
            return self._memo_key_of(message, level)
        return key_of(message, level)

    def probabilities(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Calibrated probabilities per distinct key."""
        return {key: verdict.probs for key, verdict in self.verdicts(keys).items()}

    def verdicts(self, keys: list[str]) -> dict[str, Verdict]:
        """A Verdict per distinct key: from the cache, else one batched model call for all misses."""
        found: dict[str, Verdict] = {}
        misses: list[str] = []
        for key in keys:
            if key in found:
                self.cache.hits += 1  # a repeat within the batch: answered without the model, so a hit
                continue
            cached = self.cache.get(key)
            if cached is None:
                found[key] = None  # placeholder keeps each miss counted once per batch
                misses.append(key)
            else:
                found[key] = cached
        if misses:
            for key, verdict in zip(misses, self.judge(misses)):
                self.cache.put(key, verdict)
                found[key] = verdict
        return found

    def judge(self, keys: list[str]) -> list[Verdict]:
        """The model on template keys: calibrated probabilities, and the OOD score and evidence where the
        artifact has them."""
        outputs = self.student.run(keys)
        probs = self.student.calibrated(outputs["logits"]).astype(np.float32)
        probs.setflags(write=False)  # cached and shared between lines: nobody may change an answer
        ood = self.familiarity.ood_score(keys) if self.familiarity is not None else [None] * len(keys)
        evidence = [None] * len(keys)
        if self.evidence is not None:
            evidence = [self.evidence.neighbour(int(row), similarity)
                        for row, similarity in zip(outputs["nearest_row"], outputs["nearest_similarity"])]
        return [Verdict(p, None if score is None else float(score), near)
                for p, score, near in zip(probs, ood, evidence)]

    def _answer(self, verdict: Verdict) -> Answer:
        """Label, confidence, probs by label and the escalation decision for one template: once per batch."""
        probs = verdict.probs
        best = int(np.argmax(probs))
        confidence = float(probs[best])
        return Answer(self.labels[best], confidence, {label: round(float(p), 4) for label, p in zip(self.labels, probs)},
                      verdict.ood, verdict.evidence, self.policy.reason(confidence, verdict.ood))


def preview(raw: bytes) -> str:
    return raw[:ERROR_PREVIEW_CHARS].decode("utf-8", errors="backslashreplace")
