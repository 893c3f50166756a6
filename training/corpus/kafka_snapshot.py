"""Training logs from Kafka: a snapshot of topics, read from their start to where they ended when
the snapshot began, turned into corpus records and teacher answers.

A snapshot, not a tail: the end offsets are taken first, and reading stops once every partition
reached them (or at a timeout, which the stats report), so a retrain sees a fixed, finite input.
No consumer group: partitions are assigned by hand and nothing is committed. A retrain is a batch
job that reads everything there each time, so it keeps no position in Kafka to drift, to expire
with the group's retention, or to need ACLs for; repeats cost only reading time, since the corpus
keeps one line per template (retrain.py) and the label store upserts answers, the last one in
topic order winning, as in `serve`.

One reader for the topics `serve` writes and reads as well as raw log topics; a message is taken
by what it holds, whichever topic it came from:
  - a teacher answer (JSON with "teacher_id", the feedback topic): parsed by service/feedback.py,
    the parser `serve` uses, into an Answer for the label store; its "line", if any, is a record;
  - an escalation (JSON with "student" and "template", cascade.py): its "line" is a record
    (a line the escalation cut short is left out: its template key would not be the line's);
  - anything else is a log line, possibly in a Fluent Bit / Vector envelope (service/records.py).
A message that is none of these is counted by reason, never raised.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from service.classifier import LineError
from service.config import ServeConfig
from service.feedback import Answer, parse_answer
from service.kafka_io import common_options
from service.masking import template_key
from service.parsing import parse_line
from service.records import unwrap
from training.corpus.readers import LogRecord

DEFAULT_TIMEOUT_S = 300.0
POLL_TIMEOUT_MS = 500


@dataclass
class SnapshotStats:
    messages: dict[str, int] = field(default_factory=dict)      # read per topic
    log_lines: int = 0
    escalations: int = 0
    answers: int = 0
    bad: Counter = field(default_factory=Counter)               # reason -> messages left out
    missing_topics: list[str] = field(default_factory=list)
    incomplete_partitions: list[str] = field(default_factory=list)  # end offset not reached by the timeout

    def to_dict(self) -> dict:
        return {"messages": self.messages, "log_lines": self.log_lines, "escalations": self.escalations,
                "answers": self.answers, "bad": dict(self.bad), "missing_topics": self.missing_topics,
                "incomplete_partitions": self.incomplete_partitions}


@dataclass
class Snapshot:
    records: list[LogRecord]   # one per template key: the corpus keeps one line per template, so a
    answers: list[Answer]      # topic of millions of lines costs memory per template, not per line
    stats: SnapshotStats
    keys: set[str] = field(default_factory=set)

    def add(self, record: LogRecord) -> None:
        if record.group not in self.keys:
            self.keys.add(record.group)
            self.records.append(record)


def read_snapshot(config: ServeConfig, topics: list[str], labels: tuple[str, ...],
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> Snapshot:
    """Every message of `topics` up to their end offsets now, as records and teacher answers."""
    snapshot = Snapshot([], [], SnapshotStats())
    consumer = KafkaConsumer(**{**common_options(config), "client_id": f"{config.client_id}-retrain"},
                             group_id=None, enable_auto_commit=False,
                             max_partition_fetch_bytes=max(1024 * 1024, config.max_message_bytes))
    try:
        for message in read_until_end(consumer, topics, timeout_s, snapshot.stats):
            snapshot.stats.messages[message.topic] = snapshot.stats.messages.get(message.topic, 0) + 1
            take_message(message, labels, config, snapshot)
    finally:
        consumer.close()
    return snapshot


def read_until_end(consumer: KafkaConsumer, topics: list[str], timeout_s: float, stats: SnapshotStats):
    """Messages of every partition from its beginning to the end offset it had when we started."""
    partitions = []
    for topic in topics:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            stats.missing_topics.append(topic)
            continue
        partitions += [TopicPartition(topic, p) for p in sorted(ids)]
    if not partitions:
        return
    consumer.assign(partitions)
    end = consumer.end_offsets(partitions)
    consumer.seek_to_beginning(*partitions)
    pending = {tp for tp in partitions if consumer.position(tp) < end[tp]}
    fetched: set[TopicPartition] = set()
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for tp, messages in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).items():
            if tp not in fetched:  # see END OFFSETS below
                fetched.add(tp)
                end[tp] = max(end[tp], consumer.highwater(tp) or 0)
            yield from (m for m in messages if m.offset < end[tp])  # later ones came after the snapshot
        # Positions, not the last offset seen: compaction and transaction markers leave gaps.
        done = {tp for tp in pending if consumer.position(tp) >= end[tp]}
        if done:
            consumer.pause(*done)
            pending -= done
    stats.incomplete_partitions = sorted(f"{tp.topic}:{tp.partition}" for tp in pending)


# END OFFSETS: a snapshot ends at each partition's end offset (ListOffsets, latest) when it starts,
# raised to the high watermark of the partition's first fetch. On Kafka the two differ only by what
# arrived in between; tansu (the tests' and the demo's broker) answers ListOffsets with the base
# offset of the last record batch + 1, which would cut a snapshot inside the last batch.


def take_message(message, labels: tuple[str, ...], config: ServeConfig, snapshot: Snapshot) -> None:
    obj = json_object(message.value)
    if obj is not None and "teacher_id" in obj:
        take_answer(message, obj, labels, snapshot)
    elif obj is not None and "student" in obj and isinstance(obj.get("template"), dict):
        take_escalation(message, obj, snapshot)
    else:
        take_log_line(message, config, snapshot)


def take_answer(message, obj: dict, labels: tuple[str, ...], snapshot: Snapshot) -> None:
    answer = parse_answer(message.value, labels)
    if isinstance(answer, LineError):
        snapshot.stats.bad[answer.reason] += 1
        return
    snapshot.answers.append(answer)
    snapshot.stats.answers += 1
    if isinstance(obj.get("line"), str) and obj["line"].strip() and not obj.get("line_truncated"):
        snapshot.add(record(obj["line"], message, obj.get("kubernetes")))


def take_escalation(message, obj: dict, snapshot: Snapshot) -> None:
    line = obj.get("line")
    if not isinstance(line, str) or not line.strip():
        snapshot.stats.bad["escalation_without_line"] += 1
    elif obj.get("line_truncated"):
        snapshot.stats.bad["escalation_line_truncated"] += 1
    else:
        snapshot.add(record(line, message, obj.get("kubernetes")))
        snapshot.stats.escalations += 1


def take_log_line(message, config: ServeConfig, snapshot: Snapshot) -> None:
    unwrapped = unwrap(message.value, config.max_message_bytes)
    if unwrapped.error is not None:
        snapshot.stats.bad[unwrapped.error.reason] += 1
        return
    text, reason = decode_line(unwrapped.raw, config.max_line_bytes)
    if reason:
        snapshot.stats.bad[reason] += 1
        return
    snapshot.add(record(text, message, unwrapped.kubernetes))
    snapshot.stats.log_lines += 1


def record(line: str, message, kubernetes: dict | None) -> LogRecord:
    meta = {"kafka": f"{message.topic}:{message.partition}:{message.offset}"}
    if isinstance(kubernetes, dict) and kubernetes:
        meta["kubernetes"] = kubernetes
    line = line.rstrip("\r\n")
    return LogRecord(text=line, source=f"kafka:{message.topic}", group=template_key(parse_line(line)), meta=meta)


def json_object(value: bytes | None) -> dict | None:
    if not value or value.lstrip()[:1] != b"{":
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def decode_line(raw: bytes, max_line_bytes: int) -> tuple[str, str | None]:
    """(text, None), or ("", reason) with the reasons `serve` dead-letters a line for."""
    raw = raw.rstrip(b"\r\n")
    if len(raw) > max_line_bytes:
        return "", "too_long"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "", "invalid_utf8"
    return (text, None) if text.strip() else ("", "empty")
