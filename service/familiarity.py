"""Does this look like the logs the student learnt from? The out-of-distribution (OOD) score.

A character 4-gram language model of the training templates (what the student was trained on,
after masking) scores each template key by its mean surprise, −log P(char | 3 chars before),
interpolated down to single characters. Log messages share a lot of surface structure ("failed to",
"=<NUM>", "] ", "error:"); prose, code, SQL, markup, base64 and other scripts do not, and score
high. A template with no word left after masking ("<HEX>", "<NUM>,<NUM>") gives the student
nothing to read and scores 1.0.

The raw surprise means nothing from one model to the next, so the score is a rank: the share of
the calibration programs' templates (real logs from software the student never saw) that are less
surprising. 0.5: as familiar as typical unseen software; 1.0: stranger than all of it.

Why characters and not the student's own embedding: measured on the calibration split, a
nearest-training-template distance in the student's pooled space flags 6% of non-log text at a
5% false-alarm rate (the classifier maps anything onto what it knows); this model flags 90%.

Counts live in one hashed table (n-grams of every order, 2^21 uint16 cells, ~4 MB), so scoring a
batch is a few numpy operations: no Python loop per character.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

NGRAMS_FILE = "char_ngrams.npz"
ORDER = 4
TABLE_BITS = 21
SMOOTHING = 2.0        # weight of the lower order in each interpolation step
ALPHABET = 300         # add-one smoothing of single characters over roughly this many symbols
START, END = 0x02, 0x03  # padding characters (never in a template key: control characters are masked out)
PLACEHOLDER = re.compile(r"<[A-Z0-9_]+>")
WORD = re.compile(r"[^\W\d_]{2,}")  # two letters of any script


def has_words(key: str) -> bool:
    """Whether anything but placeholders, digits and punctuation is left to read."""
    return WORD.search(PLACEHOLDER.sub(" ", key)) is not None


def _codepoints(text: str) -> np.ndarray:
    """ORDER start characters, the text, an end character: positions ≥ ORDER are scored, and every
    scored n-gram's context (ending at ≥ ORDER-1) is itself counted."""
    padded = chr(START) * ORDER + text + chr(END)
    return np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def _hashes(chars: np.ndarray, order: int, first: int) -> np.ndarray:
    """Table cell of the n-gram of `order` ending at each position from `first` on."""
    h = np.full(len(chars) - first, (order * 0x9E3779B97F4A7C15) % 2 ** 64, dtype=np.uint64)  # one seed per order
    for back in range(order):  # the n-gram's characters, newest first
        h = (h ^ chars[first - back: len(chars) - back]) * np.uint64(0x100000001B3)  # FNV-style, wraps mod 2^64
    h ^= h >> np.uint64(29)
    return (h & np.uint64((1 << TABLE_BITS) - 1)).astype(np.int64)


class CharNgramModel:
    def __init__(self, table: np.ndarray, total: int, reference: np.ndarray):
        self.table = np.asarray(table, dtype=np.uint16)  # counts (4 MB; lookups come out as floats below)
        self.total = float(total)              # characters counted (single-character denominator)
        self.reference = np.sort(np.asarray(reference, dtype=np.float64))

    # ---- building (training/evaluation/calibration.py) ---------------------------------------

    @classmethod
    def fit(cls, texts: list[str]) -> "CharNgramModel":
        """Counts of every 1..ORDER-gram of the texts; the reference is set by `with_reference`."""
        table = np.zeros(1 << TABLE_BITS, dtype=np.int64)
        total = 0
        for text in texts:
            chars = _codepoints(text)
            total += len(chars) - ORDER
            for order in range(1, ORDER + 1):
                np.add.at(table, _hashes(chars, order, ORDER - 1), 1)
        return cls(np.minimum(table, np.iinfo(np.uint16).max), total, np.zeros(1))

    def with_reference(self, calibration_keys: list[str]) -> "CharNgramModel":
        """Rank future scores against these templates' surprise (real logs, never trained on)."""
        self.reference = np.sort(self.surprise(calibration_keys))
        return self

    def write(self, directory: Path) -> Path:
        path = Path(directory) / NGRAMS_FILE
        np.savez_compressed(path, table=self.table, total=np.array(self.total),
                            reference=self.reference.astype(np.float32), order=np.array(ORDER),
                            table_bits=np.array(TABLE_BITS))
        return path

    @classmethod
    def load(cls, directory: Path) -> "CharNgramModel | None":
        path = Path(directory) / NGRAMS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            if int(data["order"]) != ORDER or int(data["table_bits"]) != TABLE_BITS:
                raise ValueError(f"{path}: order {int(data['order'])}, {int(data['table_bits'])} bits; this runtime "
                                 f"reads order {ORDER}, {TABLE_BITS} bits")
            return cls(data["table"], int(data["total"]), data["reference"])

    # ---- scoring (service/classifier.py) -----------------------------------------------------

    def surprise(self, keys: list[str]) -> np.ndarray:
        """Mean −log P(char | context) per key, the model interpolated from 1 to ORDER characters.
        The batch is scored as one array (keys back to back, each with its own padding): positions
        whose n-gram would reach into the previous key are computed and dropped."""
        if not keys:
            return np.zeros(0)
        pieces = [_codepoints(key) for key in keys]
        lengths = np.array([len(piece) for piece in pieces])
        chars = np.concatenate(pieces)
        owner = np.repeat(np.arange(len(keys)), lengths)
        local = np.arange(len(chars)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        p = (self.table[_hashes(chars, 1, ORDER)] + 1.0) / (self.total + ALPHABET)
        for order in range(2, ORDER + 1):
            ngram = self.table[_hashes(chars, order, ORDER)].astype(np.float64)
            context = self.table[_hashes(chars[:-1], order - 1, ORDER - 1)]  # the n-gram minus its last char
            p = (ngram + SMOOTHING * p) / (context + SMOOTHING)
        scored = local[ORDER:] >= ORDER  # every key scores ≥ 1 position (its end character)
        surprise = -np.log(np.minimum(p, 1.0))[scored]  # ≤ 1 but for hash collisions
        who = owner[ORDER:][scored]
        return np.bincount(who, weights=surprise, minlength=len(keys)) / np.bincount(who, minlength=len(keys))

    def ood_score(self, keys: list[str]) -> np.ndarray:
        """Share of the reference templates less surprising than each key; 1.0 for a key with no words."""
        ranks = np.searchsorted(self.reference, self.surprise(keys), side="left") / len(self.reference)
        return np.where([has_words(key) for key in keys], ranks, 1.0)
