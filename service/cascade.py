"""The cascade: results with `escalate: true` (calibrated confidence under τ, or out of distribution:
service/confidence.py) also go to an escalation topic, where a teacher (the LLM) labels them; its
answers come back on the feedback topic (feedback.py).

An escalation is JSON with what a teacher needs and what its answer must echo:
    {"line", "line_truncated", "template": {"id", "key"},
     "student": {"label", "confidence", "probs": every label, in taxonomy order},
     "escalation_reason", "ood"?, "evidence"?: the nearest training template and its teacher label,
     "model_version", "source": {topic, partition, offset, timestamp}, "kubernetes"?}
Keyed by template id: one template, one partition, so a teacher sees a template's repeats together.

Delivery: escalations travel in the batch with the results, so they are acknowledged before the
input offsets are committed: at least once, like everything else.
Deduplication: the teacher labels templates, not lines, and a frequent low-confidence template
would otherwise be escalated thousands of times a second. A template is escalated once per model
while it is among the `dedup` most recently escalated (an LRU); a new model clears the list,
since its doubts differ. A lost escalation is impossible: the list is only in memory, so a
restart (the only way a produced-but-uncommitted batch is replayed) escalates again.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from service.classifier import Classification
from service.records import source, template_id

MAX_LINE_CHARS = 4096  # the teacher needs an example, not a megabyte: keeps every escalation small


class Escalator:
    def __init__(self, topic: str, dedup: int = 10_000):
        self.topic = topic
        self.dedup = dedup
        self._recent: OrderedDict[str, None] = OrderedDict()

    @classmethod
    def from_config(cls, config) -> "Escalator | None":
        if not config.escalation_topic:
            return None
        return cls(config.escalation_topic, config.escalation_dedup)

    def escalate(self, message, result: Classification, kubernetes: dict | None,
                 model_version: str) -> tuple[bytes, bytes] | None:
        """(key, value) to send to the escalation topic, or None: kept (escalate false), or escalated recently."""
        if not result.escalate or self._seen_recently(result.template):
            return None
        value = escalation_value(message, result, kubernetes, model_version)
        return template_id(result.template).encode(), value

    def reset(self) -> None:
        """A new model is served: its low-confidence templates are escalated afresh."""
        self._recent.clear()

    def _seen_recently(self, template: str) -> bool:
        if self.dedup <= 0:
            return False
        if template in self._recent:
            self._recent.move_to_end(template)
            return True
        self._recent[template] = None
        if len(self._recent) > self.dedup:
            self._recent.popitem(last=False)
        return False


def escalation_value(message, result: Classification, kubernetes: dict | None, model_version: str,
                     max_line_chars: int = MAX_LINE_CHARS) -> bytes:
    record = {
        "line": result.line[:max_line_chars],
        "line_truncated": len(result.line) > max_line_chars,
        "template": {"id": template_id(result.template), "key": result.template},
        "student": {"label": result.label, "confidence": round(result.confidence, 4), "probs": result.probs},
        **{name: value for name, value in result.verdict_fields().items() if name != "escalate"},
        "model_version": model_version,
        "source": source(message),
    }
    if kubernetes:
        record["kubernetes"] = kubernetes
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def shrink(value: bytes) -> bytes:
    """An escalation the broker refused as too large, with its example line cut in half."""
    record = json.loads(value)
    record["line"] = record["line"][: len(record["line"]) // 2]
    record["line_truncated"] = True
    return json.dumps(record, ensure_ascii=False).encode("utf-8")
