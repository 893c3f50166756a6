"""Held-out splits: what the student is scored on must be something it never saw.

Two splits, both by whole source groups (a Loghub EventId, a seed template, a k8s_labels row):
  template split   a seeded, label-stratified share of the groups: templates never seen, from
                   programs that were (`split_by_group`; `split_stable` for retraining);
  component split  every template of a few whole programs (all etcd rows, all CoreDNS rows...):
                   software never seen at all, which is what a user meets first (`component_split`).
The component split is taken first; the template split is drawn from what remains.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import numpy as np

from service.taxonomy import Taxonomy
from training.corpus.readers import Template
from training.teachers.base import TeacherQuery
from training.teachers.recorded import RecordedTeacher


def gold_index(template: Template, gold_teacher: RecordedTeacher, taxonomy: Taxonomy) -> int | None:
    """The template's gold label index: a hand label in meta, else the recorded teacher's top label."""
    if "gold" in template.meta:
        return taxonomy.index(template.meta["gold"])
    recorded = gold_teacher.distributions([TeacherQuery(template.key, "", template.meta)])[0]
    return None if recorded is None else int(np.argmax(recorded))


def component_split(templates: list[Template], gold_teacher: RecordedTeacher, fraction: float,
                    min_per_label: int, max_component_share: float, seed: int) -> list[str]:
    """A fixed, seeded choice of whole components to hold out, covering every label.

    Components (meta "component": the program that prints the line) are taken in a seeded order,
    skipping any larger than `max_component_share` of the component-tagged templates (holding out
    all of kubelet would leave the student without the commonest program), until every label
    has `min_per_label` held-out templates and the held-out share reaches `fraction`. Returns the
    chosen components, sorted; templates without a component (Loghub, seed) are never chosen.
    """
    taxonomy = gold_teacher.taxonomy
    labels_of: dict[str, Counter] = {}
    for t in templates:
        component = t.meta.get("component")
        label = gold_index(t, gold_teacher, taxonomy) if component else None
        if label is not None:
            labels_of.setdefault(component, Counter())[label] += 1
    total = sum(sum(c.values()) for c in labels_of.values())
    if not total or fraction <= 0:
        return []
    order = sorted(labels_of)
    random.Random(seed).shuffle(order)
    chosen, held = [], Counter()

    def done() -> bool:
        return (sum(held.values()) >= fraction * total
                and all(held[i] >= min_per_label for i in range(len(taxonomy.labels))))

    for component in order:
        if done():
            break
        counts = labels_of[component]
        if sum(counts.values()) > max_component_share * total:
            continue
        # Once the share is reached, only components that bring a label still short are worth taking.
        if sum(held.values()) >= fraction * total and not any(
                held[i] < min_per_label and counts[i] for i in range(len(taxonomy.labels))):
            continue
        chosen.append(component)
        held.update(counts)
    return sorted(chosen)


def split_by_group(templates: list[Template], gold_teacher: RecordedTeacher, test_fraction: float,
                   seed: int) -> tuple[list[Template], list[Template]]:
    """Hold out whole source templates, stratified by gold label; labels with one group stay in train."""
    taxonomy = gold_teacher.taxonomy
    group_label: dict[str, int | None] = {}
    for t in templates:
        group_label.setdefault(t.group, gold_index(t, gold_teacher, taxonomy))
    by_label: dict[int | None, list[str]] = {}
    for group, label in sorted(group_label.items(), key=lambda kv: kv[0]):
        by_label.setdefault(label, []).append(group)
    rng = random.Random(seed)
    test_groups = set()
    for label, groups in sorted(by_label.items(), key=lambda kv: str(kv[0])):
        if label is None or len(groups) < 2:
            continue  # no gold to score it with, or too rare to hold out
        rng.shuffle(groups)
        test_groups.update(groups[: max(1, round(test_fraction * len(groups)))])
    train = [t for t in templates if t.group not in test_groups]
    test = [t for t in templates if t.group in test_groups]
    return train, test


def split_stable(templates: list[Template], gold_teacher: RecordedTeacher, held_out_groups: list[str],
                 test_fraction: float, seed: int) -> tuple[list[Template], list[Template]]:
    """A split that new data never reshuffles: the given groups stay held out, and any other gold
    group is held out iff a seeded hash of its name falls under test_fraction. So a group's side
    never changes between retrains, and a new model is never scored on what an older one trained on."""
    taxonomy = gold_teacher.taxonomy
    kept = set(held_out_groups)
    test_groups = set()
    for t in templates:
        if t.group not in test_groups and (t.group in kept or (
                _group_hash(t.group, seed) < test_fraction and gold_index(t, gold_teacher, taxonomy) is not None)):
            test_groups.add(t.group)
    return ([t for t in templates if t.group not in test_groups], [t for t in templates if t.group in test_groups])


def sample_groups(templates: list[Template], fraction: float, seed: int) -> list[Template]:
    """The templates of a seeded `fraction` of the source groups (at least one group)."""
    groups = sorted({t.group for t in templates})
    random.Random(seed).shuffle(groups)
    kept = set(groups[: max(1, round(fraction * len(groups)))])
    return [t for t in templates if t.group in kept]


def _group_hash(group: str, seed: int) -> float:
    """Uniform in [0, 1), a pure function of (seed, group)."""
    return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16) / 16 ** 12
