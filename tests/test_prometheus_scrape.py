"""A real Prometheus server scrapes a real `logdistill serve` (tansu broker, tiny model), on loopback.

What is proved: the exposition is something Prometheus ingests (not only something our own parser
reads), the counters it stores match what went through Kafka, and the dashboard queries work on it:
a histogram_quantile over rate-style increase() of the latency buckets gives a finite value inside
the bucket range.

Prometheus is the Debian package (`make test` installs it: `apt-get install --no-install-recommends
prometheus`); $PROMETHEUS_BIN overrides where it is looked for.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("kafka")

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka_broker import SESSION_TIMEOUT_MS, free_port  # noqa: E402
from topics import wait_until  # noqa: E402

from service.metrics import LATENCY_BUCKETS  # noqa: E402

PARTITIONS = 2
GOOD_LINES = [
    "E0612 10:01:02.{i:06d} 1 reflector.go:138] failed to list *v1.Pod: dial tcp 10.0.{j}.3:443: connect: "
    "connection refused",
    "081109 2{j}3518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_{i} src: /10.250.{j}.6:54106",
    '{{"level": "error", "msg": "query failed", "error": "deadlock detected on table orders_{j}", "req": {i}}}',
    "Memory cgroup out of memory: Killed process {i} (java) total-vm:{j}kB",
    "GET /api/v1/items/{i} 200 {j}ms",
]
BAD_LINES = [b"caf\xe9 \xff\xfe not utf-8", b"", b'{"level": "error", "code": 7}']  # → dead letters


def prometheus_binary() -> str | None:
    return os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


@pytest.fixture(scope="module")
def broker(kafka):
    return kafka  # the session's tansu (conftest.py)


def http_json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Prometheus:
    """A throwaway Prometheus server: temp config and TSDB, loopback, 1 s scrapes of one target."""

    def __init__(self, binary: str, target: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        # scrape_timeout must not exceed scrape_interval (Prometheus refuses the config otherwise).
        config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                          "scrape_configs:\n  - job_name: logdistill\n"
                          f"    static_configs:\n      - targets: ['{target}']\n")
        self.log_path = workdir / "prometheus.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def query(self, promql: str) -> list[dict]:
        """Instant query → the result vector ([] while there is nothing to say)."""
        answer = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        if not answer or answer.get("status") != "success":
            return []
        return answer["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single sample of a query that yields one series, as a float (None: no series)."""
        result = self.query(promql)
        assert len(result) <= 1, f"{promql}: expected one series, got {result}"
        return float(result[0]["value"][1]) if result else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def committed(broker, topic: str, group: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)}
    finally:
        consumer.close()


def test_prometheus_scrapes_serve_and_answers_counter_and_quantile_queries(broker, tiny_model, logdistill_exe,
                                                                           tmp_path):
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("no prometheus binary: `make test` installs it (apt-get install --no-install-recommends "
                    "prometheus), which needs root or sudo; or set PROMETHEUS_BIN")
    model_dir, _ = tiny_model
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"logs-{suffix}", f"group-{suffix}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1), NewTopic(f"results-{suffix}", 1, 1),
                         NewTopic(f"dlq-{suffix}", 1, 1)])
    admin.close()

    metrics_port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen(
            [str(logdistill_exe), "serve", "--model", str(model_dir), "--bootstrap-servers", broker.bootstrap,
             "--input-topic", topic, "--output-topic", f"results-{suffix}", "--dlq-topic", f"dlq-{suffix}",
             "--group-id", group, "--no-enable-idempotence", "--session-timeout-ms", str(SESSION_TIMEOUT_MS),
             "--poll-timeout-ms", "200", "--max-poll-records", "50",
             "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)],
            stdout=log, stderr=subprocess.STDOUT)
    prometheus = None
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{metrics_port}/readyz") == 200, 60, "serve /readyz")
        (tmp_path / "prom").mkdir()
        prometheus = Prometheus(binary, f"127.0.0.1:{metrics_port}", tmp_path / "prom")
        # One scrape before any traffic, so increase() below has a zero to start from.
        wait_until(lambda: prometheus.value('up{job="logdistill"}') == 1, 60, "the target to be up")

        good = [GOOD_LINES[i % len(GOOD_LINES)].format(i=i, j=i % 7).encode() for i in range(300)]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, acks="all")
        futures = [producer.send(topic, value) for value in good + BAD_LINES]
        producer.flush()
        acked = [f.get(timeout=10) for f in futures]
        producer.close()
        ends = {p: 0 for p in range(PARTITIONS)}
        for md in acked:
            ends[md.partition] = max(ends[md.partition], md.offset + 1)
        wait_until(lambda: committed(broker, topic, group) == ends, 60, "every input offset committed")

        total = len(good) + len(BAD_LINES)
        # Until a scrape after the last batch has landed in the TSDB.
        wait_until(lambda: prometheus.value("sum(logdistill_messages_total)") == total, 30,
                   "Prometheus to see every message")
        assert prometheus.value("sum(logdistill_lines_total)") == len(good)
        assert prometheus.value("sum(logdistill_dead_letters_total)") == len(BAD_LINES)
        by_reason = {r["metric"]["reason"]: float(r["value"][1])
                     for r in prometheus.query("logdistill_dead_letters_total > 0")}
        assert by_reason == {"invalid_utf8": 1, "empty": 1, "no_message": 1}
        assert prometheus.value("sum(logdistill_results_total)") == len(good)
        assert prometheus.value("sum(logdistill_batch_size_sum)") == total
        assert prometheus.value("count(logdistill_model_info)") == 1
        # Lines rejected by the classifier itself (not UTF-8, empty) are timed too; unwrapping rejects are not.
        assert len(good) <= prometheus.value("sum(logdistill_classify_latency_seconds_count)") <= total
        assert 0 < prometheus.value("logdistill_cache_hit_ratio") < 1  # 5 templates, 300 lines

        top = LATENCY_BUCKETS[-1]  # a quantile past the last finite bucket reads as that bucket's bound
        for promql in (
                "histogram_quantile(0.5, sum by (le) (logdistill_classify_latency_seconds_bucket))",
                "histogram_quantile(0.99, sum by (le) (increase(logdistill_classify_latency_seconds_bucket[5m])))",
                "histogram_quantile(0.99, sum by (le) (increase(logdistill_end_to_end_lag_seconds_bucket[5m])))"):
            q = prometheus.value(promql)
            assert q is not None and math.isfinite(q), f"{promql} → {q}\n{prometheus.log()}"
            assert 0 < q <= (top if "latency" in promql else 900), f"{promql} → {q}"
    finally:
        if prometheus is not None:
            prometheus.stop()
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            code = serve.wait()
    assert code == 0, (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
