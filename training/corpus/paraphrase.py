"""Teacher paraphrases: new realistic lines for a template, in other words, with the same label.

Rule-based augmentation (augment.py) changes envelopes and variables; it never changes wording, so a
student that learnt "Database timeout" has not seen "DB connection failure". Here a chat model
(local or over HTTP) rewrites a template's example line, and each rewrite must pass checks before
it joins the training set with its source's soft label:

  empty             nothing usable came back
  instruction_copy  the model echoed the instruction or the prompt's own example
  identical         the same text as the source line
  same_template     a different line but the same template key (masking makes it a duplicate)
  length            far shorter or longer than the source (a fragment or a ramble)
  duplicate         the same template key as an earlier paraphrase
  excluded          a template key the caller reserved (held-out templates: no leak into evaluation)
  teacher_abstained the validating teacher could not label it
  label_changed     the validating teacher's top label is not the source's
  low_confidence    same top label, but with probability under the threshold

Sampling is seeded per (seed, template key, candidate index), so a run is reproducible whatever
the order or number of templates. Prompts are short: the default chat model has 135M parameters.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from service.masking import template_key
from service.parsing import parse_line
from training.teachers.base import Teacher, TeacherQuery
from training.teachers.local_lm import ChatModel

INSTRUCTION = "Rewrite the log line with different words but the same meaning. Reply with the new log line only."
EXAMPLE_IN = "Database timeout while saving order 1234"
EXAMPLE_OUT = "DB connection failure: could not store order 1234"
LINE_PREFIXES = ("log line:", "new log line:", "rewritten:", "paraphrase:")
REASONS = ("empty", "instruction_copy", "identical", "same_template", "length", "duplicate", "excluded",
           "teacher_abstained", "label_changed", "low_confidence")


@dataclass(frozen=True)
class ParaphraseSource:
    key: str             # the template key
    example: str         # a real line of it: what gets rewritten
    probs: np.ndarray    # its soft label (taxonomy order), inherited by accepted paraphrases


@dataclass
class Paraphrase:
    line: str
    key: str                 # template key of the new line
    source_key: str
    probs: np.ndarray        # the source's soft label
    teacher_probs: np.ndarray  # what the validating teacher said about the new line


@dataclass
class ParaphraseReport:
    accepted: list[Paraphrase] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)           # reason -> count
    rejected_examples: dict = field(default_factory=dict)         # reason -> a few (source key, text)

    def reject(self, reason: str, source_key: str, text: str, keep: int = 3) -> None:
        self.rejected[reason] += 1
        examples = self.rejected_examples.setdefault(reason, [])
        if len(examples) < keep:
            examples.append((source_key, text))

    def summary(self) -> dict:
        return {"accepted": len(self.accepted), "rejected": dict(self.rejected)}

    def training_examples(self) -> tuple[list[str], list[np.ndarray]]:
        """(template keys, soft labels) of the accepted paraphrases, as the student trains on them."""
        return [p.key for p in self.accepted], [p.probs for p in self.accepted]


def sources_from_templates(templates, soft: dict[str, np.ndarray]) -> list[ParaphraseSource]:
    """Labelled corpus templates (training.corpus.readers.Template) as paraphrase sources. Like rule-based
    augmentation, a Loghub line is rewritten without its vendor header (meta "content")."""
    return [ParaphraseSource(t.key, t.meta.get("content") or t.examples[0], soft[t.key])
            for t in templates if t.key in soft]


def paraphrase_messages(line: str) -> list[dict]:
    return [{"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": EXAMPLE_IN},
            {"role": "assistant", "content": EXAMPLE_OUT},
            {"role": "user", "content": line}]


def candidate_seed(seed: int, key: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}\x00{key}\x00{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def clean(text: str) -> str:
    """The first non-empty line of a reply, without quotes or a 'Log line:'-style prefix."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0]
    for prefix in LINE_PREFIXES:
        if line.lower().startswith(prefix):
            line = line[len(prefix):].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'`":
        line = line[1:-1].strip()
    return line


def line_key(line: str) -> str:
    return template_key(parse_line(line))


class Paraphraser:
    def __init__(self, chat_model: ChatModel, teacher: Teacher, n: int = 2, threshold: float = 0.5,
                 temperature: float = 0.8, seed: int = 0, max_tokens: int = 64,
                 length_ratio: tuple[float, float] = (0.3, 3.0)):
        if not 0 <= threshold <= 1:
            raise ValueError("threshold must be in [0, 1]")
        self.chat_model, self.teacher = chat_model, teacher
        self.n, self.threshold, self.temperature, self.seed = n, threshold, temperature, seed
        self.max_tokens, self.length_ratio = max_tokens, length_ratio

    def run(self, sources: list[ParaphraseSource], exclude_keys=frozenset()) -> ParaphraseReport:
        """Paraphrase each source `n` times and validate; `exclude_keys`: template keys no paraphrase
        may have (pass the held-out templates' keys)."""
        report = ParaphraseReport()
        exclude_keys = set(exclude_keys)
        seen_keys = {s.key for s in sources} | {line_key(s.example) for s in sources}
        candidates: list[tuple[ParaphraseSource, str, str]] = []  # (source, line, its key)
        for source in sources:
            for index in range(self.n):
                reply = self.chat_model.chat(paraphrase_messages(source.example), max_tokens=self.max_tokens,
                                             temperature=self.temperature,
                                             seed=candidate_seed(self.seed, source.key, index))
                line = clean(reply)
                reason = self.text_problem(source, line)
                key = line_key(line) if reason is None else ""
                if reason is None and key in seen_keys:
                    reason = "same_template" if key in (source.key, line_key(source.example)) else "duplicate"
                if reason is None and key in exclude_keys:
                    reason = "excluded"
                if reason:
                    report.reject(reason, source.key, line)
                    continue
                seen_keys.add(key)
                candidates.append((source, line, key))
        self.validate_labels(candidates, report)
        return report

    def text_problem(self, source: ParaphraseSource, line: str) -> str | None:
        if not line:
            return "empty"
        lowered = line.lower()
        if lowered in (INSTRUCTION.lower(), EXAMPLE_IN.lower(), EXAMPLE_OUT.lower()) or \
                INSTRUCTION.lower()[:40] in lowered:
            return "instruction_copy"
        if line == source.example.strip():
            return "identical"
        low, high = self.length_ratio
        if not low * len(source.example) <= len(line) <= high * max(len(source.example), 20):
            return "length"
        return None

    def validate_labels(self, candidates, report: ParaphraseReport) -> None:
        """Keep a paraphrase only if the teacher's top label is the source's, with enough probability."""
        if not candidates:
            return
        answers = self.teacher.distributions([TeacherQuery(key=key, example=line) for _, line, key in candidates])
        for (source, line, key), probs in zip(candidates, answers):
            if probs is None:
                report.reject("teacher_abstained", source.key, line)
                continue
            probs = np.asarray(probs)
            wanted = int(np.argmax(source.probs))
            if int(np.argmax(probs)) != wanted:
                report.reject("label_changed", source.key, line)
            elif probs[wanted] < self.threshold:
                report.reject("low_confidence", source.key, line)
            else:
                report.accepted.append(Paraphrase(line, key, source.key, np.asarray(source.probs), probs))
