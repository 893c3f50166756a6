"""service/confluent_io.py: librdkafka behind kafka-python's calls, against a real broker (tansu).
serve itself runs with both clients in test_serve.py and test_demo.py; here, the adapter's own contract."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import KafkaError as LibError  # noqa: E402
from kafka import TopicPartition  # noqa: E402
from kafka.errors import CommitFailedError, KafkaError, KafkaTimeoutError, MessageSizeTooLargeError  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402
from kafka_broker import TansuProxy  # noqa: E402
from topics import create_topics, fresh, produce, read_topic  # noqa: E402

from service.config import ServeConfig  # noqa: E402
from service.confluent_io import ConfluentConsumer, ConfluentProducer, Delivered, as_kafka_error  # noqa: E402
from service.kafka_io import (librdkafka_consumer_settings, librdkafka_producer_settings, make_consumer,  # noqa: E402
                              make_producer)


@pytest.mark.parametrize("code, expected", [
    (LibError.ILLEGAL_GENERATION, CommitFailedError), (LibError.REBALANCE_IN_PROGRESS, CommitFailedError),
    (LibError.UNKNOWN_MEMBER_ID, CommitFailedError), (LibError.MSG_SIZE_TOO_LARGE, MessageSizeTooLargeError),
    (LibError._MSG_TIMED_OUT, KafkaTimeoutError), (LibError._ALL_BROKERS_DOWN, KafkaError)])
def test_librdkafka_errors_become_the_classes_serve_handles(code, expected):
    error = as_kafka_error(LibError(code))
    assert type(error) is expected and LibError(code).name() in str(error)


def test_serve_options_are_spelled_for_librdkafka():
    config = ServeConfig(bootstrap_servers="a:9093,b:9093", security_protocol="SASL_SSL",
                         sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="svc", sasl_plain_password="pw",
                         ssl_cafile="/ca.pem", ssl_check_hostname=False, group_id="g", linger_ms=7,
                         compression_type="zstd", enable_idempotence=True)
    consumer, producer = librdkafka_consumer_settings(config), librdkafka_producer_settings(config)
    assert consumer["bootstrap.servers"] == "a:9093,b:9093" and consumer["group.id"] == "g"
    assert consumer["enable.auto.commit"] is False and consumer["enable.auto.offset.store"] is False
    for settings in (consumer, producer):
        assert settings["security.protocol"] == "SASL_SSL" and settings["sasl.mechanisms"] == "SCRAM-SHA-512"
        assert (settings["sasl.username"], settings["sasl.password"]) == ("svc", "pw")
        assert settings["ssl.ca.location"] == "/ca.pem" and settings["ssl.endpoint.identification.algorithm"] == "none"
    assert producer["acks"] == "all" and producer["linger.ms"] == 7 and producer["compression.type"] == "zstd"
    assert producer["enable.idempotence"] is True


def test_produce_poll_commit_through_a_real_broker(kafka):
    source, group = fresh("confluent-in", "confluent-group")
    create_topics(kafka, source)
    acked = produce(kafka, source, [f"line {i}".encode() for i in range(30)], keys=[b"k"] * 30)
    config = ServeConfig(bootstrap_servers=kafka.bootstrap, input_topic=source, group_id=group,
                         kafka_client="confluent", enable_idempotence=False, session_timeout_ms=6000)
    consumer = make_consumer(config)
    assert isinstance(consumer, ConfluentConsumer)
    records = []
    for _ in range(100):
        batches = consumer.poll(timeout_ms=200, max_records=7)
        assert all(len(batch) <= 7 for batch in batches.values())
        records += [r for batch in batches.values() for r in batch]
        if len(records) >= len(acked):
            break
    assert [(r.partition, r.offset) for r in records] == acked
    first = records[0]
    assert (first.topic, first.key, first.value, first.headers) == (source, b"k", b"line 0", [])
    assert first.timestamp > 0
    tp = TopicPartition(source, 0)
    assert consumer.assignment() == {tp} and consumer.highwater(tp) == len(acked)
    consumer.commit({tp: OffsetAndMetadata(len(acked), "", -1)})
    assert consumer.committed(tp) == len(acked) and consumer.reachable
    consumer.close()


def test_delivery_reports_where_each_record_landed_and_refusals(kafka):
    target, = fresh("confluent-out")
    create_topics(kafka, target)
    producer = make_producer(ServeConfig(bootstrap_servers=kafka.bootstrap, kafka_client="confluent",
                                         enable_idempotence=False))
    assert isinstance(producer, ConfluentProducer)
    futures = [producer.send(target, value=b"v%d" % i, key=b"k", headers=[("h", b"1")]) for i in range(5)]
    producer.flush(timeout=10)
    assert all(f.is_done and f.succeeded() for f in futures)
    assert [f.get(timeout=1) for f in futures] == [Delivered(target, 0, i) for i in range(5)]
    record = read_topic(kafka, target, 5)[0]
    assert (record.key, record.value, record.headers) == (b"k", b"v0", [("h", b"1")])
    with pytest.raises(MessageSizeTooLargeError):  # over message.max.bytes: refused before it is sent
        producer.send(target, value=b"x" * (5 * 1024 * 1024))
    producer.close()


def test_a_commit_with_the_coordinator_gone_times_out_and_lands_once_it_is_back(kafka):
    """librdkafka's synchronous commit has no timeout of its own: with the coordinator gone it would
    hold serve's loop (and /readyz) for the whole outage. The adapter gives up after timeout_ms, as
    kafka-python does, and the retry after the outage commits, in order."""
    source, group = fresh("confluent-outage-in", "confluent-outage-group")
    create_topics(kafka, source)
    acked = produce(kafka, source, [b"line %d" % i for i in range(10)])
    proxy = TansuProxy(kafka.bootstrap).start()
    consumer = make_consumer(ServeConfig(bootstrap_servers=proxy.bootstrap, input_topic=source, group_id=group,
                                         kafka_client="confluent", session_timeout_ms=6000))
    tp = TopicPartition(source, 0)
    try:
        records = []
        for _ in range(100):
            records += [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
            if len(records) >= len(acked):
                break
        consumer.commit({tp: OffsetAndMetadata(5, "", -1)}, timeout_ms=10_000)
        proxy.stop()
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            consumer.commit({tp: OffsetAndMetadata(10, "", -1)}, timeout_ms=1_000)
        assert time.monotonic() - started < 5, "the commit must give up near its timeout"
        assert not consumer.reachable
        proxy.start()
        deadline = time.monotonic() + 60
        while True:  # as serve: a commit refused because the group moved on is retried after a rejoin
            try:
                consumer.commit({tp: OffsetAndMetadata(10, "", -1)}, timeout_ms=10_000)
                break
            except CommitFailedError:
                assert time.monotonic() < deadline
                consumer.poll(timeout_ms=500)
        assert consumer.committed(tp) == 10 and consumer.reachable
    finally:
        consumer.close()
        proxy.stop()
