"""Template keys for lines that differ from a line already masked only in the values of their numbers.

A cluster's stream repeats templates but not variables: "took 137 ms", "took 802 ms". Masking such a
line costs tens of µs of regexes (service/masking.py), although its key is the one the earlier line
got. So a line's *shape* (its ASCII digits turned to 0, lengths kept) is looked up first; on a hit the
key is the earlier line's, and masking is skipped.

That is exact only where masking cannot tell digits apart by value. It reads digits as `\\d`, `[0-9]`,
`[0-9a-f]` or `\\w`, save in a few rules, whose digits the shape's signature keeps:
  - by class (0, 1, 2-9): a digit before "x" ("0x1f" is hex, "1x1f" not), and the digits of a
    five-character segment after "-" (a pod suffix has digits 2-9 only: "web-x2k9z", "web-24873" are
    pods, "web-x1k9z", "web-10243" not);
  - verbatim: "x86", "sha256", "md" + digits (md5 is not a device), "urllib3", digits after "*" (a
    Windows program's " *64") and after "<" (an HTTP status, marked "<503>" before the shape is taken,
    as mask_message does first).
A key remembered for a shape must not hold a digit of the line, or it would be wrong for the next line
of that shape. A key that kept digits of a token of letters and digits ("v1beta1") is remembered by
those tokens' exact digits; one that kept any other digit is not remembered.
tests/test_shape_memo.py checks this on the whole corpus, every digit redrawn within what is claimed.
"""

from __future__ import annotations

import re

from service.masking import key_of_marked, mark_http_status

ZERO_DIGITS = str.maketrans("123456789", "000000000")
DIGIT_CLASSES = str.maketrans("3456789", "2222222")  # 0, 1 and 2-9
# (the segment first: "-3xk0p" is one site, its digit before "x" included)
CLASS_SITES_RE = re.compile(r"(?<=-)(?=[a-z]*[0-9])[a-z0-9]{5}(?![a-z0-9])|[0-9](?=x)")
VERBATIM_RE = re.compile(r"x86|sha256|md[0-9]+|urllib3|[*<][0-9]+")
MIXED_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*?(?:[A-Za-z][0-9]|[0-9][A-Za-z]))[A-Za-z0-9]+")
ANY_DIGIT_RE = re.compile(r"\d")
SEPARATOR = "\x00"


class ShapeMemo:
    """(message, level) -> template key, through the message's shape. Bounded: the oldest shape is
    forgotten first (a dict keeps insertion order)."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._keys: dict[tuple, str] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._keys)

    def key_of(self, message: str, level: str | None) -> str:
        text = mark_http_status(message)
        zeroed = text.translate(ZERO_DIGITS)
        classes = SEPARATOR.join(CLASS_SITES_RE.findall(text)).translate(DIGIT_CLASSES)
        verbatim = tuple(VERBATIM_RE.findall(text))
        by_class = (zeroed, classes, verbatim, level)
        key = self._keys.get(by_class)
        if key is None:
            # (the leading separator keeps the two kinds of entry apart)
            by_digits = (zeroed, SEPARATOR.join(("", *MIXED_TOKEN_RE.findall(text), classes)), verbatim, level)
            key = self._keys.get(by_digits)
            if key is None:
                self.misses += 1
                key = key_of_marked(text, level)
                self._remember(key, by_class, by_digits)
                return key
        self.hits += 1
        return key

    def _remember(self, key: str, by_class: tuple, by_digits: tuple) -> None:
        if self.max_entries <= 0:
            return
        if ANY_DIGIT_RE.search(VERBATIM_RE.sub("", key)) is None:
            shape = by_class  # no digit of this line in the key: any line of this shape gets it
        elif ANY_DIGIT_RE.search(VERBATIM_RE.sub("", MIXED_TOKEN_RE.sub("", key))) is None:
            shape = by_digits  # it kept digits of a token: only lines with those digits get it
        else:
            return
        if len(self._keys) >= self.max_entries:
            del self._keys[next(iter(self._keys))]
        self._keys[shape] = key
