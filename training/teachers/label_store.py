"""Teacher labels through the store: ask the store first, the teacher only for what it lacks.

The store itself (SQLite, keyed by (teacher id, template key)) is service/label_store.py, so that
`serve` can write teacher answers from the feedback topic without importing training/.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from service.label_store import SCHEMA, LabelStore  # noqa: F401 (re-exported: the store lives in service/)
from training.teachers.base import Teacher, TeacherQuery


@dataclass
class LabelingStats:
    asked: int = 0      # distinct templates requested
    from_store: int = 0  # answered from disk, no teacher call
    labelled: int = 0   # newly answered by the teacher
    failed: int = 0     # the teacher could not label them (left out)


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
        # Use what the store keeps (rounded), not the teacher's raw floats: a re-run served from the
        # store must train exactly the same model as this first run.
        answers.update(store.get_many(teacher.teacher_id, list(new), labels))
    return answers, stats
