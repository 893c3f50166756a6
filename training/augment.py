"""Augmentation that needs no teacher call: new lines that keep their source template's label.

Two moves, both on real example lines of a template:
  resample   put fresh values in the variables the masker knows (IPs, numbers, UUIDs, pods, ...);
  rewrap     send the message through another log envelope (CRI, docker, JSON, klog, plain).
Every new line goes through the runtime's own parse → mask path, so what the student learns
from is exactly what it will see; lines that collapse onto an existing key add nothing and are
dropped by the caller's dedup.
"""

from __future__ import annotations

import random
import uuid

from service.masking import MASK_RULES
from service.parsing import normalise_level, parse_line
from training.k8s_corpus import wrap

WORDS = ("alpha", "beta", "gamma", "delta", "orders", "payments", "cart", "auth", "search", "billing")


def _random_value(placeholder: str, rng: random.Random) -> str:
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
    if placeholder == "<ID>":
        return f"{rng.choice('RJNM')}{rng.randint(0, 99):02d}-{rng.choice('RJNM')}{rng.randint(0, 9)}-{rng.randint(100, 999)}"
    return str(rng.choice((rng.randint(0, 9), rng.randint(10, 999), rng.randint(1000, 10**7))))


def resample_variables(line: str, rng: random.Random) -> str:
    """The same line with every maskable variable replaced by a fresh random value of its kind."""
    out = line
    for placeholder, pattern in MASK_RULES:
        out = pattern.sub(lambda _m, p=placeholder: _random_value(p, rng), out)
    return out


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
