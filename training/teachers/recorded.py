"""A recorded teacher: soft labels a large LLM produced earlier, replayed from a CSV.

The CSV has the columns of ../shared/data/loghub_labels.csv:
    system,event_id,occurrences,label,probs,template
with `probs` a JSON object {label: p}. A query is matched by its meta (system, event_id).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from service.taxonomy import Taxonomy
from training.teachers.base import TeacherQuery


class RecordedTeacher:
    def __init__(self, taxonomy: Taxonomy, rows: list[dict], name: str = "recorded"):
        self.taxonomy = taxonomy
        self.table: dict[tuple[str, str], np.ndarray] = {}
        for row in rows:
            self.table[(row["system"], row["event_id"])] = self._to_vector(row)
        fingerprint = hashlib.sha256(json.dumps(sorted((k, v.tolist()) for k, v in self.table.items()))
                                     .encode()).hexdigest()[:12]
        self.teacher_id = f"{name}:{fingerprint}"

    @classmethod
    def from_csv(cls, taxonomy: Taxonomy, *paths: str | Path, name: str = "recorded") -> "RecordedTeacher":
        rows = []
        for path in paths:
            with open(path, newline="", encoding="utf-8") as f:
                rows.extend(csv.DictReader(f))
        return cls(taxonomy, rows, name=name)

    def _to_vector(self, row: dict) -> np.ndarray:
        probs = json.loads(row["probs"]) if row.get("probs") else {row["label"]: 1.0}
        vector = np.zeros(len(self.taxonomy.labels), dtype=np.float32)
        for label, p in probs.items():
            vector[self.taxonomy.index(label)] = float(p)
        if vector.sum() <= 0:
            raise ValueError(f"recorded label for {row.get('system')}:{row.get('event_id')} has no mass")
        return vector / vector.sum()

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        return [self.table.get((q.meta.get("system"), q.meta.get("event_id"))) for q in queries]
