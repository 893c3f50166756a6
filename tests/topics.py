"""Small Kafka helpers for the tests of the serve add-ons (reload, cascade, feedback): fresh topic
names, produce-and-wait, read a topic from the start, committed offsets, a Server on a thread."""

from __future__ import annotations

import threading
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

SESSION_TIMEOUT_MS = 6000  # tansu holds a join for session_timeout/2: keep it short


def fresh(*prefixes: str) -> list[str]:
    suffix = uuid.uuid4().hex[:8]
    return [f"{prefix}-{suffix}" for prefix in prefixes]


def create_topics(kafka, *names: str, partitions: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        admin.close()


def produce(kafka, topic: str, values: list, keys: list | None = None) -> list[tuple[int, int]]:
    """Send and wait for every ack; (partition, offset) per value. No idempotence against tansu."""
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=False, acks="all")
    try:
        futures = [producer.send(topic, value=v, key=(keys[i] if keys else None)) for i, v in enumerate(values)]
        producer.flush()
        return [(md.partition, md.offset) for md in (f.get(timeout=10) for f in futures)]
    finally:
        producer.close()


def read_topic(kafka, topic: str, at_least: int, timeout_s: float = 30.0, quiet_s: float = 0.5) -> list:
    """Every record of a one-partition topic, once at least `at_least` are there and no more come."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records: list = []
    deadline, last_change = time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [r for rs in consumer.poll(timeout_ms=200).values() for r in rs]
            if batch:
                records += batch
                last_change = time.monotonic()
            elif len(records) >= at_least and time.monotonic() - last_change >= quiet_s:
                break
    finally:
        consumer.close()
    return records


def committed(kafka, group: str, topic: str, partition: int = 0) -> int:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, partition)) or 0
    finally:
        consumer.close()


def wait_until(condition, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class ServerThread:
    """A serve.Server running on a thread, stopped (and its exit code checked) by the test."""

    def __init__(self, server):
        self.server, self.codes = server, []
        self.thread = threading.Thread(target=lambda: self.codes.append(server.run()), daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        self.thread.join(30)
        assert self.codes == [0], "the server must drain and exit 0"
