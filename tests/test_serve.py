"""`logdistill serve` against a real Kafka-protocol broker (tansu, in memory) and a real tiny model.

What is proved, by reading the output and dead-letter topics back:
  - every input offset yields exactly one result or one dead letter, bad inputs with their reasons;
    the result fields; consumer lag per partition;
  - SIGTERM drains: exit 0, everything produced is committed, everything committed was produced;
  - SIGKILL mid-batch (results produced, not committed), then a restart: 0 records lost, and the
    duplicates that at-least-once allows are there and counted;
  - two consumers in one group split the partitions; when one is SIGKILLed the survivor takes
    over its partitions: 0 lost;
  - the broker unreachable mid-stream (tansu's proxy stopped, then started): the process stays up,
    /readyz says 503, and once it is back 0 records are lost;
  - the broker process really restarted (memory://: it comes back empty): the process stays up and
    classifies everything produced to the new cluster;
  - /metrics, /healthz, /readyz answer over HTTP with the counters.

"Lost" is always judged from the offsets the test producer was acknowledged for: each must have
an output. (tansu quirk: ListOffsets(latest) can answer the last batch's base offset rather than
the high watermark, so the tests never use end_offsets().)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from types import SimpleNamespace

import pytest

pytest.importorskip("kafka")
pytest.importorskip("prometheus_client")

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.errors import TopicAlreadyExistsError  # noqa: E402
from kafka_broker import BrokerError, TansuBroker, TansuProxy, free_port  # noqa: E402
from topics import wait_until  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from service.classifier import Classifier  # noqa: E402
from service.config import ConfigError, ServeConfig, load_config  # noqa: E402
from service.records import dead_letter_reason  # noqa: E402

SESSION_TIMEOUT_MS = 6000  # tansu holds a join for session_timeout/2: keep it short
INPUT_PARTITIONS = 2

TEMPLATES = [
    "E0612 10:01:02.{i:06d} 1 reflector.go:138] failed to list *v1.Pod: dial tcp 10.0.{j}.3:443: connect: connection refused",
    "2024-06-12T10:01:02.{i:06d}Z stdout F Started container app-{j} in pod web-{i}",
    '{{"level": "error", "msg": "query failed", "error": "deadlock detected on table orders_{j}", "req": {i}}}',
    "Back-off restarting failed container api-{j} in pod api-{i}",
    "Readiness probe failed: HTTP probe failed with statuscode: 503 (attempt {i})",
    "Memory cgroup out of memory: Killed process {i} (java) total-vm:{j}kB",
    "W0612 10:01:02.{i:06d} 1 warnings.go:70] x509: certificate has expired or is not yet valid (node-{j})",
    "GET /api/v1/items/{i} 200 {j}ms",
]


@pytest.fixture(params=["kafka-python", "confluent"])
def kafka_client(request) -> str:
    """serve's Kafka client (ServeConfig.kafka_client): every broker test runs with both."""
    if request.param == "confluent":
        pytest.importorskip("confluent_kafka")
    return request.param


def log_lines(n: int) -> list[bytes]:
    return [TEMPLATES[i % len(TEMPLATES)].format(i=i, j=i % 7).encode() for i in range(n)]


# Broker, topics, clients ---------------------------------------------------------------

@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    try:
        broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    except BrokerError as exc:
        pytest.skip(f"no tansu broker: {exc}")
    yield broker
    broker.stop(timeout_s=0.5)


@pytest.fixture
def names(kafka):
    """Fresh topics and group for one test (2 input partitions, 1 for each of the others)."""
    suffix = uuid.uuid4().hex[:8]
    n = SimpleNamespace(input=f"logs-{suffix}", output=f"results-{suffix}", dlq=f"dlq-{suffix}",
                        escalate=f"escalate-{suffix}", feedback=f"feedback-{suffix}", group=f"group-{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(n.input, INPUT_PARTITIONS, 1)] +
                            [NewTopic(topic, 1, 1) for topic in (n.output, n.dlq, n.escalate, n.feedback)])
    finally:
        admin.close()
    return n


def make_test_producer(kafka) -> KafkaProducer:
    # No idempotence against tansu (it can lose records across a broker restart with it on);
    # 4 MiB requests so the 2 MB message can be sent at all.
    return KafkaProducer(bootstrap_servers=kafka.bootstrap, enable_idempotence=False, acks="all",
                         linger_ms=5, max_request_size=4 * 1024 * 1024)


def produce(producer: KafkaProducer, topic: str, values: list, key: bytes | None = None) -> list[tuple[int, int]]:
    """Send and wait: the (partition, offset) the broker acknowledged for each value, in order."""
    futures = [producer.send(topic, value=v, key=key if v is not None else b"tombstone") for v in values]
    producer.flush()
    return [(md.partition, md.offset) for md in (f.get(timeout=10) for f in futures)]


