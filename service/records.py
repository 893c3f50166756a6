"""Kafka messages in, JSON results and dead letters out: the serve wire format.

In: a message value is a log line, or a log shipper's JSON envelope around one
(Fluent Bit: {"log": ..., "kubernetes": {"pod_name", "namespace_name", "container_name"}};
Vector: {"message": ..., "kubernetes": {"pod_name", "pod_namespace", "container_name"}}).
The envelope is unwrapped here; the inner line may itself be CRI, JSON or klog (parsing.py).

Out, per input message, exactly one of:
  result       JSON on the output topic: line, label, confidence, top-3 probs, template,
               escalate (+ escalation_reason, ood, evidence: service/confidence.py), model version, source topic/partition/offset/timestamp, kubernetes metadata.
  dead letter  on the dead-letter topic: the ORIGINAL value bytes (cut to a size limit), the
               original key and headers, plus `logdistill.*` headers giving the reason.
               Raw bytes rather than a JSON wrapper: nothing to escape, no base64 growth, and
               the record can be replayed onto the input topic as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from service.classifier import Classification, LineError, preview
from service.parsing import MESSAGE_KEYS

TOP_PROBS = 3
TEMPLATE_ID_BYTES = 6  # 12 hex chars: collisions are irrelevant at the scale of a template vocabulary
HEADER_PREFIX = "logdistill."
ENVELOPE_LINE_KEYS = ("log", "message")  # Fluent Bit, Vector
# Where each shipper puts the Kubernetes names: our name → keys tried in order.
KUBERNETES_KEYS = {
    "pod": ("pod_name",),
    "namespace": ("namespace_name", "pod_namespace"),
    "container": ("container_name",),
}


@dataclass
class Unwrapped:
    """What the classifier gets for one message, or why it gets nothing."""
    raw: bytes | None
    kubernetes: dict | None = None
    error: LineError | None = None


def unwrap(value: bytes | None, max_message_bytes: int) -> Unwrapped:
    """A message value → the log line to classify (still bytes: the classifier decodes and checks it)."""
    if value is None:  # tombstone
        return Unwrapped(b"")
    if len(value) > max_message_bytes:
        return Unwrapped(None, error=LineError(
            "too_long", f"message is {len(value)} bytes, over the {max_message_bytes}-byte limit", preview(value)))
    if not value.lstrip()[:1] == b"{":
        return Unwrapped(value)
    try:
        obj = json.loads(value)
    except ValueError:  # not JSON after all, or not UTF-8: the classifier says which
        return Unwrapped(value)
    if not isinstance(obj, dict):
        return Unwrapped(value)
    if isinstance(obj.get("kubernetes"), dict):
        return _unwrap_shipper(obj, value)
    if not any(key in obj for key in MESSAGE_KEYS):
        return Unwrapped(None, error=_no_message(value, MESSAGE_KEYS))
    return Unwrapped(value)  # a structured log line: parsing.py reads its msg and level


def _unwrap_shipper(envelope: dict, value: bytes) -> Unwrapped:
    kubernetes = kubernetes_metadata(envelope["kubernetes"])
    for key in ENVELOPE_LINE_KEYS:
        line = envelope.get(key)
        if isinstance(line, str):
            return Unwrapped(line.encode("utf-8", errors="surrogatepass"), kubernetes)
    return Unwrapped(None, kubernetes, _no_message(value, ENVELOPE_LINE_KEYS))


def _no_message(value: bytes, keys: tuple[str, ...]) -> LineError:
    return LineError("no_message", f"JSON object without a message field (one of {', '.join(keys)})",
                     preview(value))


def kubernetes_metadata(meta: dict) -> dict | None:
    found = {}
    for ours, keys in KUBERNETES_KEYS.items():
        value = next((meta[key] for key in keys if meta.get(key)), None)
        if value is not None:
            found[ours] = str(value)
    return found or None


def template_id(key: str) -> str:
    return hashlib.blake2b(key.encode("utf-8"), digest_size=TEMPLATE_ID_BYTES).hexdigest()


def source(message) -> dict:
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset,
            "timestamp": message.timestamp}


def result_value(message, result: Classification, kubernetes: dict | None, model_version: str) -> bytes:
    """The result JSON for one line (ResultEncoder builds the same bytes for a batch)."""
    return ResultEncoder(model_version).encode(message, result, kubernetes)


class ResultEncoder:
    """Result JSON, the template's part encoded once: lines of one template share label, confidence,
    probs, level, template and escalation fields (one Answer per template and batch), so each line only
    adds its own text, source and Kubernetes names. Fields keep one order:
    line, label, confidence, probs, level, template, escalate..., model_version, source, kubernetes.
    One per batch (or per model): what it remembers is keyed by template and level."""

    def __init__(self, model_version: str):
        self.model_version = model_version
        self._parts: dict[tuple[str, str | None], str] = {}
        self._topics: dict[str, str] = {}

    def encode(self, message, result: Classification, kubernetes: dict | None) -> bytes:
        key = (result.template, result.parsed.level)
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = self._template_part(result)
        text = (f'{{"line": {_json(result.line)}, {part}, "source": {self._source(message)}'
                f'{f", {_KUBERNETES}{_json(kubernetes)}" if kubernetes else ""}}}')
        return text.encode("utf-8")

    def _template_part(self, result: Classification) -> str:
        top = sorted(result.probs.items(), key=lambda item: item[1], reverse=True)[:TOP_PROBS]
        record = {
            "label": result.label,
            "confidence": round(result.confidence, 4),
            "probs": dict(top),
            "level": result.parsed.level,
            "template": {"id": template_id(result.template), "key": result.template},
            **result.verdict_fields(),  # escalate, escalation_reason, ood, evidence (confidence.py)
            "model_version": self.model_version,
        }
        return _json(record)[1:-1]  # the fields, without their braces

    def _source(self, message) -> str:
        partition, offset, timestamp = message.partition, message.offset, message.timestamp
        if not (type(partition) is int and type(offset) is int and type(timestamp) is int):
            return _json(source(message))
        topic = self._topics.get(message.topic)
        if topic is None:
            topic = self._topics[message.topic] = _json(message.topic)
        return f'{{"topic": {topic}, "partition": {partition}, "offset": {offset}, "timestamp": {timestamp}}}'


_KUBERNETES = '"kubernetes": '
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(x, ensure_ascii=False), without its argument checks


def dead_letter(message, error: LineError, model_version: str, max_bytes: int) -> tuple[bytes, list]:
    """(value, headers) for the dead-letter topic: the original bytes, cut to max_bytes, and why."""
    original = message.value if message.value is not None else b""
    value = original[:max_bytes]
    ours = {
        "error.reason": error.reason,
        "error.message": error.error,
        "source.topic": message.topic,
        "source.partition": message.partition,
        "source.offset": message.offset,
        "source.timestamp": message.timestamp,
        "original.size": len(original),
        "truncated": str(len(value) < len(original)).lower(),
        "model.version": model_version,
    }
    headers = list(message.headers or []) + [(HEADER_PREFIX + k, str(v).encode()) for k, v in ours.items()]
    return value, headers


def dead_letter_reason(headers: list) -> dict[str, str]:
    """The `logdistill.*` headers of a dead letter, decoded (for tests and replay tools)."""
    return {key[len(HEADER_PREFIX):]: value.decode() for key, value in headers or []
            if key.startswith(HEADER_PREFIX)}
