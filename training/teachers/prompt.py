"""The LLM teachers' prompt: taxonomy descriptions and few-shot examples in, one label out.

Every LLM teacher (an OpenAI-compatible endpoint, a local causal LM) asks the same question in
the same words, so their answers are comparable and the prompt's fingerprint (`prompt_id`) can
be part of the label-store key: change a description or an example and templates are asked again.

The answer format is a JSON object, {"label": "<name>"}. A teacher that can read token
probabilities scores each label name where ANSWER_PREFIX ends; one that cannot parses the
answer with `parse_answer`, which accepts exactly one known label and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from service.taxonomy import Taxonomy

ANSWER_PREFIX = '{"label": "'


@dataclass(frozen=True)
class Example:
    line: str
    label: str


# Hand-written for the prompt, not taken from any corpus we evaluate on (no leak into held-out).
DEFAULT_EXAMPLES = (
    Example("I1130 10:02:11.120 1 server.go:88] Started HTTP server on :8080", "normal"),
    Example("dial tcp 10.0.3.7:5432: connect: connection refused", "network"),
    Example("Memory cgroup out of memory: Killed process 4211 (java) total-vm:8123456kB", "resource"),
    Example('level=error msg="pq: deadlock detected" query="UPDATE orders SET state=$1"', "database"),
    Example("Back-off restarting failed container api in pod api-7d9f8-x2x (CrashLoopBackOff)", "crash"),
    Example('{"level":"warn","msg":"token expired for user alice, returning 401"}', "security"),
)


@dataclass(frozen=True)
class LabelPrompt:
    taxonomy: Taxonomy
    examples: tuple[Example, ...] = DEFAULT_EXAMPLES

    def __post_init__(self):
        for example in self.examples:
            self.taxonomy.index(example.label)  # a few-shot label outside the taxonomy is a config error

    def system(self) -> str:
        labels = "\n".join(f"- {name}: {self.taxonomy.descriptions[name]}" for name in self.taxonomy.labels)
        return ("You classify log lines from Kubernetes clusters and servers. Pick the single label that "
                "fits the line best.\n\nLabels:\n" + labels + "\n\n"
                'Answer with JSON only, exactly {"label": "<one label name from the list>"}.')

    def messages(self, line: str) -> list[dict]:
        """Chat messages: system prompt, the few-shot examples as past turns, then the line."""
        turns = [{"role": "system", "content": self.system()}]
        for example in self.examples:
            turns += [{"role": "user", "content": user_turn(example.line)},
                      {"role": "assistant", "content": answer_text(example.label)}]
        return turns + [{"role": "user", "content": user_turn(line)}]

    def completion_text(self, line: str) -> str:
        """The same question as one plain prompt, for /v1/completions servers (no chat template)."""
        parts = [self.system(), ""]
        for example in self.examples:
            parts += [user_turn(example.line), "Answer: " + answer_text(example.label), ""]
        return "\n".join(parts + [user_turn(line), "Answer: " + ANSWER_PREFIX])

    @property
    def prompt_id(self) -> str:
        """Fingerprint of everything the teacher is shown besides the line itself."""
        rendered = json.dumps([self.messages("<LINE>"), self.completion_text("<LINE>")])
        return hashlib.sha256(rendered.encode()).hexdigest()[:12]

    def parse_answer(self, text: str) -> str | None:
        """The label named by a model's answer, or None when it names no known label (never a guess)."""
        return parse_answer(text, self.taxonomy.labels)


def user_turn(line: str) -> str:
    return f"Log line: {line}"


def answer_text(label: str) -> str:
    return json.dumps({"label": label})


_JSON_OBJECT_RE = re.compile(r"\{[^{}]*\}", re.S)


def parse_answer(text: str, labels: tuple[str, ...]) -> str | None:
    """Accept a JSON object with a "label" that is in `labels` (code fences and prose around it are
    tolerated); a bare label name alone is accepted too. Anything else is None."""
    text = (text or "").strip()
    if text in labels:
        return text
    for candidate in _JSON_OBJECT_RE.findall(text):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("label"), str):
            label = value["label"].strip()
            return label if label in labels else None
    return None