class BackgroundProducer(threading.Thread):
    """Keeps producing while `serve` runs, so a signal lands mid-stream; stop() ends it early."""

    def __init__(self, kafka, topic: str, lines: list[bytes], chunk: int = 100, pause_s: float = 0.02):
        super().__init__(daemon=True)
        self.kafka, self.topic, self.lines, self.chunk, self.pause_s = kafka, topic, lines, chunk, pause_s
        self.acked: list[tuple[int, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        producer = make_test_producer(self.kafka)
        for start in range(0, len(self.lines), self.chunk):
            if self.stopped.is_set():
                break
            self.acked += produce(producer, self.topic, self.lines[start:start + self.chunk])
            time.sleep(self.pause_s)
        producer.close()

    def stop(self) -> list[tuple[int, int]]:
        """Stop after the chunk in hand; every (partition, offset) acknowledged."""
        self.stopped.set()
        self.join(60)
        return self.acked


class OutputReader:
    """Reads the result and dead-letter topics from the start; maps outputs to their input offsets."""

    def __init__(self, kafka, names):
        self.consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                                      fetch_max_bytes=8 * 1024 * 1024, max_partition_fetch_bytes=4 * 1024 * 1024)
        self.consumer.assign([TopicPartition(names.output, 0), TopicPartition(names.dlq, 0)])
        self.consumer.seek_to_beginning()
        self.names = names
        self.records: list = []

    def poll(self, timeout_ms: int = 200) -> int:
        for batch in self.consumer.poll(timeout_ms=timeout_ms).values():
            self.records.extend(batch)
        return len(self.records)

    def read_to_end(self, timeout_ms: int = 100) -> None:
        """Until a poll brings nothing new: poll() returns one fetch, which may be far behind."""
        while len(self.records) < self.poll(timeout_ms):
            pass

    def read_until_seen(self, expected: set, timeout_s: float = 30.0) -> None:
        """Until every expected source is seen, then on to the end of the topics so that extras show too.
        Called once `serve` has stopped: whatever it produced is acknowledged, hence readable."""
        deadline = time.monotonic() + timeout_s
        while not expected <= set(self.sources()) and time.monotonic() < deadline:
            self.poll()
        self.read_to_end()

    def sources(self) -> Counter:
        return Counter(source_of(r) for r in self.records)

    def dead_letters(self) -> dict:
        return {source_of(r): r for r in self.records if r.topic == self.names.dlq}

    def results(self) -> dict:
        return {source_of(r): json.loads(r.value) for r in self.records if r.topic == self.names.output}

    def close(self) -> None:
        self.consumer.close()


def source_of(record) -> tuple[int, int]:
    """The input (partition, offset) an output answers."""
    if record.headers and dead_letter_reason(record.headers):
        h = dead_letter_reason(record.headers)
        return int(h["source.partition"]), int(h["source.offset"])
    src = json.loads(record.value)["source"]
    return src["partition"], src["offset"]


def committed(kafka, names, partitions: int = INPUT_PARTITIONS) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=names.group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(names.input, p)) or 0 for p in range(partitions)}
    finally:
        consumer.close()


