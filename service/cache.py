"""LRU template cache: template key -> the model's answer for it (classifier.Verdict, or any value).

Log streams are dominated by a few templates, so most lines are answered here without
running the model. Arrays are stored as read-only copies so a caller cannot corrupt a cached
answer; other values must be immutable already (Verdict is frozen, its probs read-only).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class TemplateCache:
    def __init__(self, max_entries: int = 50_000):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str):
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value) -> None:
        if self.max_entries == 0:
            return
        if isinstance(value, (np.ndarray, list)):  # probabilities: a read-only float32 copy
            value = np.array(value, dtype=np.float32, copy=True)
            value.setflags(write=False)
        self._entries[key] = value
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
