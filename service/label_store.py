"""On-disk store of teacher answers, keyed by (teacher id, template key).

A teacher is slow or costs money; re-runs and retraining ask the store first and only send the
teacher what it has never labelled. SQLite: one file, safe to reopen, no server.

It lives in service/ because `serve` writes to it too (teacher answers from the feedback topic,
service/feedback.py) and the runtime must not import training/; training/teachers/label_store.py
re-exports it next to the offline labelling loop.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

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
