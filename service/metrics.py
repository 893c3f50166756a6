"""Prometheus metrics and the health endpoints of `logdistill serve`, on one HTTP port.

    /metrics   Prometheus text format
    /healthz   200 while the serve loop is alive (it beats on every poll and every retry)
    /readyz    200 once the model is loaded and the last Kafka operation succeeded;
               503 during a broker outage, so traffic and alerts see it, while the
               process itself stays up and keeps retrying

Each ServeMetrics has its own registry: several servers can live in one process (tests).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

# Per-line classification: a cache hit is ~10 µs, a model call a few ms; 0.1–50 ms resolves both.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
DEAD_LETTER_REASONS = ("invalid_utf8", "empty", "too_long", "no_message", "produce_failed", "classify_failed")
KAFKA_OPERATIONS = ("poll", "produce", "commit", "connect")
ESCALATION_REASONS = ("low_confidence", "out_of_distribution", "both")  # service/confidence.py


class ServeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.classify_latency = Histogram(
            "logdistill_classify_latency_seconds", "Classification time per line (batch time / lines)",
            buckets=LATENCY_BUCKETS, registry=r)
        self.end_to_end_lag = Histogram(
            "logdistill_end_to_end_lag_seconds", "Now minus the input message's Kafka timestamp, "
            "when its result or dead letter is acknowledged", buckets=LAG_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "logdistill_batch_size", "Messages per polled batch", buckets=BATCH_BUCKETS, registry=r)
        self.lines = Counter("logdistill_lines", "Classified lines by label (--only-problems included)",
                             ["label"], registry=r)
        self.low_confidence = Counter("logdistill_low_confidence", "Classified lines under the confidence "
                                      "threshold", registry=r)
        # The cascade's decision per line (service/confidence.py): escalated, and why; and the lines that look
        # like nothing the student learnt (their share rising is drift).
        self.escalated_lines = Counter("logdistill_escalated_lines", "Classified lines with escalate=true, by "
                                       "reason: low_confidence, out_of_distribution or both", ["reason"], registry=r)
        self.out_of_distribution = Counter("logdistill_out_of_distribution_lines", "Classified lines whose "
                                           "out-of-distribution score is over --max-ood", registry=r)
        self.dead_letters = Counter("logdistill_dead_letters", "Messages sent to the dead-letter topic",
                                    ["reason"], registry=r)
        self.messages = Counter("logdistill_messages", "Messages consumed", registry=r)
        self.results = Counter("logdistill_results", "Results produced to the output topic", registry=r)
        self.redelivery_rewinds = Counter(
            "logdistill_rewinds", "Batches rewound after a failed commit (a rebalance): they are "
            "processed again, so their results may be duplicated", registry=r)
        self.kafka_errors = Counter("logdistill_kafka_errors", "Kafka errors, each followed by a retry",
                                    ["operation"], registry=r)
        self.cache_hit_ratio = Gauge("logdistill_cache_hit_ratio", "Template cache hit ratio since start",
                                     registry=r)
        self.consumer_lag = Gauge(
            "logdistill_consumer_lag", "Records not yet committed, per assigned partition: the high "
            "watermark of the last fetch minus the committed offset", ["topic", "partition"], registry=r)
        self.model = Info("logdistill_model", "The model being served", registry=r)
        # Model updates and the teacher loop (reload.py, cascade.py, feedback.py, novelty.py)
        self.model_reloads = Counter(
            "logdistill_model_reloads", "New models found in the model directory: ok (now served) or rejected "
            "(failed verification or loading; the previous model keeps serving)", ["result"], registry=r)
        self.escalations = Counter("logdistill_escalations", "Results with escalate=true sent to the escalation "
                                   "topic for teacher labelling (once per template and model)", registry=r)
        self.feedback = Counter("logdistill_feedback", "Teacher answers from the feedback topic, by whether the "
                                "served student's label agrees", ["result"], registry=r)
        self.online_accuracy = Gauge("logdistill_online_accuracy", "Share of the most recent teacher answers "
                                     "the student agrees with (NaN before the first)", registry=r)
        self.template_novelty = Counter(
            "logdistill_template_novelty", "Classified lines by whether their template was in the model's "
            "training set (drift signal; stays 0 for artifacts without templates.json)", ["template"], registry=r)
        self.online_accuracy.set(float("nan"))
        for counter, values in ((self.model_reloads, ("ok", "rejected")), (self.feedback, ("agree", "disagree")),
                                (self.template_novelty, ("seen", "novel")), (self.dead_letters, ("bad_feedback",)),
                                (self.escalated_lines, ESCALATION_REASONS)):
            for value in values:  # every series present from the start, as below
                counter.labels(value)
        for reason in DEAD_LETTER_REASONS:  # so rate() and alerts see 0 rather than no series
            self.dead_letters.labels(reason)
        for operation in KAFKA_OPERATIONS:
            self.kafka_errors.labels(operation)

    def set_model(self, version: str, labels: list[str], cache) -> None:
        self.model.info({"version": version})
        for label in labels:
            self.lines.labels(label)
        self.cache_hit_ratio.set_function(lambda: cache.hit_ratio)

    def observe_classification(self, seconds: float, lines: int) -> None:
        """One batch's time, spread over its lines: the runtime classifies batches, not lines."""
        if lines:
            per_line = seconds / lines
            for _ in range(lines):
                self.classify_latency.observe(per_line)

    def observe_lag(self, timestamps_ms: list[int]) -> None:
        now_ms = time.time() * 1000
        for ts in timestamps_ms:
            if ts is not None and ts >= 0:
                self.end_to_end_lag.observe(max(0.0, now_ms - ts) / 1000)

    def set_consumer_lag(self, lags: dict) -> None:
        """{TopicPartition: records behind}. Replaces every series, so a partition that moved to
        another consumer (rebalance) stops being reported here rather than freezing at its last value."""
        self.consumer_lag.clear()
        for tp, lag in lags.items():
            self.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Health:
    def __init__(self, stale_after_s: float = 120.0):
        self.stale_after_s = stale_after_s
        self.ready = False
        self._beat = time.monotonic()

    def beat(self) -> None:
        self._beat = time.monotonic()

    @property
    def live(self) -> bool:
        return time.monotonic() - self._beat < self.stale_after_s


class MetricsServer:
    """/metrics, /healthz, /readyz on a background thread."""

    def __init__(self, metrics: ServeMetrics, health: Health, host: str = "0.0.0.0", port: int = 9108):
        handler = type("Handler", (_Handler,), {"metrics": metrics, "health": health})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> "MetricsServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    metrics: ServeMetrics
    health: Health

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send_status(self.health.live)
        elif path == "/readyz":
            self._send_status(self.health.ready and self.health.live)
        else:
            self._send(404, b"not found: try /metrics, /healthz, /readyz\n")

    def _send_status(self, ok: bool) -> None:
        self._send(200 if ok else 503, b"ok\n" if ok else b"not ok\n")

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # scrapes every few seconds: keep stderr quiet
        pass
