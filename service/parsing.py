"""Log-line parsing: find the human message (and its level) inside the usual envelopes.

Formats, tried in this order:
  CRI (containerd/CRI-O files)  2024-06-12T10:01:02.123456789Z stdout F <message>
  docker json-file              {"log": "<message>\\n", "stream": "stdout", "time": "..."}
  JSON structured logs          {"level": "error", "msg": "<message>", ...}
  klog (Kubernetes components)  E0612 10:01:02.123456       1 file.go:12] <message>
  plain text                    anything else, the whole line is the message

Envelopes nest: a CRI or docker line whose payload is itself klog or JSON is unwrapped once more.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CRI_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\S+) (stdout|stderr) ([FP]) ?(.*)$", re.DOTALL)
KLOG_RE = re.compile(r"^([IWEF])(\d{4}) (\d{2}:\d{2}:\d{2}\.\d+)\s+(\d+) ([^\s\]]+:\d+)\] ?(.*)$", re.DOTALL)

KLOG_LEVELS = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
MESSAGE_KEYS = ("msg", "message", "log", "text", "MESSAGE", "Message")
LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level", "Level", "Severity")
TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "Timestamp")
# zap/logr put the cause beside the message ("msg":"Reconciler error","error":"..."): keep it.
ERROR_KEYS = ("error", "err", "exception")

# Many spellings of the same severity; the model sees the normalised one.
LEVEL_ALIASES = {
    "trace": "debug", "debug": "debug", "dbg": "debug",
    "info": "info", "information": "info", "informational": "info", "notice": "info",
    "warn": "warning", "warning": "warning",
    "err": "error", "error": "error", "severe": "error",
    "crit": "fatal", "critical": "fatal", "fatal": "fatal", "panic": "fatal",
    "alert": "fatal", "emerg": "fatal", "emergency": "fatal",
}
MAX_UNWRAP_DEPTH = 2


@dataclass
class ParsedLine:
    message: str
    level: str | None = None
    timestamp: str | None = None
    format: str = "plain"
    fields: dict = field(default_factory=dict)


def normalise_level(value) -> str | None:
    if value is None:
        return None
    return LEVEL_ALIASES.get(str(value).strip().lower())


def parse_line(line: str) -> ParsedLine:
    """Parse one decoded log line (without its trailing newline)."""
    return _parse(line.rstrip("\r\n"), depth=0)


def _parse(text: str, depth: int) -> ParsedLine:
    parsed = _parse_cri(text) or _parse_json(text) or _parse_klog(text) or ParsedLine(message=text.strip())
    if depth < MAX_UNWRAP_DEPTH and parsed.format in ("cri", "docker"):
        inner = _parse(parsed.message, depth + 1)
        if inner.format != "plain":
            # Keep the outer envelope's format name; take the inner message and level.
            inner.timestamp = inner.timestamp or parsed.timestamp
            inner.fields = {**parsed.fields, **inner.fields}
            inner.format = f"{parsed.format}+{inner.format}"
            return inner
    return parsed


def _parse_cri(text: str) -> ParsedLine | None:
    m = CRI_RE.match(text)
    if not m:
        return None
    ts, stream, tag, message = m.groups()
    return ParsedLine(message=message.strip(), timestamp=ts, format="cri",
                      fields={"stream": stream, "partial": tag == "P"})


def _parse_json(text: str) -> ParsedLine | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = json.loads(stripped)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    if "log" in obj and "stream" in obj:  # docker json-file driver
        return ParsedLine(message=str(obj["log"]).strip(), timestamp=obj.get("time"), format="docker",
                          fields={"stream": obj.get("stream")})
    message_key = next((k for k in MESSAGE_KEYS if k in obj), None)
    if message_key is None:
        # Structured but with no message field: classify the whole object as text.
        return ParsedLine(message=stripped, format="json", fields={})
    level_key = next((k for k in LEVEL_KEYS if k in obj), None)
    time_key = next((k for k in TIME_KEYS if k in obj), None)
    rest = {k: v for k, v in obj.items() if k not in (message_key, level_key, time_key)}
    message = obj[message_key] if isinstance(obj[message_key], str) else json.dumps(obj[message_key])
    error_key = next((k for k in ERROR_KEYS if isinstance(obj.get(k), str) and obj[k]), None)
    if error_key:
        message = f"{message.strip()}: {obj[error_key]}"
    return ParsedLine(message=message.strip(), level=normalise_level(obj.get(level_key)),
                      timestamp=str(obj[time_key]) if time_key else None, format="json", fields=rest)


def _parse_klog(text: str) -> ParsedLine | None:
    m = KLOG_RE.match(text)
    if not m:
        return None
    severity, mmdd, clock, _thread, source, message = m.groups()
    return ParsedLine(message=message.strip(), level=KLOG_LEVELS[severity], timestamp=f"{mmdd} {clock}",
                      format="klog", fields={"source": source})