def ends(acked: list[tuple[int, int]], partitions: int = INPUT_PARTITIONS) -> dict[int, int]:
    """Next offset per partition after everything acknowledged (what a full commit reaches)."""
    end = {p: 0 for p in range(partitions)}
    for p, offset in acked:
        end[p] = max(end[p], offset + 1)
    return end


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def lag_partitions(port: int, topic: str) -> set[int]:
    """The input partitions a running `serve` reports consumer lag for: the ones assigned to it."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return set()
    return {int(sample.labels["partition"]) for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "logdistill_consumer_lag" and sample.labels["topic"] == topic}


def metric(text: str, name: str, **labels) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise KeyError(f"{name}{labels} not in the scrape")


# In-process: the wire format, every offset accounted for, bad inputs, metrics -------------

def test_every_offset_yields_one_result_or_one_dead_letter(kafka, names, tiny_model, kafka_client):
    from service.kafka_io import make_consumer, make_producer
    from service.metrics import Health, MetricsServer, ServeMetrics
    from service.serve import Server

    good = log_lines(120)
    fluent_bit = {"log": "Back-off restarting failed container api in pod api-7\n", "stream": "stderr",
                  "kubernetes": {"pod_name": "api-7", "namespace_name": "shop", "container_name": "api"}}
    vector = {"message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
              "kubernetes": {"pod_name": "web-1", "pod_namespace": "front", "container_name": "nginx"}}
    envelopes = [json.dumps(fluent_bit).encode(), json.dumps(vector).encode()]
    bad = {
        "invalid_utf8": b"caf\xe9 \xff\xfe connection reset",
        "too_long": b"y" * 100_000,                     # over --max-line-bytes 65536
        "too_long_2mb": b"z" * (2 * 1024 * 1024),       # over --max-message-bytes too
        "empty": b"",
        "tombstone": None,
        "no_message": b'{"level": "error", "code": 7}',
        "no_message_envelope": json.dumps({"stream": "stdout", "kubernetes": {"pod_name": "x"}}).encode(),
    }
    expected_reason = {"invalid_utf8": "invalid_utf8", "too_long": "too_long", "too_long_2mb": "too_long",
                       "empty": "empty", "tombstone": "empty", "no_message": "no_message",
                       "no_message_envelope": "no_message"}
    producer = make_test_producer(kafka)
    acked_good = produce(producer, names.input, good)
    acked_envelopes = produce(producer, names.input, envelopes)
    acked_bad = dict(zip(bad, produce(producer, names.input, list(bad.values()))))
    producer.close()
    acked = acked_good + acked_envelopes + list(acked_bad.values())

    model_dir, _ = tiny_model
    config = ServeConfig(model=str(model_dir), bootstrap_servers=kafka.bootstrap, input_topic=names.input,
                         output_topic=names.output, dlq_topic=names.dlq, escalation_topic=names.escalate,
                         group_id=names.group, enable_idempotence=False, session_timeout_ms=SESSION_TIMEOUT_MS,
                         max_line_bytes=65536, max_poll_records=50, poll_timeout_ms=200, kafka_client=kafka_client)
    classifier = Classifier.from_dir(model_dir, max_line_bytes=config.max_line_bytes)
    metrics, health = ServeMetrics(), Health()
    metrics.set_model(classifier.model_version, classifier.labels, classifier.cache)
    http = MetricsServer(metrics, health, "127.0.0.1", 0).start()
    server = Server(config, classifier, make_consumer(config), make_producer(config), metrics, health)
    # The first batch by hand: the consumer lag it leaves is exactly what the partitions it read still hold.
    first_batch = wait_until(server.poll, 30, "the first batch", interval_s=0)  # polls drive the group join
    server.process(first_batch)
    read_up_to = {r.partition: r.offset + 1 for r in first_batch}
    lag_after_first = {p: metrics.consumer_lag.labels(names.input, str(p))._value.get() for p in read_up_to}
    codes = []
    thread = threading.Thread(target=lambda: codes.append(server.run()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{http.port}"
    try:
        wait_until(lambda: committed(kafka, names) == ends(acked), 45, "every input offset committed")
        assert http_get(base + "/healthz")[0] == 200
        assert http_get(base + "/readyz")[0] == 200
        status, scrape = http_get(base + "/metrics")
        assert status == 200
    finally:
        server.stop()
        thread.join(20)
        http.close()
    assert codes == [0]
    assert lag_after_first == {p: ends(acked)[p] - n for p, n in read_up_to.items()}
    assert sum(lag_after_first.values()) > 0  # one batch of max_poll_records read: the rest shows
    final = metrics.exposition().decode()
    assert [metric(final, "logdistill_consumer_lag", topic=names.input, partition=str(p))
            for p in range(INPUT_PARTITIONS)] == [0] * INPUT_PARTITIONS

    reader = OutputReader(kafka, names)
    reader.read_until_seen(set(acked))
    sources = reader.sources()
    reader.close()
    assert sources == Counter(acked), "each input offset must yield exactly one output in a clean run"

    dead = reader.dead_letters()
    assert {name: dead_letter_reason(dead[offset].headers)["error.reason"] for name, offset in acked_bad.items()} \
        == expected_reason
    assert set(dead) == set(acked_bad.values())
    assert dead[acked_bad["invalid_utf8"]].value == bad["invalid_utf8"]  # the original bytes, untouched
    big = dead_letter_reason(dead[acked_bad["too_long_2mb"]].headers)
    assert big["truncated"] == "true" and big["original.size"] == str(2 * 1024 * 1024)
    assert dead[acked_bad["too_long_2mb"]].value == bad["too_long_2mb"][:config.dlq_max_bytes]
    assert dead_letter_reason(dead[acked_bad["too_long"]].headers)["truncated"] == "false"

    results = reader.results()
    first = results[acked_good[0]]
    assert first["line"] == good[0].decode()
    assert first["label"] in classifier.labels and 0 < first["confidence"] <= 1
    assert len(first["probs"]) == 3 and list(first["probs"].values()) == sorted(first["probs"].values(), reverse=True)
    assert first["probs"][first["label"]] == max(first["probs"].values())
    assert len(first["template"]["id"]) == 12 and first["template"]["key"]
    assert first["model_version"] == classifier.model_version
    assert first["source"]["topic"] == names.input and first["source"]["timestamp"] > 0
    assert "kubernetes" not in first
    fb, vec = results[acked_envelopes[0]], results[acked_envelopes[1]]
    assert fb["line"] == fluent_bit["log"].rstrip("\n") and fb["kubernetes"] == {"pod": "api-7", "namespace": "shop",
                                                                   "container": "api"}
    assert vec["line"] == vector["message"] and vec["kubernetes"] == {"pod": "web-1", "namespace": "front",
                                                                     "container": "nginx"}

    classified = len(good) + len(envelopes)
    assert sum(metric(scrape, "logdistill_lines_total", label=label) for label in classifier.labels) == classified
    assert metric(scrape, "logdistill_messages_total") == len(acked)
    assert metric(scrape, "logdistill_results_total") == classified
    for reason, n in Counter(expected_reason.values()).items():
        assert metric(scrape, "logdistill_dead_letters_total", reason=reason) == n
    assert metric(scrape, "logdistill_classify_latency_seconds_count") >= classified
    assert metric(scrape, "logdistill_end_to_end_lag_seconds_count") == len(acked)
    assert metric(scrape, "logdistill_batch_size_sum") == len(acked)
    assert metric(scrape, "logdistill_model_info", version=classifier.model_version) == 1
    assert 0 < metric(scrape, "logdistill_cache_hit_ratio") < 1  # templates repeat: the cache answers some
    assert metric(scrape, "logdistill_low_confidence_total") >= 0
    assert metric(scrape, "logdistill_kafka_errors_total", operation="produce") == 0


def test_only_problems_counts_every_line_but_emits_only_problems(tiny_model):
    from service.serve import Server

    model_dir, _ = tiny_model
    classifier = Classifier.from_dir(model_dir)
    lines = log_lines(40)
    labels = [r.label for r in classifier.classify_raw(lines)]
    normal = Counter(labels).most_common(1)[0][0]  # the tiny model's labels are arbitrary: pick a frequent one
    config = ServeConfig(model=str(model_dir), only_problems=True, normal_label=normal)
    server = Server(config, classifier, consumer=None, producer=None)
    records = [SimpleNamespace(topic="in", partition=0, offset=i, timestamp=0, key=None, value=v, headers=[])
               for i, v in enumerate(lines)]
    outputs = [o for o in server.classify(records) if o.topic == config.output_topic]  # not escalations
    assert [o.message.offset for o in outputs] == [i for i, label in enumerate(labels) if label != normal]
    assert all(json.loads(o.value)["label"] != normal for o in outputs)
    counted = {label: server.metrics.lines.labels(label)._value.get() for label in classifier.labels}
    assert counted == {label: labels.count(label) for label in classifier.labels}


def test_config_precedence_flags_over_env_over_yaml(tmp_path):
    from service.cli import build_parser

    (tmp_path / "serve.yaml").write_text("input-topic: from-yaml\noutput_topic: from-yaml\ngroup_id: from-yaml\n"
                                         "max_poll_records: 7\nsecurity_protocol: SASL_SSL\n")
    args = build_parser().parse_args(["serve", "--config", str(tmp_path / "serve.yaml"), "--model", "m",
                                      "--group-id", "from-flag", "--no-enable-idempotence"])
    env = {"LOGDISTILL_OUTPUT_TOPIC": "from-env", "LOGDISTILL_GROUP_ID": "from-env",
           "LOGDISTILL_ONLY_PROBLEMS": "true", "LOGDISTILL_SASL_MECHANISM": "SCRAM-SHA-512",
           "LOGDISTILL_SASL_PLAIN_USERNAME": "svc", "LOGDISTILL_SASL_PLAIN_PASSWORD": "s3cret"}
    config = load_config(args, env)
    assert (config.input_topic, config.output_topic, config.group_id) == ("from-yaml", "from-env", "from-flag")
    assert config.max_poll_records == 7 and config.only_problems is True and config.enable_idempotence is False
    assert config.kafka_security() == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                       "sasl_plain_username": "svc", "sasl_plain_password": "s3cret",
                                       "ssl_check_hostname": True}
    assert config.redacted()["sasl_plain_password"] == "***"
    (tmp_path / "bad.yaml").write_text("input_topicz: x\n")
    with pytest.raises(ConfigError, match="input_topicz"):
        load_config({"config": str(tmp_path / "bad.yaml"), "model": "m"}, {})
    with pytest.raises(ConfigError, match="max_poll_records"):
        load_config({"model": "m"}, {"LOGDISTILL_MAX_POLL_RECORDS": "lots"})


# Subprocess: signals -------------------------------------------------------------------

def start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, tag: str, metrics_port: int = 0,
                kafka_client: str = "kafka-python"):
    """`logdistill serve` configured the three ways: YAML file, env vars and flags."""
    config_file = tmp_path / "serve.yaml"
    config_file.write_text(f"input_topic: {names.input}\noutput_topic: {names.output}\ndlq_topic: {names.dlq}\n"
                           f"escalation_topic: {names.escalate}\nfeedback_topic: {names.feedback}\n"
                           f"label_store: {tmp_path / 'labels.sqlite'}\n"
                           f"session_timeout_ms: {SESSION_TIMEOUT_MS}\npoll_timeout_ms: 200\n")
    env = dict(os.environ, LOGDISTILL_CONFIG=str(config_file), LOGDISTILL_BOOTSTRAP_SERVERS=kafka.bootstrap,
               LOGDISTILL_GROUP_ID=names.group, LOGDISTILL_ENABLE_IDEMPOTENCE="false",
               LOGDISTILL_KAFKA_CLIENT=kafka_client)
    log = open(tmp_path / f"serve-{tag}.log", "wb")
    proc = subprocess.Popen([str(logdistill_exe), "serve", "--model", str(model_dir), "--max-poll-records", "25",
                             "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return proc


def serve_log(tmp_path, tag: str) -> str:
    return (tmp_path / f"serve-{tag}.log").read_text(errors="replace")[-3000:]


def test_sigterm_drains_cleanly(kafka, names, tiny_model, logdistill_exe, tmp_path, kafka_client):
    model_dir, _ = tiny_model
    port = free_port()
    proc = start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, "a", metrics_port=port,
                       kafka_client=kafka_client)
    feeder = BackgroundProducer(kafka, names.input, log_lines(6000))
    reader = OutputReader(kafka, names)
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "/readyz")
        feeder.start()
        wait_until(lambda: reader.poll() >= 300, 45, "the first results")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, serve_log(tmp_path, "a")
    finally:
        proc.kill()
        feeder.join(60)
    commits = committed(kafka, names)
    acked = feeder.acked
    done = {(p, o) for p, o in acked if o < commits[p]}
    reader.read_until_seen(done)
    sources = reader.sources()
    reader.close()
    assert "shutdown requested" in serve_log(tmp_path, "a")
    assert sum(commits.values()) >= 300
    assert set(sources) == done, "outputs must be exactly the committed offsets: produced, then committed"
    assert max(sources.values()) == 1


def freeze_mid_batch(proc, reader: OutputReader, kafka, names, timeout_s: float = 120.0) -> dict[int, int]:
    """SIGSTOP `serve` at a moment when it has results acknowledged but not yet committed.

    A kill at a random moment often lands between batches, where it proves little. Frozen, the
    process can neither commit nor produce; what the broker holds is then read at leisure: outputs
    for offsets at or past the committed ones mean the batch was caught in the middle. Otherwise
    SIGCONT and try again. Returns the committed offsets at the freeze.
    """
    offsets = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=names.group, enable_auto_commit=False)
    partitions = [TopicPartition(names.input, p) for p in range(INPUT_PARTITIONS)]
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # requests already on the wire reach the broker before anything is read
            commits = {tp.partition: offsets.committed(tp) or 0 for tp in partitions}
            reader.read_to_end()
            if any(offset >= commits[partition] for partition, offset in reader.sources()):
                return commits
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    finally:
        offsets.close()
    raise AssertionError(f"never caught `serve` between producing and committing in {timeout_s} s")


def test_sigkill_mid_batch_then_restart_loses_nothing(kafka, names, tiny_model, logdistill_exe, tmp_path, capsys,
                                                      kafka_client):
    model_dir, _ = tiny_model
    # Keeps it busy for as long as freeze_mid_batch may try (stopped after the kill): a fast serve spends
    # only a few % of its time between acknowledgement and commit, so catching it takes many tries.
    feeder = BackgroundProducer(kafka, names.input, log_lines(200_000), chunk=50, pause_s=0.05)
    reader = OutputReader(kafka, names)
    port = free_port()
    first = start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, "a", metrics_port=port,
                        kafka_client=kafka_client)
    second = None
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 30, "/readyz")
        feeder.start()
        wait_until(lambda: reader.poll() >= 200, 45, "the first results")
        commits_at_kill = freeze_mid_batch(first, reader, kafka, names)
        first.kill()  # SIGKILL while frozen: results of the batch in hand are out, its offsets are not committed
        first.wait(10)
        uncommitted_outputs = {source for source in reader.sources() if source[1] >= commits_at_kill[source[0]]}
        acked = feeder.stop()
        second = start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, "b",
                             kafka_client=kafka_client)
        wait_until(lambda: committed(kafka, names) == ends(acked), 60, "the restarted consumer to catch up")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, serve_log(tmp_path, "b")
    finally:
        feeder.stopped.set()
        for proc in (first, second):
            if proc is not None:
                proc.kill()
    reader.read_until_seen(set(acked))
    sources = reader.sources()
    reader.close()
    missing = set(acked) - set(sources)
    duplicated = {source for source, n in sources.items() if n > 1}
    with capsys.disabled():
        print(f"\n  SIGKILL mid-batch: {len(acked)} inputs, {len(missing)} lost, {len(duplicated)} duplicated")
    assert not missing
    assert set(sources) == set(acked)
    # At-least-once, visibly: what the killed process had produced but not committed is produced again.
    assert uncommitted_outputs and uncommitted_outputs <= duplicated


def test_two_consumers_split_the_partitions_and_the_survivor_takes_over(kafka, names, tiny_model, logdistill_exe,
                                                                        tmp_path, kafka_client):
    model_dir, _ = tiny_model
    every_partition = set(range(INPUT_PARTITIONS))
    port_a, port_b = free_port(), free_port()
    survivor = start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, "a", metrics_port=port_a,
                           kafka_client=kafka_client)
    victim = start_serve(logdistill_exe, kafka, names, model_dir, tmp_path, "b", metrics_port=port_b,
                         kafka_client=kafka_client)
    feeder = BackgroundProducer(kafka, names.input, log_lines(20_000), chunk=50, pause_s=0.05)
    reader = OutputReader(kafka, names)

    def split() -> bool:  # each reports lag (commits) for its own partitions only
        mine, theirs = lag_partitions(port_a, names.input), lag_partitions(port_b, names.input)
        return bool(mine and theirs and not mine & theirs and mine | theirs == every_partition)

    try:
        feeder.start()
        wait_until(split, 60, "the two consumers to split the partitions")
        victim.kill()  # SIGKILL: no LeaveGroup; the group notices after the session timeout
        victim.wait(10)
        wait_until(lambda: lag_partitions(port_a, names.input) == every_partition, 60,
                   "the survivor to take over every partition")
        acked = feeder.stop()
        wait_until(lambda: committed(kafka, names) == ends(acked), 60, "the survivor to catch up")
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0, serve_log(tmp_path, "a")
    finally:
        feeder.stopped.set()
        for proc in (survivor, victim):
            proc.kill()
    reader.read_until_seen(set(acked))
    sources = reader.sources()
    reader.close()
    assert not set(acked) - set(sources), "the survivor must classify everything the victim left uncommitted"
    assert set(sources) == set(acked)


def test_broker_unreachable_mid_stream_loses_nothing(kafka, names, tiny_model, logdistill_exe, tmp_path, kafka_client):
    """`serve` reaches the broker through tansu's proxy; stopping the proxy is, to `serve`, a broker going
    away mid-stream (connections dropped, then refused), while the producer keeps writing to the broker."""
    model_dir, _ = tiny_model
    proxy = TansuProxy(kafka.bootstrap).start()
    port = free_port()
    ready = f"http://127.0.0.1:{port}/readyz"
    proc = start_serve(logdistill_exe, proxy, names, model_dir, tmp_path, "a", metrics_port=port,
                       kafka_client=kafka_client)
    feeder = BackgroundProducer(kafka, names.input, log_lines(20_000), chunk=50, pause_s=0.05)
    reader = OutputReader(kafka, names)
    try:
        wait_until(lambda: http_get(ready)[0] == 200, 30, "/readyz")
        feeder.start()
        wait_until(lambda: reader.poll() >= 200, 45, "the first results")
        proxy.stop()
        wait_until(lambda: http_get(ready)[0] == 503, 20, "/readyz to report the outage")
        during_outage = len(feeder.acked)
        time.sleep(1)
        assert proc.poll() is None, "serve must outlive a broker outage"
        assert len(feeder.acked) > during_outage, "inputs must keep arriving during the outage"
        proxy.start()
        wait_until(lambda: http_get(ready)[0] == 200, 30, "/readyz to recover")
        acked = feeder.stop()
        wait_until(lambda: committed(kafka, names) == ends(acked), 60, "every input committed after the outage")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, serve_log(tmp_path, "a")
    finally:
        feeder.stopped.set()
        proc.kill()
        proxy.stop()
    reader.read_until_seen(set(acked))
    sources = reader.sources()
    reader.close()
    assert not set(acked) - set(sources), serve_log(tmp_path, "a")
    assert set(sources) == set(acked)


def test_broker_restart_keeps_the_process_up_and_it_resumes(tiny_model, logdistill_exe, tmp_path, kafka_client):
    """A real tansu restart. Its storage is memory://, so the broker comes back as an empty cluster:
    inputs, results and committed offsets from before are gone with it, and "0 loss" can only be
    judged on what the new cluster holds (the proxy test above judges it across an outage that keeps
    the log). What this shows: `serve` survives (alive, /readyz 503), rejoins a group that no longer
    exists, and classifies every input produced to the new cluster."""
    model_dir, _ = tiny_model
    with TansuBroker(log_path=tmp_path / "tansu.log") as broker:
        names = SimpleNamespace(input="logs", output="results", dlq="dlq", escalate="escalate", feedback="feedback",
                                group="outage")

        def create_topics():
            admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
            try:
                admin.create_topics([NewTopic(names.input, 1, 1), NewTopic(names.output, 1, 1),
                                     NewTopic(names.dlq, 1, 1)])
            except TopicAlreadyExistsError:
                # After the restart serve, still running, may name a topic on the new cluster first and the
                # broker auto-creates it; the request creates the others all the same (one result per topic).
                pass
            admin.close()

        def produce_lines(n: int) -> list:
            producer = make_test_producer(broker)
            acked = produce(producer, names.input, log_lines(n))
            producer.close()
            return acked

        create_topics()
        port = free_port()
        ready = f"http://127.0.0.1:{port}/readyz"
        proc = start_serve(logdistill_exe, broker, names, model_dir, tmp_path, "a", metrics_port=port,
                           kafka_client=kafka_client)
        try:
            acked = produce_lines(200)
            wait_until(lambda: committed(broker, names, partitions=1) == {0: 200}, 30, "the first batch committed")
            broker.stop(timeout_s=0.5)  # tansu takes seconds to exit on SIGTERM; then it is killed
            wait_until(lambda: http_get(ready)[0] == 503, 20, "/readyz to report the outage")
            assert proc.poll() is None, "serve must outlive a broker outage"
            broker.start()
            create_topics()
            # Fewer than before, so the old position (200) is past the new log's end and resets to its
            # start. With more, a fetch from the old position before the group is found gone would skip
            # the new log's head: a wiped cluster loses data, whatever the client does.
            acked = produce_lines(50)
            wait_until(lambda: http_get(ready)[0] == 200, 30, "/readyz to recover")
            wait_until(lambda: committed(broker, names, partitions=1) == ends(acked, partitions=1), 40,
                       "the new cluster's inputs committed")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, serve_log(tmp_path, "a")
            reader = OutputReader(broker, names)
            reader.read_until_seen(set(acked))
            sources = reader.sources()
            reader.close()
        finally:
            proc.kill()
            broker.stop(timeout_s=0.5)
    # A subset: a batch from the old cluster, caught in flight by the restart, may be produced here too.
    assert set(acked) <= set(sources), serve_log(tmp_path, "a")


# Retry rules, with scripted Kafka clients (no broker: the failures are exact) --------------

class ScriptedFuture:
    def __init__(self, exception=None):
        self.is_done, self.exception = True, exception

    def succeeded(self):
        return self.exception is None


class ScriptedProducer:
    """send() answers from a script of outcomes: None (acked), an exception class for the future to
    fail with, or ("raise", exception class) for send() itself to raise."""

    def __init__(self, events: list, script: list):
        self.events, self.script, self.acked = events, list(script), []

    def send(self, topic, value=None, key=None, headers=None):
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, tuple):
            raise outcome[1]("scripted")
        self.events.append("send")
        if outcome is None:
            self.acked.append((topic, value))
            return ScriptedFuture()
        return ScriptedFuture(outcome("scripted"))

    def flush(self, timeout=None):
        self.events.append("flush")

    def close(self, timeout=None):
        pass


class ScriptedConsumer:
    def __init__(self, events: list, commit_errors: list | None = None):
        self.events, self.commit_errors = events, list(commit_errors or [])
        self.commits, self.seeks = [], []

    def commit(self, offsets, timeout_ms=None):
        self.events.append("commit")
        if self.commit_errors:
            raise self.commit_errors.pop(0)("scripted")
        self.commits.append({tp.partition: om.offset for tp, om in offsets.items()})

    def seek(self, tp, offset):
        self.seeks.append((tp.partition, offset))

    def assignment(self):
        return set()  # no lag to report

    def close(self, autocommit=True, timeout_ms=None):
        pass


def scripted_server(tiny_model, producer_script=(), commit_errors=(), **config):
    from service.serve import Server

    model_dir, _ = tiny_model
    events: list = []
    # The scripts count sends of results and dead letters: no low-confidence escalations in between.
    config = ServeConfig(model=str(model_dir), retry_backoff_initial_s=0.001, retry_backoff_max_s=0.01,
                         **{"escalation_topic": "", **config})
    producer, consumer = ScriptedProducer(events, producer_script), ScriptedConsumer(events, commit_errors)
    classifier = Classifier.from_dir(model_dir, max_line_bytes=config.max_line_bytes)
    return Server(config, classifier, consumer, producer), events


def records_for(values: list, partition: int = 0, first_offset: int = 10) -> list:
    return [SimpleNamespace(topic="in", partition=partition, offset=first_offset + i, timestamp=int(time.time() * 1000),
                            key=None, value=v, headers=[]) for i, v in enumerate(values)]


def test_failed_sends_are_resent_and_the_commit_waits_for_every_ack(tiny_model):
    from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

    # Attempt 1: records 2 and 4 fail in flight. Attempt 2: send() itself times out (broker away).
    # Attempt 3: both go through.
    script = [None, NotLeaderForPartitionError, None, NotLeaderForPartitionError, ("raise", KafkaTimeoutError)]
    server, events = scripted_server(tiny_model, script)
    lines = log_lines(4)
    server.process(records_for(lines))
    assert sorted(json.loads(v)["source"]["offset"] for _, v in server.producer.acked) == [10, 11, 12, 13]
    assert events.count("commit") == 1 and events[-1] == "commit"  # once, after the last ack
    assert server.consumer.commits == [{0: 14}]
    assert server.metrics.kafka_errors.labels("produce")._value.get() == 2


def test_commit_errors_are_retried_and_a_rebalance_rewinds_the_batch(tiny_model):
    from kafka.errors import CommitFailedError, KafkaTimeoutError

    server, _ = scripted_server(tiny_model, commit_errors=[KafkaTimeoutError])
    server.process(records_for(log_lines(3)))
    assert server.consumer.commits == [{0: 13}] and server.consumer.seeks == []

    server, _ = scripted_server(tiny_model, commit_errors=[CommitFailedError])
    server.process(records_for(log_lines(3), partition=1, first_offset=40))
    assert server.consumer.commits == [] and server.consumer.seeks == [(1, 40)]  # read again, not skipped
    assert server.metrics.redelivery_rewinds._value.get() == 1


def test_a_result_the_broker_refuses_as_too_large_becomes_a_dead_letter(tiny_model):
    from kafka.errors import MessageSizeTooLargeError

    server, _ = scripted_server(tiny_model, [MessageSizeTooLargeError])
    server.process(records_for(log_lines(1)))
    (topic, value), = server.producer.acked
    assert topic == server.config.dlq_topic and value == log_lines(1)[0]
    assert server.metrics.dead_letters.labels("produce_failed")._value.get() == 1
    assert server.consumer.commits == [{0: 11}]


def test_shutdown_gives_up_on_an_undeliverable_batch_without_committing(tiny_model):
    from kafka.errors import KafkaTimeoutError

    server, events = scripted_server(tiny_model, [KafkaTimeoutError] * 10_000, drain_timeout_s=0.2)
    batch = {TopicPartition("in", 0): records_for(log_lines(2))}
    server.consumer.poll = lambda **_: (server.stop(), batch)[1]  # SIGTERM arrives with the batch
    assert server.run() == 1
    assert "commit" not in events and server.producer.acked == []


def test_a_flush_stuck_in_an_outage_gives_up_at_the_drain_deadline(tiny_model, monkeypatch):
    """During an outage a flush waits out the producer's delivery timeout; SIGTERM's drain deadline must
    still hold inside it, not only between resends."""
    from kafka.errors import KafkaTimeoutError

    from service import serve

    monkeypatch.setattr(serve, "FLUSH_TIMEOUT_S", 2.0)  # keeps a regression quick to show
    server, events = scripted_server(tiny_model, drain_timeout_s=0.3)
    flushes = []

    def stuck_flush(timeout=None):  # the broker is away: nothing is acknowledged, each slice times out
        flushes.append(timeout)
        time.sleep(0.05)
        raise KafkaTimeoutError("scripted")

    server.producer.flush = stuck_flush
    batch = {TopicPartition("in", 0): records_for(log_lines(2))}
    server.consumer.poll = lambda **_: (server.stop(), batch)[1]  # SIGTERM arrives with the batch
    assert server.run() == 1
    assert set(flushes) == {serve.FLUSH_SLICE_S}  # in slices, each a chance to give up
    # Given up inside the flush: it never ran to its own timeout and on to a resend.
    assert server.metrics.kafka_errors.labels("produce")._value.get() == 0
    assert "commit" not in events


def test_a_line_the_classifier_fails_on_becomes_a_dead_letter_not_a_crash_loop(tiny_model):
    server, _events = scripted_server(tiny_model)
    real = server.classifier.classify_raw

    def fails_on_poison(raws):  # stands in for a classifier bug that one input triggers
        if any(b"poison" in raw for raw in raws):
            raise RuntimeError("boom")
        return real(raws)

    server.classifier.classify_raw = fails_on_poison
    values = [b"disk full on /dev/sda1", b"poison pill", b"connection refused"]
    outputs = server.classify(records_for(values))
    by_offset = {o.message.offset: o for o in outputs if o.topic in (server.config.output_topic,
                                                                     server.config.dlq_topic)}
    assert sorted(by_offset) == [10, 11, 12]  # one output per input, none lost
    assert by_offset[11].topic == server.config.dlq_topic and by_offset[11].error.reason == "classify_failed"
    assert "RuntimeError: boom" in by_offset[11].error.error
    assert {by_offset[i].topic for i in (10, 12)} == {server.config.output_topic}
    server.deliver(outputs)  # dead letters are counted once acknowledged
    assert server.metrics.dead_letters.labels("classify_failed")._value.get() == 1
