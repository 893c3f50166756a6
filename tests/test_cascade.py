"""The cascade (service/cascade.py): results with escalate=true (unsure, or out of distribution) also go
to the escalation topic, once per template and model, with what a teacher needs, and inside the batch's
at-least-once delivery."""

from __future__ import annotations

import json
import time
from collections import Counter
from types import SimpleNamespace

import pytest

from service.cascade import MAX_LINE_CHARS, Escalator, shrink
from service.classifier import Classifier
from service.config import ServeConfig
from service.records import template_id

LINES = [f"Readiness probe failed: HTTP probe failed with statuscode: 503 (pod web-{i})".encode() for i in range(6)] \
    + [f"Started container app in pod api-{i}".encode() for i in range(6)] \
    + [b"disk /dev/sda1 is 97% full"] * 3


def records_for(values: list, first_offset: int = 0) -> list:
    return [SimpleNamespace(topic="in", partition=0, offset=first_offset + i, timestamp=int(time.time() * 1000),
                            key=None, value=v, headers=[]) for i, v in enumerate(values)]


@pytest.fixture(scope="module")
def classifier(tiny_model):
    return Classifier.from_dir(tiny_model[0], cache_size=1000)


def server_for(classifier, **options):
    from service.serve import Server

    config = ServeConfig(model=str(classifier.student.artifact.path), **options)
    return Server(config, classifier, consumer=None, producer=None)


def test_every_low_confidence_template_is_escalated_once_with_what_a_teacher_needs(classifier):
    server = server_for(classifier, low_confidence=1.01, escalation_topic="esc")  # everything is unsure
    outputs = server.classify(records_for(LINES))
    results = [o for o in outputs if o.is_result]
    escalations = [o for o in outputs if o.escalation]
    assert len(results) == len(LINES)  # escalations come on top of the results, never instead
    templates = [json.loads(o.value)["template"]["key"] for o in results]
    assert len(escalations) == len(set(templates)) == 3  # once per template, not per line
    assert {o.topic for o in escalations} == {"esc"}

    first = json.loads(escalations[0].value)
    result = json.loads(results[0].value)
    assert first["line"] == LINES[0].decode() and first["line_truncated"] is False
    assert first["template"] == result["template"]
    assert escalations[0].key == result["template"]["id"].encode()  # one template, one partition
    assert list(first["student"]["probs"]) == list(classifier.labels)  # the whole distribution, in order
    assert first["student"]["label"] == result["label"] and first["student"]["confidence"] == result["confidence"]
    assert first["model_version"] == classifier.model_version
    assert first["source"] == {"topic": "in", "partition": 0, "offset": 0, "timestamp": result["source"]["timestamp"]}

    again = server.classify(records_for(LINES, first_offset=100))
    assert not any(o.escalation for o in again)  # already escalated under this model
    server.use_classifier(classifier)  # a (re)loaded model escalates afresh
    assert sum(o.escalation for o in server.classify(records_for(LINES))) == 3


def test_threshold_dedup_off_only_problems_and_off_switch(classifier):
    confident = server_for(classifier, low_confidence=0.0, max_ood=1.0, escalation_topic="esc")  # nothing is
    assert not any(o.escalation for o in confident.classify(records_for(LINES)))

    every_line = server_for(classifier, low_confidence=1.01, escalation_topic="esc", escalation_dedup=0)
    assert sum(o.escalation for o in every_line.classify(records_for(LINES))) == len(LINES)

    labels = [r.label for r in classifier.classify_raw(LINES)]
    normal = Counter(labels).most_common(1)[0][0]  # the tiny model's labels are arbitrary: pick a frequent one
    only_problems = server_for(classifier, low_confidence=1.01, escalation_topic="esc", escalation_dedup=0,
                               only_problems=True, normal_label=normal)
    outputs = only_problems.classify(records_for(LINES))
    assert sum(o.is_result for o in outputs) == len(LINES) - labels.count(normal)
    assert sum(o.escalation for o in outputs) == len(LINES)  # the teacher still sees the unsure "normal" ones

    off = server_for(classifier, low_confidence=1.01, escalation_topic="")
    assert off.escalator is None and not any(o.escalation for o in off.classify(records_for(LINES)))


def test_out_of_distribution_lines_are_escalated_with_their_reason_evidence_and_metrics(classifier):
    # δ below every score: each line counts as out of distribution, however confident the student is.
    server = server_for(classifier, low_confidence=0.0, max_ood=-1.0, escalation_topic="esc")
    outputs = server.classify(records_for(LINES))
    results = [json.loads(o.value) for o in outputs if o.is_result]
    escalations = [json.loads(o.value) for o in outputs if o.escalation]
    assert all(r["escalate"] and r["escalation_reason"] == "out_of_distribution" for r in results)
    assert len(escalations) == 3 and all(e["escalation_reason"] == "out_of_distribution" for e in escalations)
    assert all(e["evidence"]["template"] and 0 <= e["ood"] <= 1 for e in escalations)
    exposition = server.metrics.exposition().decode()
    assert f'logdistill_escalated_lines_total{{reason="out_of_distribution"}} {float(len(LINES))}' in exposition
    assert f"logdistill_out_of_distribution_lines_total {float(len(LINES))}" in exposition

    kept = server_for(classifier, low_confidence=0.0, max_ood=1.0, escalation_topic="esc")
    results = [json.loads(o.value) for o in kept.classify(records_for(LINES)) if o.is_result]
    assert not any(r["escalate"] for r in results) and all(r["escalation_reason"] is None for r in results)


