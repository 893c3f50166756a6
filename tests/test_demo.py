"""`logdistill demo` end to end: a real broker, the real `serve` child process, a real tiny model.

1. The `make demo` path (embedded tansu, shared Loghub lines, --limit 200): it runs to completion on
   its own, exits 0, and its summary accounts for every replayed line.
2. A given cluster (--bootstrap-servers, here a tansu the test owns), options from a YAML file, an
   env var and flags, --keep-running stopped by Ctrl-C: the test reads the topics back itself and
   finds exactly one result or one dead letter (with its reason) for every line of the log file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

pytest.importorskip("kafka")
pytest.importorskip("rich")

from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402
from kafka_broker import SESSION_TIMEOUT_MS, BrokerError, TansuBroker  # noqa: E402

from service.demo import SHARED_LOGHUB  # noqa: E402
from service.records import dead_letter_reason  # noqa: E402

BAD_LINES = {b"caf\xe9 \xff\xfe not utf-8": "invalid_utf8", b'{"level": "error", "code": 7}': "no_message",
             b"x" * 70_000: "too_long"}


def loghub_lines(n: int) -> list[bytes]:
    lines = []
    for path in sorted(SHARED_LOGHUB.glob("*/*_2k.log")):
        lines += path.read_bytes().splitlines()[:n // 4]
    return lines[:n]


def topics(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def read_all(bootstrap: str, names: list[str], quiet_s: float = 1.5, timeout_s: float = 30) -> list:
    """Every record of the topics (all their partitions), from the start, until nothing new for quiet_s."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    consumer.assign([TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t)])
    consumer.seek_to_beginning()
    records, last_change, deadline = [], time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() - last_change < quiet_s and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records += batch
            last_change = time.monotonic()
    consumer.close()
    return records


@pytest.mark.parametrize("kafka_client", ["kafka-python", "confluent"])
def test_demo_on_the_embedded_broker_answers_every_replayed_line(tiny_model, logdistill_exe, tmp_path, kafka_client):
    model_dir, _ = tiny_model
    summary_path = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGDISTILL_")}  # the defaults, as make demo
    env["LOGDISTILL_KAFKA_CLIENT"] = kafka_client  # serve's client, passed on by the demo
    proc = subprocess.run([str(logdistill_exe), "demo", "--model", str(model_dir), "--limit", "200",
                           "--summary-json", str(summary_path), "--timeout-s", "120"],
                          env=env, capture_output=True, timeout=300)
    out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, out[-4000:]
    summary = json.loads(summary_path.read_text())
    assert summary["embedded_broker"] is True and summary["complete"] is True
    assert summary["serve_exit_code"] == 0
    assert summary["lines"] == summary["replayed"] == summary["answered"] == 200
    assert summary["unanswered"] == 0
    assert summary["results"] + summary["dead_letters"] == 200
    assert summary["consumed"] >= 200
    # serve's own counters, read from its /metrics: every line classified or dead-lettered
    assert sum(summary["labels"].values()) + sum(summary["dead_letters_by_reason"].values()) == summary["consumed"]
    assert summary["classify_latency_s"]["p50"] is not None
    assert "every replayed line answered" in out and summary["metrics_url"] in out


def test_demo_against_a_given_cluster_with_options_from_yaml_env_and_flags(tiny_model, logdistill_exe, tmp_path):
    model_dir, _ = tiny_model
    lines = loghub_lines(150) + list(BAD_LINES)
    logs = tmp_path / "replay.log"
    logs.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "demo.yaml").write_text("input_topic: in-yaml\noutput_topic: out-yaml\ndlq_topic: dlq-yaml\n"
                                        "poll_timeout_ms: 200\n")
    summary_path = tmp_path / "summary.json"
    try:
        broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    except BrokerError as exc:
        pytest.skip(f"no tansu broker: {exc}")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGDISTILL_")}
        env.update(LOGDISTILL_CONFIG=str(tmp_path / "demo.yaml"), LOGDISTILL_GROUP_ID="group-from-env",
                   LOGDISTILL_SESSION_TIMEOUT_MS=str(SESSION_TIMEOUT_MS))
        with open(tmp_path / "demo.out", "wb") as out:
            proc = subprocess.Popen(
                [str(logdistill_exe), "demo", "--model", str(model_dir), "--bootstrap-servers", broker.bootstrap,
                 "--no-enable-idempotence", "--logs", str(logs), "--partitions", "3", "--keep-running",
                 "--summary-json", str(summary_path)], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            # Wait for the demo to create the topics: reading them first would auto-create them (tansu)
            # with the broker's default partitions instead of the demo's.
            while not {"in-yaml", "out-yaml", "dlq-yaml"} <= topics(broker.bootstrap):
                assert time.monotonic() < deadline and proc.poll() is None, "the demo created no topics"
                time.sleep(0.5)
            while len(read_all(broker.bootstrap, ["out-yaml", "dlq-yaml"], quiet_s=0.5)) < len(lines):
                assert proc.poll() is None, (tmp_path / "demo.out").read_text(errors="replace")[-4000:]
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
            time.sleep(1.0)  # --keep-running: still serving after the last answer; Ctrl-C ends it
            assert proc.poll() is None, "--keep-running must not exit on its own"
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:  # SIGTERM first: the demo stops its serve child on the way out
                proc.terminate()
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log = (tmp_path / "demo.out").read_text(errors="replace")
        assert code == 0, log[-4000:]

        inputs = read_all(broker.bootstrap, ["in-yaml"])
        outputs = read_all(broker.bootstrap, ["out-yaml", "dlq-yaml"])
        group = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="group-from-env", enable_auto_commit=False)
        committed = {p: group.committed(TopicPartition("in-yaml", p)) for p in range(3)}
        group.close()
    finally:
        broker.stop()

    assert Counter(r.value for r in inputs) == Counter(lines), "the demo replays every line of --logs, once"
    assert len({r.partition for r in inputs}) > 1, "spread over the input topic's partitions"
    value_of = {(r.partition, r.offset): r.value for r in inputs}
    answers: Counter = Counter()
    reasons = {}
    for record in outputs:
        if record.topic == "dlq-yaml":
            h = dead_letter_reason(record.headers)
            source = (int(h["source.partition"]), int(h["source.offset"]))
            reasons[value_of[source][:100]] = h["error.reason"]
        else:
            result = json.loads(record.value)
            source = (result["source"]["partition"], result["source"]["offset"])
            assert result["source"]["topic"] == "in-yaml"
            assert result["line"].encode() == value_of[source]
        answers[source] += 1
    assert answers == Counter(list(value_of)), "exactly one result or dead letter per replayed line"
    assert reasons == {line[:100]: reason for line, reason in BAD_LINES.items()}
    ends = Counter()
    for p, o in value_of:
        ends[p] = max(ends[p], o + 1)
    assert committed == {p: ends[p] or None for p in range(3)}, "the group from the env var committed it all"

    summary = json.loads(summary_path.read_text())
    assert summary["embedded_broker"] is False and summary["bootstrap_servers"] == broker.bootstrap
    assert summary["complete"] is True and summary["answered"] == len(lines) and summary["duplicates"] == 0
    assert summary["dead_letters_by_reason"] == Counter(BAD_LINES.values())


def test_demo_modules_stay_off_torch_and_training():
    """The demo is part of the runtime (service/): an edge install without torch can run it."""
    code = ("import sys, service.demo, service.demo_view, service.embedded_broker; "
            "sys.exit(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training')) or 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
