"""Augmentation that needs no teacher call: new lines that keep their source template's label.

Two moves, both on real example lines of a template:
  resample   put fresh values in the variables the masker knows (IPs, numbers, UUIDs, pods, ...);
  rewrap     send the message through another log envelope (CRI, docker, JSON, klog, plain).
Every new line goes through the runtime's own parse → mask path, so what the student learns
from is exactly what it will see; lines that collapse onto an existing key add nothing and are
dropped by the caller's dedup.
"""

from __future__ import annotations

import json
import random
import re
import uuid

from service.masking import HTTP_STATUS_RE, MASK_RULES
from service.parsing import normalise_level, parse_line
from training.corpus.k8s_corpus import wrap

STAND_IN_RE = re.compile("<\x00([A-J]+)>")
USER_AGENTS = ("kube-probe/1.29", "Go-http-client/1.1", "curl/8.5.0", "Prometheus/2.51.0",
               "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36")
WORDS = ("alpha", "beta", "gamma", "delta", "orders", "payments", "cart", "auth", "search", "billing")


def _random_value(placeholder: str, rng: random.Random, original: str = "") -> str:
    if placeholder in ("<TS>", "<NUM>") and original:
        # Same shape, fresh digits: the mask rules look at digit counts ("AssignedReds:893" is an <ID>,
        # "AssignedReds:0" a number) and separators. A number keeps its first digit, so it never turns
        # into an HTTP status code ("returned 7 items" -> "returned 503 items").
        digits = [m.start() for m in re.finditer("[0-9]", original)]
        keep = digits[0] if placeholder == "<NUM>" and len(digits) > 1 else -1
        return "".join(str(rng.randint(0, 9)) if c in "0123456789" and i != keep else c for i, c in enumerate(original))
    if placeholder == "<PATH>" and original.endswith("/"):
        return _random_value(placeholder, rng) + "/"
    if placeholder == "<URL>":
        return f"https://{rng.choice(WORDS)}.{rng.choice(('com', 'net', 'io'))}/{rng.choice(WORDS)}"
    if placeholder == "<EMAIL>":
        return f"{rng.choice(WORDS)}@{rng.choice(WORDS)}.com"
    if placeholder == "<IP>":
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        return f"{ip}:{rng.randint(1024, 65535)}" if rng.random() < 0.5 else ip
    if placeholder == "<UUID>":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if placeholder == "<HEX>":
        return "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice((4, 8, 12))))
    if placeholder == "<TS>":
        return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
    if placeholder == "<POD>":
        suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        return f"{rng.choice(WORDS)}-{rng.getrandbits(36):09x}-{suffix}"
    if placeholder == "<HOST>":
        return f"{rng.choice(WORDS)}.{rng.choice(WORDS)}.{rng.choice(('com', 'net', 'internal', 'svc'))}"
    if placeholder == "<PATH>":
        return "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4)))
    if placeholder == "<VAL>":  # a name: a hyphenated word pair, or an executable when it was one
        name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
        return name + ".exe" if original.lower().endswith(".exe") else name
    if placeholder == "<DEV>" and original:  # the same device family, new digits: sda1 -> sda7, eth0 -> eth3
        return re.sub(r"\d+", lambda m: str(rng.randint(0, 9)), original)
    if placeholder == "<IMAGE>":
        return (f"{rng.choice(('registry.example.com', 'ghcr.io', 'quay.io'))}/{rng.choice(WORDS)}/"
                f"{rng.choice(WORDS)}:v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}")
    if placeholder == "<UA>":
        return rng.choice(USER_AGENTS)
    if placeholder == "<MAC>":
        return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
    if placeholder == "<ID>":
        return f"{rng.choice('RJNM')}{rng.randint(0, 99):02d}-{rng.choice('RJNM')}{rng.randint(0, 9)}-{rng.randint(100, 999)}"
    return str(rng.choice((rng.randint(0, 9), rng.randint(10, 999), rng.randint(1000, 10**7))))


def resample_variables(line: str, rng: random.Random) -> str:
    """The same line with every maskable variable replaced by a fresh random value of its kind.

    Only the message is resampled where it stands verbatim in the line: envelope headers have a
    syntax of their own (klog's "file.go:123]"). Variables are found as the masker finds them (rules
    in order, HTTP status codes kept). Each is first replaced by a stand-in token that no later rule
    matches ("<", NUL, letters, ">": shaped like a mask placeholder), so a fresh value is never itself
    re-read as another variable (an IP's digits as numbers, a timestamp as an id); the stand-ins
    become the values at the end.
    """
    parsed = parse_line(line)
    if parsed.format != "plain" and parsed.message:
        # As written in the line: verbatim (CRI, klog) or JSON-escaped (docker, structured JSON).
        for encode in (lambda text: text, lambda text: json.dumps(text)[1:-1]):
            start = line.rfind(encode(parsed.message))
            if start >= 0:
                end = start + len(encode(parsed.message))
                return line[:start] + encode(_resample_text(parsed.message, rng)) + line[end:]
    return _resample_text(line, rng)


def _resample_text(line: str, rng: random.Random) -> str:
    values: list[str] = []

    def stand_in(value: str) -> str:
        values.append(value)
        return "<\x00" + "".join(chr(ord("A") + int(d)) for d in str(len(values) - 1)) + ">"

    out = HTTP_STATUS_RE.sub(lambda m: m.group(1) + m.group(2) + stand_in(m.group(3)), line)
    for placeholder, pattern in MASK_RULES:
        out = pattern.sub(lambda m, p=placeholder: stand_in(_random_value(p, rng, m.group(0))), out)
    return STAND_IN_RE.sub(lambda m: values[int("".join(str(ord(c) - ord("A")) for c in m.group(1)))], out)


def rewrap(line: str, rng: random.Random, level_hint: str | None = None) -> str:
    """The line's message in a randomly chosen envelope, keeping its level when one is known."""
    parsed = parse_line(line)
    return wrap(parsed.message, parsed.level or normalise_level(level_hint), rng)


def augment_line(line: str, rng: random.Random, level_hint: str | None = None, n_variants: int = 4) -> list[str]:
    """Up to n new lines from one example: resampled, rewrapped, or both."""
    variants = []
    for i in range(n_variants):
        new = resample_variables(line, rng) if i % 2 == 0 else line
        variants.append(rewrap(new, rng, level_hint) if i > 0 else new)
    return variants
