"""Novel-template rate (service/novelty.py): the artifact lists the templates the student was trained
on (templates.json, checksummed); serve counts lines whose template is not among them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from service.artifact import TEMPLATES_FILE, ArtifactError, load_artifact, read_checksums, write_checksums
from service.classifier import Classifier
from service.config import ServeConfig
from service.masking import template_key
from service.metrics import ServeMetrics
from service.novelty import NoveltyTracker
from service.parsing import parse_line
from service.records import template_id


def novelty_counts(metrics: ServeMetrics) -> dict:
    return {kind: metrics.template_novelty.labels(kind)._value.get() for kind in ("seen", "novel")}


def test_the_built_artifact_lists_its_training_templates_under_its_checksums(tiny_model):
    model_dir, metrics = tiny_model
    assert TEMPLATES_FILE in read_checksums(model_dir)
    ids = load_artifact(model_dir).training_templates
    examples = metrics["training_examples"]  # every template the student was trained on, augmented ones too
    assert len(ids) == examples["templates"] + examples["augmented"]
    assert json.loads((model_dir / TEMPLATES_FILE).read_text())["ids"] == sorted(ids)


@pytest.fixture(scope="module")
def loghub_lines():
    from training import pipeline
    from training.corpus.readers import read_loghub_dir

    loghub = pipeline.SHARED_DATA / "loghub"
    if not loghub.is_dir():
        pytest.skip(f"no Loghub data at {loghub}")
    return [r.text for r in read_loghub_dir(loghub)]


def test_corpus_templates_split_into_seen_and_novel(tiny_model, loghub_lines):
    """The ids written at export match the keys the runtime computes: the tiny model was trained on a
    sample of the Loghub templates, so some of Loghub is seen and the rest (held out, unsampled) novel."""
    keys = {template_key(parse_line(line)) for line in loghub_lines}
    tracker = NoveltyTracker(load_artifact(tiny_model[0]).training_templates)
    novel = {key for key in keys if tracker.is_novel(key)}
    assert 0 < len(novel) < len(keys)
    assert tracker.is_novel("a template no corpus has <NUM> zzqv") is True


def test_serve_counts_every_classified_line_as_seen_or_novel(tiny_model, loghub_lines):
    from service.serve import Server

    model_dir, _ = tiny_model
    classifier = Classifier.from_dir(model_dir)
    tracker = NoveltyTracker.for_classifier(classifier)
    by_novelty = {True: [], False: []}
    for line in loghub_lines:
        by_novelty[tracker.is_novel(template_key(parse_line(line)))].append(line.encode())
    lines = by_novelty[False][:30] + by_novelty[True][:20] + [b"", b"\xff"]  # and two dead letters
    server = Server(ServeConfig(model=str(model_dir), escalation_topic=""), classifier, None, None, ServeMetrics())
    records = [SimpleNamespace(topic="in", partition=0, offset=i, timestamp=int(time.time() * 1000), key=None,
                               value=v, headers=[]) for i, v in enumerate(lines)]
    server.classify(records)
    assert novelty_counts(server.metrics) == {"seen": 30, "novel": 20}  # dead letters are not classified lines


def test_seen_and_novel_by_template_id():
    metrics = ServeMetrics()
    tracker = NoveltyTracker(frozenset({template_id("disk <PATH> is <NUM>% full")}), metrics.template_novelty)
    assert tracker.observe("disk <PATH> is <NUM>% full") is False
    assert tracker.observe("disk <PATH> is <NUM>% full") is False
    assert tracker.observe("something new") is True
    assert novelty_counts(metrics) == {"seen": 2, "novel": 1}
    unknown = NoveltyTracker(None, metrics.template_novelty)
    assert unknown.observe("anything") is None and not unknown.known
    assert novelty_counts(metrics) == {"seen": 2, "novel": 1}  # no signal rather than a wrong one


def test_artifacts_without_or_with_an_unverified_templates_file(tiny_model, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_model[0], old)
    (old / TEMPLATES_FILE).unlink()
    write_checksums(old)
    assert load_artifact(old).training_templates is None  # built before templates.json: still loads

    (old / TEMPLATES_FILE).write_text(json.dumps({"ids": ["0123456789ab"]}))  # not under SHA256SUMS
    assert load_artifact(old).training_templates is None  # unverified: ignored

    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_model[0], tampered)
    (tampered / TEMPLATES_FILE).write_text(json.dumps({"ids": []}))
    with pytest.raises(ArtifactError, match="templates.json"):
        load_artifact(tampered)


def test_the_runtime_still_does_not_import_torch():
    code = ("import sys, service.serve, service.feedback, service.reload, service.cascade, service.novelty, "
            "service.label_store; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
