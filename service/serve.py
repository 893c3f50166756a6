"""`logdistill serve`: classify a Kafka topic into a results topic, at least once.

One batch at a time, never overlapping:

    poll ─► unwrap + classify ─► produce results / dead letters ─► await every ack ─► commit

Offsets are committed only after every output of the batch is acknowledged, so a crash
anywhere replays the batch (duplicates, never loss). Kafka errors never end the process:
produce and commit are retried with exponential backoff, and nothing new is polled until
the batch in hand is through. SIGTERM/SIGINT: the batch in hand is finished, produced and
committed, then the clients close and the process exits 0 (1 if the broker stays away past
--drain-timeout-s; that batch is then simply not committed and will be redelivered).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace

from kafka.errors import (CommitFailedError, IllegalGenerationError, IllegalStateError, KafkaError,
                          KafkaTimeoutError, MessageSizeTooLargeError, RebalanceInProgressError,
                          RecordListTooLargeError, UnknownMemberIdError)

from service.cascade import Escalator, shrink
from service.classifier import Classification, Classifier, LineError, preview
from service.confidence import BOTH, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, EscalationPolicy
from service.config import ServeConfig
from service.consuming import Backoff, first_offsets, next_offsets
from service.kafka_io import (CLOSE_TIMEOUT_MS, COMMIT_TIMEOUT_MS, consumer_lag, coordinator_reachable,
                              make_consumer, make_producer)
from service.metrics import Health, ServeMetrics
from service.novelty import NoveltyTracker
from service.records import ResultEncoder, dead_letter, unwrap

log = logging.getLogger("logdistill.serve")

# The group moved on without us (rebalance, eviction): our commit is refused for good.
REBALANCED = (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError)
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)
FLUSH_TIMEOUT_S = 60  # > the producer's delivery timeout: every future is done by then
FLUSH_SLICE_S = 1.0  # how often a long flush (a broker outage) updates /healthz, /readyz and the drain deadline


class DrainTimeout(Exception):
    """Shutdown was requested and the batch in hand could not be finished in time."""


class Shutdown:
    """Set by SIGTERM/SIGINT or stop(). Retry waits wake up early, then run against a deadline."""

    def __init__(self, drain_timeout_s: float = 25.0):
        self.drain_timeout_s = drain_timeout_s
        self.event = threading.Event()
        self.deadline: float | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, *_signal_args) -> None:
        if self.requested:
            return
        self.deadline = time.monotonic() + self.drain_timeout_s
        self.event.set()
        log.info("shutdown requested: finishing the batch in hand")

    def wait(self, delay: float) -> None:
        """Sleep before a retry; during shutdown, only while the drain deadline allows."""
        if not self.requested:
            self.event.wait(delay)
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DrainTimeout(f"batch not finished {self.drain_timeout_s:g} s after shutdown was requested")
        time.sleep(min(delay, remaining))


@dataclass
class Output:
    """One record to produce for one input message."""
    topic: str
    key: bytes | None
    value: bytes
    headers: list
    message: object  # the kafka ConsumerRecord it answers
    error: LineError | None = None  # set for a dead letter
    escalation: bool = False  # a copy for the teacher (cascade.py), not the input's own output

    @property
    def is_result(self) -> bool:
        return self.error is None and not self.escalation


class Server:
    def __init__(self, config: ServeConfig, classifier: Classifier, consumer, producer,
                 metrics: ServeMetrics | None = None, health: Health | None = None,
                 shutdown: Shutdown | None = None, reloader=None):
        self.config = config
        # The cascade's one decision (confidence.py), from the serve settings, for every model served.
        self.policy = EscalationPolicy(config.low_confidence, config.max_ood)
        classifier.policy = self.policy
        self.classifier = classifier
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics or ServeMetrics()
        self.health = health or Health()
        self.shutdown = shutdown or Shutdown(config.drain_timeout_s)
        self.model_version = classifier.model_version
        self.reloader = reloader  # reload.py: checked between batches; None: the model never changes
        self.escalator = Escalator.from_config(config)  # cascade.py; None: off
        self.novelty = NoveltyTracker.for_classifier(classifier, self.metrics.template_novelty)
        self._poll_backoff = self._backoff()
        self._committed: dict = {}  # {TopicPartition: next offset} as last committed, for the lag gauge

    def stop(self) -> None:
        self.shutdown.request()

    def run(self) -> int:
        """Serve until stopped. 0: drained cleanly; 1: the last batch could not be finished."""
        code = 0
        try:
            while not self.shutdown.requested:
                self.health.beat()
                self.between_batches()
                records = self.poll()
                if records:
                    self.process(records)
        except DrainTimeout as exc:
            log.error("%s; exiting without committing it (it will be redelivered)", exc)
            code = 1
        finally:
            self.health.ready = False
            self.close()
        log.info("stopped")
        return code

    # One batch -----------------------------------------------------------------------

    def poll(self) -> list:
        try:
            batches = self.consumer.poll(timeout_ms=self.config.poll_timeout_ms,
                                         max_records=self.config.max_poll_records)
        except KafkaError as exc:
            self._failed("poll", exc)
            self.shutdown.wait(self._poll_backoff.next())
            return []
        self._poll_backoff.reset()
        self._set_ready(coordinator_reachable(self.consumer, self.producer))
        return [record for tp in sorted(batches) for record in batches[tp]]

    def process(self, records: list) -> None:
        self.metrics.messages.inc(len(records))
        self.metrics.batch_size.observe(len(records))
        outputs = self.classify(records)
        self.deliver(outputs)
        self.metrics.observe_lag([record.timestamp for record in records])
        self.commit(records)

    def classify(self, records: list) -> list[Output]:
        unwrapped = [unwrap(record.value, self.config.max_message_bytes) for record in records]
        raws = [u.raw for u in unwrapped if u.error is None]
        start = time.perf_counter()
        results = iter(self.classify_isolating(raws))
        self.metrics.observe_classification(time.perf_counter() - start, len(raws))
        outputs, classified = [], []
        encoder = ResultEncoder(self.model_version)  # per batch: lines of a template share its Answer
        for record, u in zip(records, unwrapped):
            result = u.error or next(results)
            if not isinstance(result, LineError):
                classified.append(result)
            output = self.output_for(record, result, u.kubernetes, encoder)
            if output is not None:
                outputs.append(output)
            escalation = self.escalation_for(record, result, u.kubernetes)
            if escalation is not None:
                outputs.append(escalation)
        self.count_classified(classified)
        return outputs

    def count_classified(self, results: list[Classification]) -> None:
        """The per-line counters, added once per batch (a labelled counter costs ~1 µs per call)."""
        for label, n in Counter(r.label for r in results).items():
            self.metrics.lines.labels(label).inc(n)
        for template, n in Counter(r.template for r in results).items():
            self.novelty.observe(template, n)
        for reason, n in Counter(r.escalation_reason for r in results if r.escalate).items():
            # the policy's reason says which counters these lines count in
            self.metrics.escalated_lines.labels(reason).inc(n)
            if reason in (LOW_CONFIDENCE, BOTH):
                self.metrics.low_confidence.inc(n)
            if reason in (OUT_OF_DISTRIBUTION, BOTH):
                self.metrics.out_of_distribution.inc(n)

    def classify_isolating(self, raws: list[bytes]) -> list[Classification | LineError]:
        """The batch in one call. Bad lines come back as LineErrors, so an exception here is a bug
        meeting some input: then each line alone, and a line that still fails becomes a dead letter.
        Crashing instead would replay the same batch after every restart: a crash loop."""
        try:
            return self.classifier.classify_raw(raws)
        except Exception:
            log.exception("classifying a batch of %d lines failed; classifying them one by one", len(raws))
            return [self._classify_one(raw) for raw in raws]

    def _classify_one(self, raw: bytes) -> Classification | LineError:
        try:
            return self.classifier.classify_raw([raw])[0]
        except Exception as exc:
            return LineError("classify_failed", f"the classifier failed on this line: {type(exc).__name__}: {exc}",
                             preview(raw))

    def output_for(self, record, result: Classification | LineError, kubernetes: dict | None,
                   encoder: ResultEncoder) -> Output | None:
        if isinstance(result, LineError):
            return self.dead_letter(record, result)
        if self.config.only_problems and result.label == self.config.normal_label:
            return None  # counted, committed with the batch, not produced
        return Output(self.config.output_topic, record.key, encoder.encode(record, result, kubernetes), [], record)

    def escalation_for(self, record, result: Classification | LineError, kubernetes: dict | None) -> Output | None:
        """escalate=true: a copy for the teacher, delivered (and acknowledged) with the batch."""
        if self.escalator is None or isinstance(result, LineError):
            return None
        escalation = self.escalator.escalate(record, result, kubernetes, self.model_version)
        if escalation is None:
            return None
        key, value = escalation
        return Output(self.escalator.topic, key, value, [], record, escalation=True)

    def dead_letter(self, record, error: LineError, max_bytes: int | None = None) -> Output:
        value, headers = dead_letter(record, error, self.model_version,
                                     self.config.dlq_max_bytes if max_bytes is None else max_bytes)
        return Output(self.config.dlq_topic, record.key, value, headers, record, error)

    # Delivery and commit, each retried until it succeeds -------------------------------

    def deliver(self, outputs: list[Output]) -> None:
        """Produce every output and wait for every acknowledgement, resending what failed."""
        backoff = self._backoff()
        pending = outputs
        while pending:
            pending, error = self._send(pending)
            if pending:
                self._failed("produce", error, f"{len(pending)} record(s) to resend")
                self.shutdown.wait(backoff.next())

    def _send(self, outputs: list[Output]) -> tuple[list[Output], Exception | None]:
        """One attempt: (outputs still to send, the last error seen)."""
        sent, unsent, error = [], [], None
        for i, out in enumerate(outputs):
            try:
                sent.append((out, self.producer.send(out.topic, value=out.value, key=out.key,
                                                     headers=out.headers)))
            except TOO_LARGE as exc:  # refused before sending: too large for this producer
                unsent.append(self._smaller(out, exc))
                error = exc
            except KafkaError as exc:  # metadata timeout: the broker is away, the rest would wait too
                unsent.extend(outputs[i:])
                error = exc
                break
        try:
            self._flush()
        except KafkaTimeoutError as exc:
            error = exc
        failed = []
        for out, future in sent:
            if future.succeeded():
                self._count_delivered(out)
                continue
            exc = future.exception if future.is_done else KafkaTimeoutError("not acknowledged in time")
            failed.append(self._smaller(out, exc) if isinstance(exc, TOO_LARGE) else out)
            error = exc
        return failed + unsent, error

    def _flush(self) -> None:
        """producer.flush(), in slices. During an outage a flush lasts the producer's whole delivery
        timeout; meanwhile the loop still beats (/healthz), /readyz follows the consumer's view of the
        cluster, and a shutdown's drain deadline is enforced."""
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while True:
            try:
                self.producer.flush(timeout=FLUSH_SLICE_S)
                return
            except KafkaTimeoutError:
                if time.monotonic() >= deadline:
                    raise
            self.health.beat()
            self._set_ready(coordinator_reachable(self.consumer, self.producer))
            self.shutdown.wait(0)  # raises DrainTimeout once a shutdown's deadline has passed

    def _count_delivered(self, out: Output) -> None:
        """Counted once acknowledged, as what was finally sent: a result the broker refused as too
        large counts as a dead letter, and a dead letter cut down and resent counts once."""
        if out.escalation:
            self.metrics.escalations.inc()
        elif out.is_result:
            self.metrics.results.inc()
        else:
            self.metrics.dead_letters.labels(out.error.reason).inc()

    def _smaller(self, out: Output, exc: Exception) -> Output:
        """A record the broker will never take as it is: a result becomes a dead letter, a dead
        letter is cut in half (its `truncated` header says so). Retrying unchanged would wedge."""
        log.warning("%s rejected as too large (%s): %s", out.topic, type(exc).__name__,
                    "sending the input to the dead-letter topic" if out.is_result else "cutting it in half")
        if out.escalation:  # cascade.py keeps them small; under a lower broker limit, a shorter example line
            return replace(out, value=shrink(out.value))
        if out.is_result:
            return self.dead_letter(out.message, LineError("produce_failed", f"result too large: {exc}", ""))
        return self.dead_letter(out.message, out.error, max_bytes=len(out.value) // 2)

    def commit(self, records: list) -> None:
        offsets = next_offsets(records)
        backoff = self._backoff()
        while True:
            try:
                self.consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
                self.update_lag(offsets)
                return
            except REBALANCED as exc:
                log.warning("commit refused (%s): the group rebalanced; rewinding %d partition(s) so this "
                            "batch is processed again", type(exc).__name__, len(offsets))
                self.rewind(records)
                return
            except KafkaError as exc:
                self._failed("commit", exc)
                self.shutdown.wait(backoff.next())

    def rewind(self, records: list) -> None:
        """Seek back to the batch's first offsets. kafka-python keeps a partition's position across a
        rebalance that leaves it with us, so without this the next commit would skip the batch."""
        self.metrics.redelivery_rewinds.inc()
        for tp, first in first_offsets(records).items():
            try:
                self.consumer.seek(tp, first)
            except (IllegalStateError, ValueError):
                pass  # no longer ours: its new owner starts from the last committed offset

    def update_lag(self, offsets: dict) -> None:
        """Consumer lag of the assigned partitions. A revoked partition's last commit is forgotten:
        if the partition came back later, that old offset would overstate its lag."""
        assigned = self.consumer.assignment()
        self._committed.update({tp: meta.offset for tp, meta in offsets.items()})
        self._committed = {tp: offset for tp, offset in self._committed.items() if tp in assigned}
        self.metrics.set_consumer_lag(consumer_lag(self.consumer, self._committed))

    # Model changes ----------------------------------------------------------------------

    def between_batches(self) -> None:
        """The only place the model changes: every batch is classified, and labelled, by one model."""
        new = self.reloader.check() if self.reloader is not None else None
        if new is not None:
            self.use_classifier(new)

    def use_classifier(self, classifier: Classifier) -> None:
        classifier.policy = self.policy
        self.classifier = classifier
        self.model_version = classifier.model_version
        self.metrics.set_model(classifier.model_version, classifier.labels, classifier.cache)
        self.novelty = NoveltyTracker.for_classifier(classifier, self.metrics.template_novelty)
        if self.escalator is not None:
            self.escalator.reset()

    # Housekeeping ---------------------------------------------------------------------

    def _backoff(self) -> Backoff:
        return Backoff(self.config.retry_backoff_initial_s, self.config.retry_backoff_max_s)

    def _set_ready(self, ready: bool) -> None:
        if ready != self.health.ready:
            if ready:
                log.info("Kafka reachable: ready")
            else:
                log.warning("Kafka group coordinator unreachable: not ready (the client keeps reconnecting)")
        self.health.ready = ready

    def _failed(self, operation: str, exc: Exception | None, detail: str = "") -> None:
        self.metrics.kafka_errors.labels(operation).inc()
        self.health.ready = False
        self.health.beat()  # retrying is alive: /healthz stays 200, /readyz says 503
        log.warning("%s failed (%s: %s)%s; retrying", operation, type(exc).__name__, exc,
                    f", {detail}" if detail else "")

    def close(self) -> None:
        close_consumer = lambda: self.consumer.close(autocommit=False, timeout_ms=CLOSE_TIMEOUT_MS)  # noqa: E731
        for name, close in (("consumer", close_consumer),
                            ("producer", lambda: self.producer.close(timeout=5))):
            try:
                close()
            except Exception as exc:  # closing is best effort: nothing uncommitted is lost by it
                log.warning("closing the %s: %s", name, exc)


# Process wiring -------------------------------------------------------------------------

def connect(config: ServeConfig, shutdown: Shutdown, metrics: ServeMetrics):
    """(consumer, producer), retrying while the brokers are unreachable; None if stopped first."""
    backoff = Backoff(config.retry_backoff_initial_s, config.retry_backoff_max_s)
    consumer = producer = None
    while not shutdown.requested:
        try:
            consumer = consumer or make_consumer(config)
            producer = producer or make_producer(config)
            return consumer, producer
        except KafkaError as exc:
            metrics.kafka_errors.labels("connect").inc()
            log.warning("cannot reach Kafka at %s (%s: %s); retrying", config.bootstrap_servers,
                        type(exc).__name__, exc)
            shutdown.event.wait(backoff.next())
    for client in (consumer, producer):
        if client is not None:
            client.close()
    return None


def install_signal_handlers(shutdown: Shutdown) -> None:
    def handle(signum, _frame):
        if shutdown.requested:  # a second signal: stop now; the uncommitted batch is redelivered
            log.warning("second %s: exiting without draining", signal.Signals(signum).name)
            raise SystemExit(1)
        shutdown.request()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(args) -> int:
    """The `serve` command: config → model → metrics → Kafka → loop."""
    from service.artifact import ArtifactError
    from service.config import ConfigError, load_config
    from service.feedback import FeedbackLoop
    from service.metrics import MetricsServer
    from service.reload import ModelReloader

    try:
        config = load_config(args)
    except (ConfigError, OSError) as exc:
        print(f"logdistill serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python warns on every reconnect attempt during an outage; our own log says it once.
    logging.getLogger("kafka").setLevel(max(logging.ERROR, logging.getLogger().level))
    shutdown = Shutdown(config.drain_timeout_s)
    install_signal_handlers(shutdown)
    metrics, health = ServeMetrics(), Health()
    # Watching starts before the first load, so a model published meanwhile is not missed.
    reloader = ModelReloader(config.model, lambda path: Classifier.from_dir(
        path, threads=config.threads, batch_size=config.batch_size, cache_size=config.cache_size,
        max_line_bytes=config.max_line_bytes), config.reload_interval_s, metrics)
    try:
        classifier = reloader.load(config.model)
    except ArtifactError as exc:
        print(f"logdistill serve: {exc}", file=sys.stderr)
        return 2
    metrics.set_model(classifier.model_version, classifier.labels, classifier.cache)
    http = None
    if config.metrics_port:
        http = MetricsServer(metrics, health, config.metrics_host, config.metrics_port).start()
        log.info("metrics on http://%s:%d/metrics (/healthz, /readyz)", config.metrics_host, http.port)
    try:
        clients = connect(config, shutdown, metrics)
        if clients is None:
            return 0
        log.info("serving %s -> %s (dead letters: %s), group %s, model %s", config.input_topic,
                 config.output_topic, config.dlq_topic, config.group_id, classifier.model_version)
        server = Server(config, classifier, *clients, metrics=metrics, health=health, shutdown=shutdown,
                        reloader=reloader)
        feedback = FeedbackLoop(config, metrics, lambda: server.classifier).start() if config.feedback_topic else None
        try:
            return server.run()
        finally:
            if feedback is not None:
                feedback.stop()
    finally:
        if http is not None:
            http.close()
