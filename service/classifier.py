"""The classification path for one batch of lines: decode → parse → mask → cache → model.

Every input line comes back as exactly one result: a Classification, or a LineError that says
why the line could not be classified. Nothing is dropped, nothing raises per line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.artifact import load_artifact
from service.cache import TemplateCache
from service.inference import OnnxStudent
from service.masking import key_of
from service.parsing import ParsedLine, parse_line

DEFAULT_MAX_LINE_BYTES = 64 * 1024
# The (message, level) -> key memo holds whole messages: bounded in count and in message length,
# so its worst case stays ~15 MB on a 200 MB edge budget (typical log messages are ~130 chars).
MEMO_MAX_ENTRIES = 20_000
MEMO_MAX_CHARS = 256
ERROR_PREVIEW_CHARS = 200


@dataclass
class Classification:
    line: str
    template: str
    label: str
    confidence: float
    probs: dict[str, float]
    parsed: ParsedLine

    def to_record(self) -> dict:
        return {"line": self.line, "label": self.label, "confidence": round(self.confidence, 4),
                "probs": self.probs, "template": self.template}


@dataclass
class LineError:
    reason: str  # short machine-readable code: invalid_utf8, empty, too_long
    error: str   # human-readable explanation
    preview: str  # start of the offending line, undecodable bytes escaped

    def to_record(self) -> dict:
        return {"line": self.preview, "error": self.error, "reason": self.reason}


class Classifier:
    def __init__(self, student: OnnxStudent, cache_size: int = 50_000,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES):
        self.student = student
        self.labels = student.labels
        self.cache = TemplateCache(cache_size)
        # Masking is the costliest step of a cache hit (tens of µs of regexes). Messages repeat
        # exactly (a probe failing every 10 s, one error from 50 pods, envelope timestamps aside),
        # so (message, level) -> template key is memoised too (off with the cache: cache_size 0).
        self._memo_key_of = functools.lru_cache(maxsize=min(cache_size, MEMO_MAX_ENTRIES))(key_of)
        self._memo = cache_size > 0
        self.max_line_bytes = max_line_bytes

    @classmethod
    def from_dir(cls, model_dir: str | Path, threads: int = 2, batch_size: int = 32,
                 cache_size: int = 50_000, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> "Classifier":
        student = OnnxStudent(load_artifact(model_dir), threads=threads, batch_size=batch_size)
        return cls(student, cache_size=cache_size, max_line_bytes=max_line_bytes)

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
        """One Classification per text. Lines of one template share one (read-only) probs dict."""
        parsed = [parse_line(text) for text in texts]
        keys = self.template_keys(parsed)
        answers = {key: self._answer(probs) for key, probs in self.probabilities(keys).items()}
        return [Classification(text, key, *answers[key], parsed=p) for text, p, key in zip(texts, parsed, keys)]

    def template_keys(self, parsed: list[ParsedLine]) -> list[str]:
        """masking.template_key of each line, through the memo of exact (message, level) repeats."""
        return [self._key_of(p.message, p.level) for p in parsed]

    def _key_of(self, message: str, level: str | None) -> str:
        if self._memo and len(message) <= MEMO_MAX_CHARS:
            return self._memo_key_of(message, level)
        return key_of(message, level)

    def probabilities(self, keys: list[str]) -> dict[str, np.ndarray]:
        """Probabilities per distinct key: from the cache, else one batched model call for all misses."""
        found: dict[str, np.ndarray] = {}
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
            for key, probs in zip(misses, self.student.predict_proba(misses)):
                self.cache.put(key, probs)
                found[key] = probs
        return found

    def _answer(self, probs: np.ndarray) -> tuple[str, float, dict[str, float]]:
        """(label, confidence, probs by label) for one template: built once per batch, not per line."""
        best = int(np.argmax(probs))
        return (self.labels[best], float(probs[best]),
                {label: round(float(p), 4) for label, p in zip(self.labels, probs)})


def preview(raw: bytes) -> str:
    return raw[:ERROR_PREVIEW_CHARS].decode("utf-8", errors="backslashreplace")
