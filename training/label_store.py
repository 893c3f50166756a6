"""On-disk store of teacher answers, keyed by (teacher id, template key).

A teacher is slow or costs money; re-runs and retraining ask the store first and only send the
teacher what it has never labelled. SQLite: one file, safe to reopen, no server.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from training.teachers.base import Teacher, TeacherQuery

SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    teacher_id TEXT NOT NULL,
    template   TEXT NOT NULL,
    probs      TEXT NOT NULL,
    labels     TEXT NOT NULL,
    created    TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (teacher_id, template)
)
"""


@dataclass
class LabelingStats:
    asked: int = 0      # distinct templates requested
    from_store: int = 0  # answered from disk, no teacher call
    labelled: int = 0   # newly answered by the teacher
    failed: int = 0     # the teacher could not label them (left out)


class LabelStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute(SCHEMA)

    def get_many(self, teacher_id: str, keys: list[str], labels: tuple[str, ...]) -> dict[str, np.ndarray]:
        found = {}
        for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[start: start + 500]
            rows = self.db.execute(
                f"SELECT template, probs, labels FROM labels WHERE teacher_id = ? "
                f"AND template IN ({','.join('?' * len(chunk))})", [teacher_id, *chunk])
            for template, probs, stored_labels in rows:
                if tuple(json.loads(stored_labels)) == tuple(labels):  # another taxonomy: relabel
                    found[template] = np.asarray(json.loads(probs), dtype=np.float32)
        return found

    def put_many(self, teacher_id: str, answers: dict[str, np.ndarray], labels: tuple[str, ...]) -> None:
        labels_json = json.dumps(list(labels))
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO labels (teacher_id, template, probs, labels) VALUES (?, ?, ?, ?)",
                [(teacher_id, key, json.dumps([round(float(p), 6) for p in probs]), labels_json)
                 for key, probs in answers.items()])

    def count(self, teacher_id: str | None = None) -> int:
        if teacher_id is None:
            return self.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM labels WHERE teacher_id = ?", [teacher_id]).fetchone()[0]

    def close(self) -> None:
        self.db.close()


def label_templates(teacher: Teacher, store: LabelStore, queries: list[TeacherQuery],
                    labels: tuple[str, ...], batch_size: int = 64,
                    progress: bool = False) -> tuple[dict[str, np.ndarray], LabelingStats]:
    """Distributions for every query key: from the store where present, else from the teacher."""
    unique = list({q.key: q for q in queries}.values())
    stats = LabelingStats(asked=len(unique))
    answers = store.get_many(teacher.teacher_id, [q.key for q in unique], labels)
    stats.from_store = len(answers)
    todo = [q for q in unique if q.key not in answers]
    for start in tqdm(range(0, len(todo), batch_size), desc=f"label ({teacher.teacher_id[:24]})", unit="batch",
                      disable=not progress or not todo):
        batch = todo[start: start + batch_size]
        new = {q.key: p for q, p in zip(batch, teacher.distributions(batch)) if p is not None}
        stats.failed += len(batch) - len(new)
        stats.labelled += len(new)
        store.put_many(teacher.teacher_id, new, labels)
        answers.update(new)
    return answers, stats
