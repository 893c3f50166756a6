"""The label taxonomy: an ordered list of labels, each with a description.

The order is the order of the model's output columns, so a model artifact stores the
taxonomy it was trained with and the runtime reads labels from the artifact, not from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

DEFAULT_TAXONOMY = resources.files("service") / "data" / "taxonomy.yaml"


class TaxonomyError(ValueError):
    pass


@dataclass(frozen=True)
class Taxonomy:
    version: int
    labels: tuple[str, ...]
    descriptions: dict[str, str]

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise TaxonomyError(f"label {label!r} is not in the taxonomy {list(self.labels)}") from None

    def to_dict(self) -> dict:
        return {"version": self.version, "labels": dict(self.descriptions)}

    @classmethod
    def from_dict(cls, data: dict) -> "Taxonomy":
        if not isinstance(data, dict) or not isinstance(data.get("labels"), dict) or not data["labels"]:
            raise TaxonomyError("a taxonomy needs a non-empty 'labels' mapping of label -> description")
        descriptions = {str(k): str(v).strip() for k, v in data["labels"].items()}
        if "normal" not in descriptions:
            raise TaxonomyError("a taxonomy must contain the label 'normal' (the no-problem class)")
        return cls(version=int(data.get("version", 1)), labels=tuple(descriptions), descriptions=descriptions)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load a taxonomy YAML file; the packaged default when no path is given."""
    text = Path(path).read_text() if path else DEFAULT_TAXONOMY.read_text()
    return Taxonomy.from_dict(yaml.safe_load(text))
