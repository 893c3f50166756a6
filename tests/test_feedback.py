"""Feedback (service/feedback.py): teacher answers update the online accuracy and land in the label
store; bad messages go to the dead-letter topic with a reason; the loop never stops on one."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.classifier import Classifier, LineError
from service.config import ServeConfig
from service.feedback import BAD_FEEDBACK, Answer, FeedbackLoop, OnlineAccuracy, feedback_group, parse_answer
from service.label_store import LabelStore
from service.masking import template_key
from service.metrics import ServeMetrics
from service.parsing import parse_line
from service.records import dead_letter_reason

LABELS = ("normal", "network", "crash")


def answer(obj) -> Answer | LineError:
    return parse_answer(json.dumps(obj).encode(), LABELS)


def test_good_answers_in_each_accepted_shape():
    a = answer({"template": "dial <IP> refused", "label": "network", "teacher_id": "llm"})
    assert (a.template, a.label, a.teacher_id) == ("dial <IP> refused", "network", "llm")
    assert a.probs.tolist() == [0, 1, 0]  # a bare label: all its mass on it

    echoed = answer({"template": {"id": "abc", "key": "k"}, "probs": {"crash": 3, "normal": 1}, "teacher_id": "t"})
    assert echoed.template == "k" and echoed.label == "crash"  # the label: the most probable
    np.testing.assert_allclose(echoed.probs, [0.25, 0, 0.75])  # normalised, missing labels 0

    line = "E0612 10:01:02.123456 1 reflector.go:138] dial tcp 10.0.0.3:443: connect: connection refused"
    from_line = answer({"line": line, "label": "network", "probs": {"network": 0.6, "normal": 0.4},
                        "teacher_id": "t"})
    assert from_line.template == template_key(parse_line(line))  # keyed as serve keys that line


@pytest.mark.parametrize("value, detail", [
    (b"not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"", "JSON object"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"label": "network", "teacher_id": "t"}).encode(), "no template"),
    (json.dumps({"template": "k", "label": "network"}).encode(), "teacher_id"),
    (json.dumps({"template": "k", "teacher_id": "t"}).encode(), "neither"),
    (json.dumps({"template": "k", "label": "oops", "teacher_id": "t"}).encode(), "not in the taxonomy"),
    (json.dumps({"template": "k", "probs": {"oops": 1}, "teacher_id": "t"}).encode(), "not in the taxonomy"),
    (json.dumps({"template": "k", "probs": {"normal": -1, "crash": 2}, "teacher_id": "t"}).encode(), "non-negative"),
    (json.dumps({"template": "k", "probs": {"normal": 0}, "teacher_id": "t"}).encode(), "not all 0"),
    (json.dumps({"template": "k", "probs": {"normal": "high"}, "teacher_id": "t"}).encode(), "numbers"),
    (json.dumps({"template": "k", "label": "normal", "probs": {"crash": 0.9, "normal": 0.1},
                 "teacher_id": "t"}).encode(), "not the most probable"),
])
def test_bad_answers_say_why(value, detail):
    error = parse_answer(value, LABELS)
    assert isinstance(error, LineError) and error.reason == BAD_FEEDBACK
    assert detail.lower() in error.error.lower()


def test_online_accuracy_is_over_a_rolling_window():
    accuracy = OnlineAccuracy(window=4)
    assert math.isnan(accuracy.value)  # no answers: unknown, not 0
    for agree in (False, False, True, True, True, True):
        accuracy.add(agree)
    assert accuracy.value == 1.0  # the two early misses have left the window
    accuracy.add(False)
    assert accuracy.value == 0.75


def test_answers_are_stored_scored_and_bad_ones_dead_lettered_through_a_real_broker(kafka, tiny_model, tmp_path):
    from topics import committed, create_topics, fresh, produce, read_topic, wait_until

    feedback, dlq, group = fresh("feedback", "dlq", "group")
    create_topics(kafka, feedback, dlq)
    classifier = Classifier.from_dir(tiny_model[0])
    labels = classifier.labels
    lines = [f"GET /api/items/{i} returned 503 after {i} ms".encode() for i in range(1)] + \
            [b"Back-off restarting failed container api in pod api-1", b"disk /dev/sda1 is 97% full",
             b"Readiness probe failed: HTTP probe failed with statuscode: 503"]
    student = {r.template: r.label for r in classifier.classify_raw(lines)}
    keys = list(student)
    other = {key: next(label for label in labels if label != student[key]) for key in keys}
    good = [  # 3 agree, 2 disagree, two teachers, three message shapes
        {"template": keys[0], "label": student[keys[0]], "teacher_id": "llm-a"},
        {"template": {"key": keys[1]}, "label": student[keys[1]], "teacher_id": "llm-a"},
        {"line": lines[2].decode(), "probs": {student[keys[2]]: 0.7, other[keys[2]]: 0.3}, "teacher_id": "llm-b"},
        {"template": keys[3], "label": other[keys[3]], "teacher_id": "llm-a"},
        {"template": keys[0], "probs": {other[keys[0]]: 0.8, student[keys[0]]: 0.2}, "teacher_id": "llm-b"},
    ]
    bad = [b"not json", json.dumps({"template": keys[0], "label": "no-such-label", "teacher_id": "t"}).encode(),
           json.dumps({"template": keys[0], "label": labels[0]}).encode()]
    values = [json.dumps(g).encode() for g in good[:3]] + bad[:2] + [json.dumps(g).encode() for g in good[3:]] + bad[2:]
    acked = produce(kafka, feedback, values)

    config = ServeConfig(model=str(tiny_model[0]), bootstrap_servers=kafka.bootstrap, feedback_topic=feedback,
                         dlq_topic=dlq, group_id=group, label_store=str(tmp_path / "labels.sqlite"),
                         enable_idempotence=False, session_timeout_ms=6000, poll_timeout_ms=100)
    metrics = ServeMetrics()
    loop = FeedbackLoop(config, metrics, lambda: classifier).start()
    try:
        wait_until(lambda: committed(kafka, feedback_group(config), feedback) == len(acked), 30,
                   "every answer committed")
    finally:
        loop.stop()
    assert not loop.thread.is_alive()

    assert metrics.feedback.labels("agree")._value.get() == 3
    assert metrics.feedback.labels("disagree")._value.get() == 2
    assert metrics.online_accuracy._value.get() == pytest.approx(3 / 5)
    assert metrics.dead_letters.labels(BAD_FEEDBACK)._value.get() == len(bad)

    store = LabelStore(tmp_path / "labels.sqlite")
    try:
        assert store.count("llm-a") == 3 and store.count("llm-b") == 2
        a = store.get_many("llm-a", keys, labels)
        assert int(np.argmax(a[keys[3]])) == labels.index(other[keys[3]])  # the teacher's label, not the student's
        b = store.get_many("llm-b", keys, labels)
        assert b[keys[2]][labels.index(student[keys[2]])] == pytest.approx(0.7)
    finally:
        store.close()

    dead = read_topic(kafka, dlq, len(bad))
    assert sorted(r.value for r in dead) == sorted(bad)  # the original bytes
    reasons = [dead_letter_reason(r.headers) for r in dead]
    assert {h["error.reason"] for h in reasons} == {BAD_FEEDBACK} and {h["source.topic"] for h in reasons} == {feedback}
    assert any("not in the taxonomy" in h["error.message"] for h in reasons)


def test_a_new_model_restarts_the_accuracy_window(tiny_model):
    classifier = Classifier.from_dir(tiny_model[0])
    key = classifier.classify_raw([b"disk /dev/sda1 is 97% full"])[0]
    metrics = ServeMetrics()
    loop = FeedbackLoop(ServeConfig(model="m", accuracy_window=10), metrics, lambda: classifier)
    wrong = next(label for label in classifier.labels if label != key.label)
    loop.score([Answer(key.template, "t", wrong, np.ones(len(classifier.labels)))], classifier)
    assert metrics.online_accuracy._value.get() == 0.0
    loop._scored_version = "an older model"  # as if answers so far had been scored by another model
    loop.score([Answer(key.template, "t", key.label, np.ones(len(classifier.labels)))], classifier)
    assert metrics.online_accuracy._value.get() == 1.0  # the old model's miss does not count against this one


def test_training_reads_the_same_store():
    from training.teachers import label_store
    assert label_store.LabelStore is LabelStore
