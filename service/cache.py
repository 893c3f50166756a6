"""LRU template cache: template key -> class probabilities.

Log streams are dominated by a few templates, so most lines are answered here without
running the model. Entries are read-only arrays so a caller cannot corrupt a cached answer.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class TemplateCache:
    def __init__(self, max_entries: int = 50_000):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        probs = self._entries.get(key)
        if probs is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return probs

    def put(self, key: str, probs: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        probs = np.array(probs, dtype=np.float32, copy=True)
        probs.setflags(write=False)
        self._entries[key] = probs
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
