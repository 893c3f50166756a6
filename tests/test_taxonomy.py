"""The label taxonomy: default file, shared copy, custom files, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from service.taxonomy import DEFAULT_TAXONOMY, Taxonomy, TaxonomyError, load_taxonomy

SHARED_TAXONOMY = Path(__file__).resolve().parents[2] / "shared/data/taxonomy.yaml"
EXPECTED_LABELS = ("normal", "network", "security", "resource", "storage", "database", "scheduling",
                   "image", "crash", "probe", "config", "hardware", "app_error")


def test_default_taxonomy():
    tax = load_taxonomy()
    assert len(tax.labels) == 13
    assert tax.labels == EXPECTED_LABELS
    assert tax.labels[0] == "normal"
    assert tax.version == 1
    assert list(tax.descriptions) == list(tax.labels)
    assert all(tax.descriptions[label] for label in tax.labels)


def test_default_order_is_the_file_order():
    raw = yaml.safe_load(DEFAULT_TAXONOMY.read_text())
    assert load_taxonomy().labels == tuple(raw["labels"])


@pytest.mark.skipif(not SHARED_TAXONOMY.is_file(), reason=f"{SHARED_TAXONOMY} not present")
def test_default_equals_shared_taxonomy():
    assert load_taxonomy() == load_taxonomy(SHARED_TAXONOMY)


def test_index():
    tax = load_taxonomy()
    assert tax.index("normal") == 0
    assert tax.index("app_error") == 12
    with pytest.raises(TaxonomyError, match="nonexistent"):
        tax.index("nonexistent")


def test_to_dict_round_trip():
    tax = load_taxonomy()
    assert Taxonomy.from_dict(tax.to_dict()) == tax


@pytest.mark.parametrize("as_str", [False, True])
def test_custom_taxonomy_file(tmp_path, as_str):
    path = tmp_path / "tax.yaml"
    path.write_text("version: 3\nlabels:\n  zeta: last letter\n  normal: fine\n  alpha: '  padded  '\n")
    tax = load_taxonomy(str(path) if as_str else path)
    assert tax.version == 3
    assert tax.labels == ("zeta", "normal", "alpha")  # file order, not sorted
    assert tax.descriptions == {"zeta": "last letter", "normal": "fine", "alpha": "padded"}


def test_version_defaults_to_1():
    assert Taxonomy.from_dict({"labels": {"normal": "ok"}}).version == 1


@pytest.mark.parametrize("data", [
    {"version": 1, "labels": {"network": "x", "crash": "y"}},   # no 'normal'
    {"version": 1, "labels": {}},                                # empty
    {"version": 1, "labels": None},
    {"version": 1, "labels": ["normal", "crash"]},               # a list, not a mapping
    {"version": 1},
    ["normal"],
    None,
])
def test_invalid_taxonomies(data):
    with pytest.raises(TaxonomyError):
        Taxonomy.from_dict(data)


@pytest.mark.parametrize("text", [
    "version: 1\nlabels:\n  network: x\n",
    "version: 1\nlabels: {}\n",
    "version: 1\nlabels:\n",
    "",
])
def test_invalid_taxonomy_files(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError):
        load_taxonomy(path)


def test_taxonomy_error_is_a_value_error():
    assert issubclass(TaxonomyError, ValueError)
