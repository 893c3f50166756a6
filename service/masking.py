"""Variable masking: turn a log message into a template key.

Lines that differ only in their variables (IPs, numbers, pod names, ids, timestamps) get the
same key, so the model sees the template, and the template cache answers repeats with a
dictionary lookup. Rules are ordered: the specific shapes (UUID, IP, timestamp) go before the
generic number rule, which would otherwise eat them piecemeal.

We mask with a fixed regex list rather than Drain3's online miner on purpose: a key must be a
pure function of the line, the same in training and serving, whatever order lines arrive in.
"""

from __future__ import annotations

import re

from service.parsing import ParsedLine

MAX_TEMPLATE_CHARS = 512

# (placeholder, pattern). Patterns must not match inside an already placed "<...>" token.
MASK_RULES: list[tuple[str, re.Pattern]] = [
    ("<UUID>", re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")),
    ("<TS>", re.compile(
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b|"
        r"\b\d{4}[-/.]\d{2}[-/.]\d{2}(?:-\d{2}\.\d{2}\.\d{2}(?:\.\d+)?)?\b|"
        r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2},? "
        r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?: \d{4})?\b|"
        r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b")),
    ("<URL>", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")),
    ("<EMAIL>", re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")),
    # Host names only with a known top-level suffix, so Java packages and "obj.method()" survive.
    ("<HOST>", re.compile(r"\b(?:[A-Za-z0-9-]+\.)+(?:com|net|org|edu|gov|io|cn|hk|jp|de|uk|ru|local|internal|"
                          r"svc|lan|corp)(?::\d{1,5})?\b")),
    ("<IP>", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?(?!\w|\.\w)|"
                        r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}(?![\w:])")),
    # Deployment pods "web-7d9f8b6c5-x2kqz", daemonset pods "fluentd-x2kqz", jobs "backup-28190400-abcde".
    ("<POD>", re.compile(r"\b[a-z0-9]+(?:-[a-z0-9]+)*?-(?:[a-f0-9]{8,10}|\d{8})-[a-z0-9]{5}(?![a-z0-9])|"
                         r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)*-(?=[a-z0-9]*\d)[bcdfghjklmnpqrstvwxz2-9]{5}(?![a-z0-9])")),
    ("<HEX>", re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")),
    ("<PATH>", re.compile(r"(?<![\w<>])(?:/[\w.@%+~-]+){2,}/?")),
    # Tokens that are mostly digits mixed with letters: hardware locations, ids, hashes.
    ("<ID>", re.compile(r"(?<![\w<])(?=[\w:-]*\d[\w:-]*\d[\w:-]*\d)(?=[\w:-]*[A-Za-z])[\w:-]{6,}(?![\w>])")),
    ("<NUM>", re.compile(r"(?<![A-Za-z0-9<])[-+]?\d+(?:\.\d+)?(?:[a-zA-Z%µ]{1,3}\b)?(?![A-Za-z0-9>])")),
]
# A literal every match of a rule contains: a line without it skips that rule's regex (same output,
# a third less masking time on typical lines).
RULE_NEEDS: dict[str, str] = {"<UUID>": "-", "<URL>": "://", "<EMAIL>": "@", "<HOST>": ".", "<PATH>": "/"}
WHITESPACE_RE = re.compile(r"\s+")
# HTTP status codes carry meaning (200 vs 403 vs 503): keep them, marked so the number rule skips them.
HTTP_STATUS_RE = re.compile(r"(?i)\b(status(?:[ _]?code)?|code|returned|response|http/\d(?:\.\d)?\"?)([\s=:]+)([1-5]\d\d)\b")


def mask_message(message: str) -> str:
    """Replace variables in a message with placeholders and normalise whitespace."""
    text = message[: MAX_TEMPLATE_CHARS * 4]  # bound regex work on huge lines
    text = HTTP_STATUS_RE.sub(r"\1\2<\3>", text)
    for placeholder, pattern in MASK_RULES:
        need = RULE_NEEDS.get(placeholder)
        if need is None or need in text:
            text = pattern.sub(placeholder, text)
    return WHITESPACE_RE.sub(" ", text).strip()[:MAX_TEMPLATE_CHARS]


def template_key(parsed: ParsedLine) -> str:
    """The model input and cache key: normalised level (when the envelope gave one) + masked message."""
    return key_of(parsed.message, parsed.level)


def key_of(message: str, level: str | None = None) -> str:
    """template_key from the two fields it depends on (hashable, so a caller can memoise it)."""
    masked = mask_message(message)
    return f"[{level}] {masked}" if level else masked