def test_long_lines_are_cut_and_a_refused_escalation_shrinks():
    line = "x" * (3 * MAX_LINE_CHARS)
    result = SimpleNamespace(line=line, template="x", label="normal", confidence=0.1, probs={"normal": 1.0},
                             escalate=True, verdict_fields=lambda: {"escalate": True,
                                                                    "escalation_reason": "low_confidence"})
    escalation = Escalator("esc").escalate(records_for([b""])[0], result, None, "v")
    key, value = escalation
    record = json.loads(value)
    assert key == template_id("x").encode()
    assert len(record["line"]) == MAX_LINE_CHARS and record["line_truncated"] is True
    smaller = json.loads(shrink(value))
    assert len(smaller["line"]) == MAX_LINE_CHARS // 2 and smaller["template"] == record["template"]


class EventProducer:
    """Acknowledges everything except the first send to one topic, whose future fails (a broker
    error on that partition); records the order of sends and commits."""

    def __init__(self, events: list, failing_topic: str):
        self.events, self.failing_topic = events, failing_topic
        self.acked: list = []

    def send(self, topic, value=None, key=None, headers=None):
        from kafka.errors import NotLeaderForPartitionError

        fail = topic == self.failing_topic and not any(e == ("failed", topic) for e in self.events)
        self.events.append(("failed" if fail else "acked", topic))
        if not fail:
            self.acked.append(topic)
        return SimpleNamespace(is_done=True, succeeded=lambda: not fail,
                               exception=NotLeaderForPartitionError("scripted") if fail else None)

    def flush(self, timeout=None):
        pass


class EventConsumer:
    def __init__(self, events: list):
        self.events = events

    def commit(self, offsets, **_options):
        self.events.append(("commit", {tp.partition: om.offset for tp, om in offsets.items()}))

    def assignment(self):  # for the lag gauge: nothing assigned, nothing to report
        return set()


def test_the_commit_waits_for_the_escalations_to_be_acknowledged(classifier):
    """The escalation's first send fails: it is sent again, and only then are the offsets committed."""
    from service.serve import Server

    events: list = []
    config = ServeConfig(model="m", low_confidence=1.01, escalation_topic="esc", output_topic="out",
                         retry_backoff_initial_s=0.001, retry_backoff_max_s=0.01)
    server = Server(config, classifier, EventConsumer(events), EventProducer(events, "esc"))
    server.process(records_for(LINES[:2]))
    assert events.count(("failed", "esc")) == 1 and events.count(("acked", "esc")) == 1
    assert events[-1] == ("commit", {0: 2}) and [e[0] for e in events].count("commit") == 1
    assert events.index(("acked", "esc")) < events.index(("commit", {0: 2}))
    assert server.metrics.escalations._value.get() == 1 and server.metrics.results._value.get() == 2


def test_escalations_reach_their_topic_through_a_real_broker(kafka, tiny_model):
    from service.kafka_io import make_consumer, make_producer
    from service.metrics import ServeMetrics
    from service.serve import Server
    from topics import (SESSION_TIMEOUT_MS, ServerThread, committed, create_topics, fresh, produce, read_topic,
                        wait_until)

    source, results, dlq, escalate, group = fresh("logs", "results", "dlq", "escalate", "group")
    create_topics(kafka, source, results, dlq, escalate)
    classifier = Classifier.from_dir(tiny_model[0])
    # τ between the templates' confidences: some results say escalate, some do not.
    confidence = sorted({r.confidence for r in classifier.classify_raw(LINES)})
    assert len(confidence) == 3
    config = ServeConfig(model=str(tiny_model[0]), bootstrap_servers=kafka.bootstrap, input_topic=source,
                         output_topic=results, dlq_topic=dlq, escalation_topic=escalate, group_id=group,
                         low_confidence=(confidence[1] + confidence[2]) / 2, max_ood=1.0, enable_idempotence=False,
                         session_timeout_ms=SESSION_TIMEOUT_MS, poll_timeout_ms=100)
    metrics = ServeMetrics()
    server = Server(config, classifier, make_consumer(config), make_producer(config), metrics)
    with ServerThread(server):
        acked = produce(kafka, source, LINES)
        wait_until(lambda: committed(kafka, group, source) == len(acked), 30, "every input committed")
    outputs = [json.loads(r.value) for r in read_topic(kafka, results, len(LINES))]
    assert len(outputs) == len(LINES)  # at least once, and here exactly once: every input has its result
    escalated = {r["template"]["key"] for r in outputs if r["escalate"]}
    assert len(escalated) == 2 and all(r["escalation_reason"] == "low_confidence" for r in outputs if r["escalate"])
    escalations = read_topic(kafka, escalate, 2)
    assert sorted(json.loads(r.value)["template"]["key"] for r in escalations) == sorted(escalated)  # exactly those
    assert all(r.key == template_id(json.loads(r.value)["template"]["key"]).encode() for r in escalations)
    assert metrics.escalations._value.get() == 2 and metrics.results._value.get() == len(LINES)
