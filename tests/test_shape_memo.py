"""service/shape_memo.py: a line that differs from an earlier one only in its numbers gets that line's
key without masking, and exactly the key masking would give it."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from service.masking import key_of
from service.parsing import parse_line
from service.shape_memo import CLASS_SITES_RE, VERBATIM_RE, ShapeMemo

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Each pair: same shape, digits that masking reads by value; the keys differ (checked below).
VALUE_PAIRS = [
    ("GET /api returned status 503 in 20 ms", "GET /api returned status 603 in 20 ms"),  # HTTP status
    ("deleted pod web-24873 from node", "deleted pod web-10243 from node"),  # pod suffix: digits 2-9 only
    ("Killing web-x2k9z after probe", "Killing web-x1k9z after probe"),
    ("arch x86-64 chosen", "arch x87-64 chosen"),
    ("wrote 0x1f3a to register", "wrote 1x1f3a to register"),
    ("resync of md5 started", "resync of md4 started"),
    ("proxy.exe *64 - open through proxy", "proxy.exe *65 - open through proxy"),
]


@pytest.mark.parametrize("first, second", VALUE_PAIRS)
def test_digits_masking_reads_by_value_are_not_taken_for_one_shape(first, second):
    assert key_of(first) != key_of(second)
    memo = ShapeMemo(100)
    assert memo.key_of(first, None) == key_of(first)
    assert memo.key_of(second, None) == key_of(second)


def test_numbers_redrawn_hit_the_memo():
    memo = ShapeMemo(100)
    first = memo.key_of("GET /api/v1/pods took 137 ms from 10.0.0.7:5432", "info")
    again = memo.key_of("GET /api/v1/pods took 802 ms from 10.2.9.1:6543", "info")
    assert again == first == key_of("GET /api/v1/pods took 802 ms from 10.2.9.1:6543", "info")
    assert (memo.hits, memo.misses) == (1, 1)


def test_bounded_oldest_shape_forgotten_first():
    memo = ShapeMemo(2)
    for n in (1, 22, 333):  # three shapes (lengths differ)
        memo.key_of(f"retry {n}", None)
    assert len(memo) == 2
    memo.key_of("retry 9", None)  # the first shape: forgotten, masked again
    assert memo.misses == 4


def corpus_messages() -> list[tuple[str, str | None]]:
    rows = list(csv.DictReader(open(DATA / "k8s_labels.csv", encoding="utf-8")))
    lines = [row["line"] for row in rows]
    for path in sorted((DATA / "loghub").glob("*/*_2k.log")):
        lines += path.read_text(encoding="utf-8", errors="replace").splitlines()[:400]
    parsed = [parse_line(line) for line in lines]
    return [(p.message, p.level) for p in parsed]


def redraw(message: str, rng: random.Random) -> str:
    """Every digit redrawn within what the memo claims masking cannot tell apart: freely, but within its
    class (0, 1, 2-9) at the class sites, and never where compared verbatim."""
    verbatim, by_class = set(), set()
    for m in VERBATIM_RE.finditer(message):
        verbatim.update(range(*m.span()))
    for m in CLASS_SITES_RE.finditer(message):
        by_class.update(range(*m.span()))
    out = []
    for i, c in enumerate(message):
        if c not in "0123456789" or i in verbatim:
            out.append(c)
        elif i in by_class:
            out.append(c if c in "01" else str(rng.randrange(2, 10)))
        else:
            out.append(str(rng.randrange(10)))
    return "".join(out)


def test_on_the_whole_corpus_the_memo_gives_exactly_the_masked_key():
    messages = corpus_messages()
    assert len(messages) > 8_000
    rng, memo, wrong = random.Random(7), ShapeMemo(100_000), []
    for message, level in messages:
        memo.key_of(message, level)
        for _ in range(2):
            variant = redraw(message, rng)
            if memo.key_of(variant, level) != key_of(variant, level):
                wrong.append(variant)
    assert not wrong, f"{len(wrong)} lines given another line's key, e.g. {wrong[:5]}"
    assert memo.hits > len(messages), "the memo must answer most redrawn lines, or this tests nothing"
