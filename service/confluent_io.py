"""confluent-kafka (librdkafka) behind the part of kafka-python's API that serve, its feedback loop
and `teach` use, so `--kafka-client confluent` changes the client and nothing else.

Same delivery rules, because the callers are the same code: serve produces a batch, flushes, reads
every record's delivery report, and only then commits the input offsets it names (explicitly,
auto-commit and auto offset store off). librdkafka's errors are raised as the kafka-python error
classes those callers already handle (a refused commit after a rebalance is a CommitFailedError,
a record too large a MessageSizeTooLargeError, an unacknowledged flush a KafkaTimeoutError).

Why: per message, librdkafka's consume is ~50x and its produce ~30x cheaper in Python-side CPU than
kafka-python's on this machine (bench/e2e.py, "Kafka client" table).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError as LibError, KafkaException, Producer
from confluent_kafka import TopicPartition as LibPartition
from kafka import TopicPartition
from kafka.errors import (CommitFailedError, IllegalStateError, KafkaError, KafkaTimeoutError,
                          MessageSizeTooLargeError)

# librdkafka error codes with a kafka-python meaning serve acts on.
REBALANCED = {LibError.ILLEGAL_GENERATION, LibError.UNKNOWN_MEMBER_ID, LibError.REBALANCE_IN_PROGRESS,
              LibError._ASSIGNMENT_LOST, LibError._STATE}
TOO_LARGE = {LibError.MSG_SIZE_TOO_LARGE}
TIMED_OUT = {LibError._TIMED_OUT, LibError._MSG_TIMED_OUT, LibError.REQUEST_TIMED_OUT}
UNREACHABLE = {LibError._ALL_BROKERS_DOWN, LibError._TRANSPORT, LibError._RESOLVE}
DEFAULT_MAX_RECORDS = 500
PROBE_INTERVAL_S = 2.0  # while marked unreachable, ask for metadata at most this often to see it back
PROBE_TIMEOUT_S = 0.5


def as_kafka_error(error: LibError) -> KafkaError:
    """A librdkafka error as the kafka-python class its callers catch."""
    code, text = error.code(), f"{error.name()}: {error.str()}"
    if code in REBALANCED:
        return CommitFailedError(text)
    if code in TOO_LARGE:
        return MessageSizeTooLargeError(text)
    if code in TIMED_OUT:
        return KafkaTimeoutError(text)
    return KafkaError(text)


def raised(exc: KafkaException) -> KafkaError:
    return as_kafka_error(exc.args[0]) if exc.args and isinstance(exc.args[0], LibError) else KafkaError(str(exc))


def in_background(call, *args) -> Future:
    """call(*args) on a daemon thread of its own; its outcome in the returned Future."""
    future = Future()

    def run():
        try:
            future.set_result(call(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, name="kafka-commit", daemon=True).start()
    return future


@dataclass(frozen=True, slots=True)
class Record:
    """A consumed message with kafka-python ConsumerRecord's field names."""
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)


class Reachability:
    """Whether a client can reach the cluster (serve's /readyz), from librdkafka's error callback: down
    on "all brokers down" or a transport error; up again on any success, or on a metadata probe that
    answers (a few a second at most, only while down: an idle stream brings no success to see)."""

    def __init__(self):
        self._reachable, self._next_probe, self._client = True, 0.0, None

    def on_error(self, error: LibError) -> None:  # librdkafka's error_cb, served by poll/consume/flush
        if error.code() in UNREACHABLE:
            self._reachable = False

    def succeeded(self) -> None:
        self._reachable = True

    @property
    def reachable(self) -> bool:
        if not self._reachable and self._client is not None and time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + PROBE_INTERVAL_S
            try:
                self._client.list_topics(timeout=PROBE_TIMEOUT_S)
                self._reachable = True
            except KafkaException:
                pass
        return self._reachable


