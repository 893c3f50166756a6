"""`logdistill teach` (training/loop/teach_worker.py): escalations in, teacher answers out, through a real
broker; the label store spares repeated templates; the whole cascade loop closes through serve."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest

from service.classifier import Classifier
from service.config import ServeConfig
from service.feedback import Answer, FeedbackLoop, feedback_group, parse_answer
from service.label_store import LabelStore
from service.masking import template_key
from service.metrics import ServeMetrics
from service.parsing import parse_line
from service.records import dead_letter_reason, template_id
from service.taxonomy import load_taxonomy
from training.loop.teach_worker import BAD_ESCALATION, TEACHER_FAILED, TeachWorker, parse_escalation
from training.teachers.base import TeacherQuery

LINES = ["dial tcp 10.0.0.7:5432: connect: connection refused",
         "dial tcp 10.9.1.2:6379: connect: connection refused",  # the same template as the first
         "Readiness probe failed: HTTP probe failed with statuscode: 503"]


class CountingTeacher:
    """A real teacher, with the templates it was asked about counted (the store should spare repeats)."""

    def __init__(self, teacher, refuse: set[str] = frozenset()):
        self.teacher, self.refuse, self.asked = teacher, refuse, []
        self.teacher_id = teacher.teacher_id

    def distributions(self, queries: list[TeacherQuery]):
        self.asked += [q.key for q in queries]
        answers = self.teacher.distributions(queries)
        return [None if q.key in self.refuse else a for q, a in zip(queries, answers)]


@pytest.fixture(scope="module")
def embedding_teacher():
    from training.teachers.embedding import EmbeddingTeacher

    return EmbeddingTeacher(load_taxonomy())


def escalation(line: str) -> bytes:
    key = template_key(parse_line(line))
    return json.dumps({"line": line, "template": {"id": "x", "key": key},
                       "student": {"label": "normal", "confidence": 0.3}, "model_version": "m1"}).encode()


def test_escalations_are_parsed_or_refused_with_a_reason():
    ok = parse_escalation(escalation(LINES[0]))
    assert ok.key == template_key(parse_line(LINES[0])) and ok.echo["model_version"] == "m1"
    bare = parse_escalation(json.dumps({"line": LINES[2]}).encode())
    assert bare.key == template_key(parse_line(LINES[2]))  # keyed as serve keys it
    for bad in (b"not json", b"\xff\xfe", json.dumps({"template": "k"}).encode(), b"[]"):
        error = parse_escalation(bad)
        assert error.reason == BAD_ESCALATION, bad


def worker_config(kafka, escalate, feedback, dlq, store) -> ServeConfig:
    return ServeConfig(bootstrap_servers=kafka.bootstrap, escalation_topic=escalate, feedback_topic=feedback,
                       dlq_topic=dlq, label_store=str(store), enable_idempotence=False,
                       session_timeout_ms=6000, poll_timeout_ms=200)


def test_answers_reach_the_feedback_topic_and_repeats_cost_no_teacher_call(kafka, embedding_teacher, tmp_path):
    from topics import committed, create_topics, fresh, produce, read_topic

    escalate, feedback, dlq, group = fresh("escalate", "feedback", "dlq", "teach")
    create_topics(kafka, escalate, feedback, dlq)
    labels = load_taxonomy().labels
    refused = template_key(parse_line(LINES[2]))
    produce(kafka, escalate, [escalation(line) for line in LINES] + [b"not json"])

    teacher = CountingTeacher(embedding_teacher, refuse={refused})
    config = worker_config(kafka, escalate, feedback, dlq, tmp_path / "labels.sqlite")
    worker = TeachWorker(config, teacher, labels, group_id=group)
    assert worker.run(max_idle_polls=3) == 0
    assert committed(kafka, group, escalate) == 4  # every escalation, answered or dead-lettered

    records = read_topic(kafka, feedback, 1)
    answers = [parse_answer(r.value, labels) for r in records]
    assert [r.key for r in records] == [template_id(a.template).encode() for a in answers]  # as serve keys escalations
    assert len(answers) == 1 and all(isinstance(a, Answer) for a in answers)  # two lines, one template
    assert answers[0].template == template_key(parse_line(LINES[0]))
    assert answers[0].teacher_id == embedding_teacher.teacher_id
    expected = embedding_teacher.distributions([TeacherQuery(answers[0].template, LINES[0])])[0]
    np.testing.assert_allclose(answers[0].probs, expected, atol=1e-5)  # the teacher's distribution, unchanged

    dead = {dead_letter_reason(r.headers)["error.reason"]: r.value for r in read_topic(kafka, dlq, 2)}
    assert dead[BAD_ESCALATION] == b"not json"
    assert json.loads(dead[TEACHER_FAILED])["line"] == LINES[2]  # kept whole, to be replayed

    # A second worker (another group: everything again) finds the answered template in the store.
    again = CountingTeacher(embedding_teacher)
    worker = TeachWorker(config, again, labels, group_id=group + "-2")
    worker.run(max_idle_polls=3)
    assert again.asked == [refused]  # only the template that had no answer
    assert worker.stats.from_store == 1 and worker.stats.labelled == 1


def test_the_cascade_closes_serve_escalates_teach_answers_serve_scores(kafka, tiny_model, embedding_teacher,
                                                                        tmp_path):
    from service.kafka_io import make_consumer, make_producer
    from service.serve import Server
    from topics import SESSION_TIMEOUT_MS, ServerThread, committed, create_topics, fresh, produce, wait_until

    source, results, dlq, escalate, feedback, group = fresh("logs", "results", "dlq", "escalate", "feedback", "g")
    create_topics(kafka, source, results, dlq, escalate, feedback)
    store = tmp_path / "labels.sqlite"
    config = ServeConfig(model=str(tiny_model[0]), bootstrap_servers=kafka.bootstrap, input_topic=source,
                         output_topic=results, dlq_topic=dlq, escalation_topic=escalate, feedback_topic=feedback,
                         label_store=str(store), group_id=group, low_confidence=1.01, enable_idempotence=False,
                         session_timeout_ms=SESSION_TIMEOUT_MS, poll_timeout_ms=100)
    classifier = Classifier.from_dir(tiny_model[0])
    metrics = ServeMetrics()
    server = Server(config, classifier, make_consumer(config), make_producer(config), metrics)
    feedback_loop = FeedbackLoop(config, metrics, lambda: classifier).start()
    teach_config = dataclasses.replace(config, label_store=str(tmp_path / "teacher.sqlite"))  # not serve's store
    worker = TeachWorker(teach_config, CountingTeacher(embedding_teacher), classifier.labels,
                         group_id=group + "-teach")
    worker_thread = threading.Thread(target=worker.run, daemon=True)
    worker_thread.start()
    try:
        with ServerThread(server):
            produce(kafka, source, [line.encode() for line in LINES])
            wait_until(lambda: committed(kafka, feedback_group(config), feedback) >= 2, 60,
                       "the teacher's answers scored by serve")
    finally:
        worker.stop()
        worker_thread.join(30)
        feedback_loop.stop()
    templates = {template_key(parse_line(line)) for line in LINES}
    reader = LabelStore(store)
    try:  # serve stored the teacher's answers for retraining, under the teacher's id
        assert set(reader.get_many(embedding_teacher.teacher_id, sorted(templates), classifier.labels)) == templates
    finally:
        reader.close()
    scored = metrics.feedback.labels("agree")._value.get() + metrics.feedback.labels("disagree")._value.get()
    assert scored == 2 and 0.0 <= metrics.online_accuracy._value.get() <= 1.0


def test_the_teach_command_reads_serves_options_and_exits_when_idle(kafka, logdistill_exe, tmp_path):
    import os
    import subprocess

    from topics import create_topics, fresh, produce, read_topic

    escalate, feedback, dlq = fresh("escalate", "feedback", "dlq")
    create_topics(kafka, escalate, feedback, dlq)
    produce(kafka, escalate, [escalation(LINES[0])])
    env = {**os.environ, "LOGDISTILL_BOOTSTRAP_SERVERS": kafka.bootstrap,  # as a Helm Secret/ConfigMap sets them
           "LOGDISTILL_ENABLE_IDEMPOTENCE": "false", "LOGDISTILL_SESSION_TIMEOUT_MS": "6000"}
    done = subprocess.run([str(logdistill_exe), "teach", "--teacher", "embedding", "--exit-when-idle", "3",
                           "--escalation-topic", escalate, "--feedback-topic", feedback, "--dlq-topic", dlq,
                           "--label-store", str(tmp_path / "labels.sqlite"), "--poll-timeout-ms", "300"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [answer] = read_topic(kafka, feedback, 1)
    assert json.loads(answer.value)["template"]["key"] == template_key(parse_line(LINES[0]))
