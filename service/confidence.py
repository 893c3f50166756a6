"""What a student's answer is worth, and the cascade's one decision: escalate or keep.

Four parts, numpy only, all read from the artifact (written by training/evaluation/calibration.py):

  calibration   a temperature T fitted at build time on whole programs the student never saw:
                softmax(logits / T) is a confidence that means what it says (of the answers given
                with 0.8, about 80% are right on software the student never saw).
  familiarity   the out-of-distribution (OOD) score, in [0, 1]: how unlike the training templates
                the line looks (service/familiarity.py, ranked against those unseen programs).
  evidence      the training template nearest to the line in the student's own embedding space
                (searched inside the ONNX graph), with its teacher label (neighbours.json): why it
                answered so.
  decision      escalate = calibrated confidence < τ (low_confidence) or OOD score > δ (max_ood).

An artifact without these files (built before them) loads: T = 1, no OOD score (None) and no
evidence, so only confidence decides; its confidence is then the raw, overconfident one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NEIGHBOURS_FILE = "neighbours.json"  # the graph's evidence rows: training template keys and teacher labels

LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, BOTH = "low_confidence", "out_of_distribution", "both"


def temperature_of(config: dict) -> float:
    """The artifact's fitted temperature (config.json "calibration"), 1.0 when it has none."""
    value = float((config.get("calibration") or {}).get("temperature", 1.0))
    if not value > 0:
        raise ValueError(f"calibration temperature must be > 0, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Neighbour:
    """The training template nearest to a line: why the student answered as it did."""
    key: str
    label: str
    similarity: float

    def to_record(self) -> dict:
        return {"template": self.key, "label": self.label, "similarity": round(self.similarity, 4)}


class EvidenceTable:
    """Row → (training template, teacher label) for the graph's nearest_row output. The search itself is
    in the graph (training/distill/student.py WithNearest): as an OOD signal this similarity is weak
    (service/familiarity.py says why), as an explanation it is what an SRE asks for."""

    def __init__(self, keys: list[str], labels: list[str]):
        if len(keys) != len(labels):
            raise ValueError(f"evidence table: {len(keys)} keys, {len(labels)} labels")
        self.keys = keys
        self.labels = labels

    @classmethod
    def load(cls, directory: Path) -> "EvidenceTable | None":
        """From an artifact directory; None when it has none (an older artifact)."""
        path = Path(directory) / NEIGHBOURS_FILE
        if not path.is_file():
            return None
        meta = json.loads(path.read_text())
        return cls(meta["keys"], meta["labels"])

    def write(self, directory: Path) -> Path:
        path = Path(directory) / NEIGHBOURS_FILE
        path.write_text(json.dumps(
            {"about": "service/confidence.py: the model's nearest_row output indexes these training templates",
             "keys": self.keys, "labels": self.labels}, ensure_ascii=False))
        return path

    def __len__(self) -> int:
        return len(self.keys)

    def neighbour(self, row: int, similarity: float) -> Neighbour:
        # int8 weights make the in-graph cosine a little noisy: 1.001 is 1.
        return Neighbour(self.keys[row], self.labels[row], min(1.0, max(-1.0, float(similarity))))


@dataclass(frozen=True)
class EscalationPolicy:
    """τ and δ: escalate when calibrated confidence < τ, or the OOD score > δ (δ ≥ 1: never on OOD)."""
    low_confidence: float = 0.5
    max_ood: float = 0.95

    def reason(self, confidence: float, ood: float | None) -> str | None:
        """Why the answer goes to the teacher (LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, BOTH), or None: keep it."""
        unsure = confidence < self.low_confidence
        unfamiliar = ood is not None and ood > self.max_ood
        if unsure and unfamiliar:
            return BOTH
        return LOW_CONFIDENCE if unsure else OUT_OF_DISTRIBUTION if unfamiliar else None