class ConfluentConsumer(Reachability):
    def __init__(self, settings: dict, topics: list[str] | None = None):
        super().__init__()
        self._consumer = self._client = Consumer({**settings, "error_cb": self.on_error})
        self._pending_commit: Future | None = None
        if topics:
            self._consumer.subscribe(topics)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict:
        """{TopicPartition: [Record, ...]}, as kafka-python's poll: waits up to timeout_ms for a first
        message, then takes what is already fetched, up to max_records. (librdkafka's consume alone would
        wait for all max_records or the timeout: a second of latency on a quiet stream.)"""
        try:
            first = self._consumer.poll(timeout_ms / 1000)
            if first is None:
                return {}
            limit = (max_records or DEFAULT_MAX_RECORDS) - 1
            messages = [first, *(self._consumer.consume(num_messages=limit, timeout=0) if limit > 0 else [])]
        except KafkaException as exc:
            raise raised(exc) from None
        batches: dict = {}
        error = None
        for m in messages:
            if m.error() is not None:  # an event in the message stream, not a record
                if m.error().code() != LibError._PARTITION_EOF:
                    error = m.error()
                    self.on_error(error)
                continue
            self.succeeded()
            batches.setdefault(TopicPartition(m.topic(), m.partition()), []).append(
                Record(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(), m.headers() or []))
        # Records taken from librdkafka's queue are past its position: return them even beside an error,
        # or a later commit would skip them. The error alone is raised (serve backs off and polls again).
        if error is not None and not batches:
            raise as_kafka_error(error)
        return batches

    def commit(self, offsets: dict, timeout_ms: int | None = None) -> None:
        """{TopicPartition: OffsetAndMetadata}, synchronously; raises what the coordinator said, or
        KafkaTimeoutError after timeout_ms, as kafka-python does.

        librdkafka's synchronous commit has no timeout: with the coordinator gone it waits until it is
        back, and serve's loop (and /readyz) would wait with it. So the commit runs on a daemon thread
        (one stuck on an outage must not hold up exit) and is waited for here. A commit that timed out
        is still in flight; the caller's retry first waits for that one (and raises what it raises),
        so commits reach the broker one at a time, in order: an older one never lands after a newer."""
        partitions = [LibPartition(tp.topic, tp.partition, meta.offset) for tp, meta in offsets.items()]
        if self._pending_commit is None or self._pending_commit.done():
            self._pending_commit = in_background(self._commit_now, partitions)
            issued = True
        else:
            issued = False  # the earlier commit is still waiting for the coordinator
        try:
            self._pending_commit.result(timeout=None if timeout_ms is None else timeout_ms / 1000)
        except FutureTimeout:
            self._reachable = False
            raise KafkaTimeoutError(f"commit not answered within {timeout_ms} ms") from None
        if not issued:  # that was the earlier commit; now this one
            self.commit(offsets, timeout_ms)
            return
        self.succeeded()

    def _commit_now(self, partitions: list) -> None:
        try:
            result = self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            raise raised(exc) from None
        for partition in result or []:
            if partition.error is not None:
                raise as_kafka_error(partition.error)

    def committed(self, tp: TopicPartition) -> int | None:
        [partition] = self._consumer.committed([LibPartition(tp.topic, tp.partition)], timeout=10)
        return partition.offset if partition.offset >= 0 else None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        try:
            self._consumer.seek(LibPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:  # not (or no longer) assigned here
            raise IllegalStateError(str(exc)) from None

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        low, _ = self._consumer.get_watermark_offsets(LibPartition(tp.topic, tp.partition), timeout=10)
        self.seek(tp, low)

    def assignment(self) -> set:
        return {TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()}

    def highwater(self, tp: TopicPartition) -> int | None:
        """The high watermark of the last fetch (no request), as kafka-python's highwater()."""
        try:
            _, high = self._consumer.get_watermark_offsets(LibPartition(tp.topic, tp.partition), cached=True)
        except KafkaException:
            return None
        return high if high >= 0 else None

    def close(self, autocommit: bool = False, timeout_ms: int | None = None) -> None:
        if self._pending_commit is not None:  # not while a commit is inside librdkafka, if it can be helped
            try:
                self._pending_commit.result(timeout=(timeout_ms or 5_000) / 1000)
            except Exception:  # its outcome no longer matters: what it did not commit is redelivered
                pass
        self._consumer.close()  # auto-commit is off: nothing is committed here


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where a record landed, with kafka-python RecordMetadata's field names."""
    topic: str
    partition: int
    offset: int


class Delivery:
    """A produced record's outcome, with kafka-python FutureRecordMetadata's surface."""
    __slots__ = ("is_done", "exception", "value", "_producer", "_reachability")

    def __init__(self, producer: Producer, reachability: Reachability):
        self.is_done, self.exception, self.value = False, None, None
        self._producer, self._reachability = producer, reachability

    def report(self, error, message) -> None:  # librdkafka's delivery callback
        self.is_done = True
        if error is None:
            self.value = Delivered(message.topic(), message.partition(), message.offset())
            self._reachability.succeeded()
        else:
            self.exception = as_kafka_error(error)

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def get(self, timeout: float | None = None) -> Delivered:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_done:
            if deadline is not None and time.monotonic() >= deadline:
                raise KafkaTimeoutError("not acknowledged in time")
            self._producer.poll(0.05)
        if self.exception is not None:
            raise self.exception
        return self.value


class ConfluentProducer(Reachability):
    def __init__(self, settings: dict):
        super().__init__()
        self._producer = self._client = Producer({**settings, "error_cb": self.on_error})

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers=None) -> Delivery:
        delivery = Delivery(self._producer, self)
        for attempt in range(2):
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers or None,
                                       on_delivery=delivery.report)
                break
            except BufferError:  # the local queue is full: serve delivery reports, then once more
                if attempt:
                    raise KafkaTimeoutError("producer queue full") from None
                self._producer.poll(1.0)
            except KafkaException as exc:
                raise raised(exc) from None
        self._producer.poll(0)
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise KafkaTimeoutError(f"{left} record(s) not acknowledged within {timeout} s")

    def close(self, timeout: float | None = None) -> None:
        self._producer.flush(5 if timeout is None else timeout)
