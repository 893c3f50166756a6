"""Multi-teacher: the combination rules against hand-computed values, missing members, weights,
each member cached under its own id in a real label store, the agreement report, and a build."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from service.label_store import LabelStore
from service.taxonomy import load_taxonomy
from tests.conftest import TINY_STUDENT
from training.teachers.multi import MultiTeacher, agreement_report, combine
from training.teachers.base import PROB_FLOOR, TeacherQuery
from training.teachers.recorded import RecordedTeacher

P = [0.6, 0.3, 0.1]
Q = [0.2, 0.2, 0.6]


def test_mean_equal_weights():
    # (0.6 + 0.2) / 2, (0.3 + 0.2) / 2, (0.1 + 0.6) / 2
    np.testing.assert_allclose(combine([P, Q], [1, 1], "mean"), [0.4, 0.25, 0.35], atol=1e-7)


def test_mean_weighted():
    # (3·P + 1·Q) / 4 = [2.0, 1.1, 0.9] / 4
    np.testing.assert_allclose(combine([P, Q], [3, 1], "mean"), [0.5, 0.275, 0.225], atol=1e-7)


def test_product_equal_weights_is_normalised_geometric_mean():
    roots = [math.sqrt(0.6 * 0.2), math.sqrt(0.3 * 0.2), math.sqrt(0.1 * 0.6)]  # 0.3464, 0.2449, 0.2449
    expected = [r / sum(roots) for r in roots]                               # 0.4142, 0.2929, 0.2929
    np.testing.assert_allclose(combine([P, Q], [1, 1], "product"), expected, atol=1e-6)
    assert expected[0] == pytest.approx(math.sqrt(2) - 1, abs=1e-9)


def test_product_weighted():
    # weights 3:1 → exponents 0.75 and 0.25
    raw = [0.6 ** 0.75 * 0.2 ** 0.25, 0.3 ** 0.75 * 0.2 ** 0.25, 0.1 ** 0.75 * 0.6 ** 0.25]
    np.testing.assert_allclose(combine([P, Q], [3, 1], "product"), [r / sum(raw) for r in raw], atol=1e-6)


def test_product_floors_zeros_instead_of_vetoing():
    out = combine([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [1, 1], "product")
    # both labels get sqrt(1 · floor); the third sqrt(floor · floor) = floor
    root = math.sqrt(PROB_FLOOR)
    np.testing.assert_allclose(out, np.array([root, root, PROB_FLOOR]) / (2 * root + PROB_FLOOR), rtol=1e-5)


@pytest.mark.parametrize("rule", ["mean", "product"])
def test_missing_member_leaves_the_others_renormalised(rule):
    np.testing.assert_allclose(combine([P, None], [1, 3], rule), P, atol=1e-6)
    np.testing.assert_allclose(combine([None, Q], [1, 3], rule), Q, atol=1e-6)
    assert combine([None, None], [1, 1], rule) is None


def test_disagreement_stays_as_soft_mass():
    out = combine([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05]], [1, 1], "mean")
    assert out[0] == pytest.approx(out[1]) and out[0] < 0.5  # neither label wins outright
    assert out.sum() == pytest.approx(1.0)


def test_bad_rule_and_shapes_are_errors():
    with pytest.raises(ValueError, match="combine rule"):
        combine([P], [1], "median")
    with pytest.raises(ValueError, match="2 distributions for 1 weights"):
        combine([P, Q], [1])


def test_agreement_report_by_hand():
    a = {"k1": np.array([0.9, 0.1]), "k2": np.array([0.2, 0.8]), "k3": np.array([0.6, 0.4])}
    b = {"k1": np.array([0.7, 0.3]), "k2": np.array([0.6, 0.4])}            # no answer for k3
    combined = {"k1": np.array([0.8, 0.2]), "k2": np.array([0.4, 0.6]), "k3": np.array([0.6, 0.4])}
    gold = {"k1": 0, "k2": 1, "k3": 1}
    report = agreement_report({"a": a, "b": b}, combined, gold)
    assert report["coverage"] == {"a": 3, "b": 2}
    assert report["pairwise"]["a"]["b"] == {"agreement": 0.5, "templates": 2}  # k1 same, k2 differs
    assert report["pairwise"]["b"]["a"] == report["pairwise"]["a"]["b"]
    assert report["with_combined"]["a"] == {"agreement": 1.0, "templates": 3}
    assert report["with_combined"]["b"] == {"agreement": 0.5, "templates": 2}
    assert report["accuracy_vs_gold"]["a"] == {"accuracy": round(2 / 3, 4), "templates": 3}  # k3 wrong
    assert report["accuracy_vs_gold"]["b"] == {"accuracy": 0.5, "templates": 2}
    assert report["accuracy_vs_gold"]["combined"] == {"accuracy": round(2 / 3, 4), "templates": 3}


# ---- through a real label store ---------------------------------------------------------

def recorded(taxonomy, name: str, answers: dict[str, dict]) -> RecordedTeacher:
    rows = [{"system": "sys", "event_id": event, "label": "", "probs": __import__("json").dumps(probs)}
            for event, probs in answers.items()]
    return RecordedTeacher(taxonomy, rows, name=name)


def test_members_labelled_through_the_store_each_under_its_own_id(tmp_path):
    taxonomy = load_taxonomy()
    first = recorded(taxonomy, "first", {"E1": {"network": 0.8, "normal": 0.2}, "E2": {"database": 1.0}})
    second = recorded(taxonomy, "second", {"E1": {"network": 0.4, "normal": 0.6}})  # cannot label E2
    queries = [TeacherQuery(key=f"template {e}", example="", meta={"system": "sys", "event_id": e})
               for e in ("E1", "E2", "E3")]
    store = LabelStore(tmp_path / "labels.sqlite")
    teacher = MultiTeacher({"first": first, "second": second}, store, taxonomy.labels, weights=[1, 3])
    out = teacher.distributions(queries)

    network, normal, database = (taxonomy.index(x) for x in ("network", "normal", "database"))
    assert out[0][network] == pytest.approx((0.8 + 3 * 0.4) / 4, abs=1e-6)
    assert out[0][normal] == pytest.approx((0.2 + 3 * 0.6) / 4, abs=1e-6)
    assert out[1][database] == pytest.approx(1.0)   # only the first member answered E2
    assert out[2] is None                           # nobody answered E3
    assert store.count(first.teacher_id) == 2 and store.count(second.teacher_id) == 1

    report = teacher.report(queries, {q.key: p for q, p in zip(queries, out) if p is not None},
                            gold={"template E1": normal})
    assert report["members"] == {"first": first.teacher_id, "second": second.teacher_id}
    assert report["weights"] == {"first": 1.0, "second": 3.0}
    assert report["pairwise"]["first"]["second"] == {"agreement": 0.0, "templates": 1}
    assert report["accuracy_vs_gold"]["second"]["accuracy"] == 1.0
    assert report["accuracy_vs_gold"]["first"]["accuracy"] == 0.0
    store.close()


def test_teacher_id_depends_on_members_weights_and_rule(tmp_path):
    taxonomy = load_taxonomy()
    a = recorded(taxonomy, "a", {"E1": {"network": 1.0}})
    b = recorded(taxonomy, "b", {"E1": {"normal": 1.0}})
    store = LabelStore(tmp_path / "labels.sqlite")
    ids = {MultiTeacher({"a": a, "b": b}, store, taxonomy.labels, w, rule).teacher_id
           for w, rule in [([1, 1], "mean"), ([1, 2], "mean"), ([1, 1], "product")]}
    assert len(ids) == 3
    with pytest.raises(ValueError, match="weights"):
        MultiTeacher({"a": a, "b": b}, store, taxonomy.labels, [1])
    with pytest.raises(ValueError, match="weights"):
        MultiTeacher({"a": a, "b": b}, store, taxonomy.labels, [0, 0])
    store.close()


def test_build_with_multi_teacher_reports_agreement(tmp_path):
    from training import pipeline

    if not (Path(pipeline.SHARED_DATA) / "loghub").is_dir():
        pytest.skip("needs ../shared/data/loghub")
    metrics = pipeline.build_model(pipeline.BuildConfig(
        out_dir=str(tmp_path / "model"), label_store=str(tmp_path / "ls.sqlite"), max_train_templates=40,
        student=dict(TINY_STUDENT), train={"epochs": 1}, augment_variants=0, seed_lines_per_template=2,
        teacher="multi", teachers=["recorded", "embedding"], teacher_weights=[0.7, 0.3], progress=False))
    report = metrics["teachers"]
    assert report["weights"] == {"recorded": 0.7, "embedding": 0.3}
    # The recorded member is where the gold comes from: it agrees with gold wherever it answered.
    assert report["accuracy_vs_gold"]["recorded"]["accuracy"] == 1.0
    assert 0.0 <= report["accuracy_vs_gold"]["embedding"]["accuracy"] < 1.0
    assert report["coverage"]["embedding"] >= report["coverage"]["recorded"] > 0
    store = LabelStore(tmp_path / "ls.sqlite")
    for member_id in report["members"].values():
        assert store.count(member_id) > 0  # each member cached under its own id
    store.close()
    with pytest.raises(ValueError, match="must be distinct"):
        pipeline.build_model(pipeline.BuildConfig(out_dir=str(tmp_path / "x"), teacher="multi",
                                                  teachers=["multi"], label_store=str(tmp_path / "ls.sqlite"),
                                                  progress=False))
