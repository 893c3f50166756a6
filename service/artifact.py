"""Model artifacts: one directory holding everything a student needs at run time.

    model.onnx       int8-quantized ONNX graph: input_ids, attention_mask -> logits
    tokenizer.json   the `tokenizers` WordPiece tokenizer the student was trained with
    labels.json      the taxonomy (ordered labels + descriptions) = the logits' columns
    config.json      model version, max sequence length, training settings
    metrics.json     held-out evaluation
    model_card.md    what the model is, how it was trained, how well it does
    templates.json   optional: ids of the template keys the student was trained on (novelty.py);
                     artifacts without it load, with no novel-template signal
    char_ngrams.npz  optional: the out-of-distribution score's model (service/familiarity.py)
    neighbours.json  optional: the training templates the graph's nearest_row output indexes, with
                     their teacher labels: a result's `evidence` (service/confidence.py)
                     (artifacts without these have no OOD score and no evidence)
    SHA256SUMS       sha256 of every file above, in `sha256sum` format (`sha256sum -c` checks it)

Loading verifies every hash first: a tampered or half-copied artifact is refused, never served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from service.confidence import NEIGHBOURS_FILE, EvidenceTable
from service.familiarity import NGRAMS_FILE, CharNgramModel
from service.taxonomy import Taxonomy

CHECKSUM_FILE = "SHA256SUMS"
REQUIRED_FILES = ("model.onnx", "tokenizer.json", "labels.json", "config.json")
TEMPLATES_FILE = "templates.json"


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelArtifact:
    path: Path
    taxonomy: Taxonomy
    config: dict
    training_templates: frozenset[str] | None = None  # template ids (records.template_id); None: unknown
    familiarity: CharNgramModel | None = None  # the OOD score (familiarity.py); None: an artifact without one
    evidence: EvidenceTable | None = None  # `evidence` (confidence.py); None: an artifact without one

    @property
    def version(self) -> str:
        return str(self.config.get("model_version", "unknown"))

    @property
    def max_length(self) -> int:
        return int(self.config.get("max_length", 64))

    def file(self, name: str) -> Path:
        return self.path / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(directory: Path) -> dict[str, str]:
    """Hash every regular file in the directory (but the checksum file) into SHA256SUMS."""
    directory = Path(directory)
    sums = {p.name: sha256_file(p) for p in sorted(directory.iterdir())
            if p.is_file() and p.name != CHECKSUM_FILE}
    (directory / CHECKSUM_FILE).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def read_checksums(directory: Path) -> dict[str, str]:
    path = Path(directory) / CHECKSUM_FILE
    if not path.is_file():
        raise ArtifactError(f"{directory}: no {CHECKSUM_FILE}; refusing an unverifiable model")
    sums = {}
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name:
            raise ArtifactError(f"{path}:{line_no}: malformed checksum line {line!r}")
        sums[name] = digest
    return sums


def verify_artifact(directory: Path) -> dict[str, str]:
    """Every listed file present with its hash; returns the listing."""
    directory = Path(directory)
    sums = read_checksums(directory)
    missing = [name for name in REQUIRED_FILES if name not in sums]
    if missing:
        raise ArtifactError(f"{directory}: {CHECKSUM_FILE} does not cover {missing}")
    for name, expected in sums.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is listed in {CHECKSUM_FILE} but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(f"{directory}: sha256 mismatch for {name} "
                                f"(expected {expected[:12]}…, got {actual[:12]}…); refusing to load")
    return sums


def load_artifact(directory: str | Path) -> ModelArtifact:
    """Verify hashes, then read labels and config. Raises ArtifactError on any problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a model directory")
    sums = verify_artifact(directory)
    try:
        taxonomy = Taxonomy.from_dict(json.loads((directory / "labels.json").read_text()))
        config = json.loads((directory / "config.json").read_text())
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{directory}: unreadable labels.json/config.json: {exc}") from exc
    if not isinstance(config, dict):
        raise ArtifactError(f"{directory}: config.json must be a JSON object, not {type(config).__name__}")
    # Only a file the checksums cover is trusted; older artifacts simply have none.
    templates = read_training_templates(directory) if TEMPLATES_FILE in sums else None
    evidence = _read(EvidenceTable.load, directory, NEIGHBOURS_FILE) if NEIGHBOURS_FILE in sums else None
    familiarity = _read(CharNgramModel.load, directory, NGRAMS_FILE) if NGRAMS_FILE in sums else None
    return ModelArtifact(path=directory, taxonomy=taxonomy, config=config, training_templates=templates,
                         familiarity=familiarity, evidence=evidence)


def _read(load, directory: Path, what: str):
    """An optional part of the artifact, or ArtifactError saying which file is bad."""
    try:
        return load(directory)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{directory}: unreadable {what}: {exc}") from exc


def write_training_templates(directory: Path, template_ids) -> None:
    """The ids of the templates a student was trained on, sorted (reproducible bytes, stable hash)."""
    ids = sorted(set(template_ids))
    (Path(directory) / TEMPLATES_FILE).write_text(json.dumps(
        {"id": "service.records.template_id of the template key (results' template.id)", "count": len(ids),
         "ids": ids}, indent=0))


def read_training_templates(directory: Path) -> frozenset[str]:
    path = Path(directory) / TEMPLATES_FILE
    try:
        ids = json.loads(path.read_text()).get("ids")
    except (ValueError, OSError, AttributeError) as exc:
        raise ArtifactError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ArtifactError(f"{path}: expected {{\"ids\": [template id, ...]}}")
    return frozenset(ids)
