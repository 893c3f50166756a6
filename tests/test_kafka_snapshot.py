"""Kafka snapshots for retraining (training/corpus/kafka_snapshot.py), against a real broker (tansu):
log lines, shipper envelopes, escalations and teacher answers read from the start to the end offsets,
bad messages counted, nothing committed."""

from __future__ import annotations

import json

import pytest

from service.config import ServeConfig
from service.masking import template_key
from service.parsing import parse_line
from service.taxonomy import load_taxonomy
from topics import committed, create_topics, fresh, produce

pytest.importorskip("kafka")

from training.corpus.kafka_snapshot import read_snapshot  # noqa: E402

LABELS = load_taxonomy(None).labels
REFUSED = "dial tcp 10.0.3.7:5432: connect: connection refused"
OOM = "Memory cgroup out of memory: Killed process 4211 (java)"


def escalation(line: str, truncated: bool = False) -> bytes:
    """What serve's cascade sends (service/cascade.py escalation_value)."""
    return json.dumps({"line": line, "line_truncated": truncated,
                       "template": {"id": "abc", "key": template_key(parse_line(line))},
                       "student": {"label": "normal", "confidence": 0.31, "probs": {"normal": 0.31}},
                       "model_version": "v1", "source": {"topic": "logs", "partition": 0, "offset": 7,
                                                         "timestamp": 0}}).encode()


def answer(teacher: str = "gpt-test", label: str = "network", **extra) -> bytes:
    return json.dumps({"line": REFUSED, "label": label, "teacher_id": teacher, **extra}).encode()


def config(kafka) -> ServeConfig:
    return ServeConfig(model="unused", bootstrap_servers=kafka.bootstrap)


def test_a_snapshot_reads_every_kind_of_message_and_counts_the_bad_ones(kafka):
    logs, feedback = fresh("logs", "feedback")
    create_topics(kafka, logs, partitions=2)
    create_topics(kafka, feedback)
    produce(kafka, logs, [
        b"GET /index.html 200",
        json.dumps({"log": OOM, "kubernetes": {"pod_name": "api-1", "namespace_name": "shop",
                                               "container_name": "api"}}).encode(),      # Fluent Bit
        json.dumps({"message": "disk /dev/sda1 is 97% full"}).encode(),                  # structured line
        escalation("upstream timed out after 30s while reading response header"),
        escalation("x" * 50, truncated=True),                                              # bad: cut short
        b"\xff\xfe not utf-8",                                                             # bad
        b"   ",                                                                            # bad: empty
        json.dumps({"level": "info", "status": 200}).encode(),                             # bad: no message
    ], keys=[str(i).encode() for i in range(8)])  # keys spread them over both partitions
    produce(kafka, feedback, [
        answer(),
        answer(label="no-such-label"),                                                     # bad answer
        json.dumps({"template": {"key": template_key(parse_line(OOM))},
                    "probs": {"resource": 0.8, "crash": 0.2}, "teacher_id": "gpt-test"}).encode(),
    ])

    snapshot = read_snapshot(config(kafka), [logs, feedback, "no-such-topic"], LABELS, timeout_s=60)

    stats = snapshot.stats
    assert stats.messages == {logs: 8, feedback: 3}
    assert (stats.log_lines, stats.escalations, stats.answers) == (3, 1, 2)
    assert dict(stats.bad) == {"escalation_line_truncated": 1, "invalid_utf8": 1, "empty": 1, "no_message": 1,
                               "bad_feedback": 1}
    assert stats.missing_topics == ["no-such-topic"] and stats.incomplete_partitions == []
    texts = {r.text for r in snapshot.records}
    assert OOM in texts and REFUSED in texts and "upstream timed out after 30s while reading response header" in texts
    envelope = next(r for r in snapshot.records if r.text == OOM)
    assert envelope.meta["kubernetes"] == {"pod": "api-1", "namespace": "shop", "container": "api"}
    assert envelope.group == template_key(parse_line(OOM))  # as read_text_file groups a new line
    by_template = {a.template: a for a in snapshot.answers}
    assert by_template[template_key(parse_line(REFUSED))].label == "network"
    oom = by_template[template_key(parse_line(OOM))]
    assert oom.label == "resource" and oom.probs[LABELS.index("crash")] == pytest.approx(0.2)


def test_a_snapshot_stops_at_the_end_offsets_and_commits_nothing(kafka):
    (topic,) = fresh("logs")
    create_topics(kafka, topic)
    produce(kafka, topic, [f"job {i} done".encode() for i in range(25)])

    first = read_snapshot(config(kafka), [topic], LABELS, timeout_s=60)
    produce(kafka, topic, [b"one more"])
    second = read_snapshot(config(kafka), [topic], LABELS, timeout_s=60)

    assert first.stats.log_lines == 25 and first.stats.incomplete_partitions == []
    assert [r.text for r in first.records] == ["job 0 done"]  # one line per template
    assert second.stats.log_lines == 26  # from the start again, up to the new end
    assert [r.text for r in second.records] == ["job 0 done", "one more"]
    assert committed(kafka, "logdistill", topic) == 0


def test_an_empty_topic_is_an_empty_snapshot(kafka):
    (topic,) = fresh("logs")
    create_topics(kafka, topic)
    snapshot = read_snapshot(config(kafka), [topic], LABELS, timeout_s=30)
    assert snapshot.records == [] and snapshot.stats.messages == {}
