"""The whole loop through `logdistill serve` (a subprocess, configured by flags): unsure results are
escalated, a teacher answers on the feedback topic, the answers land in the label store and move the
online accuracy, and a newly published model is served without a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from kafka_broker import free_port
from service.label_store import LabelStore
from test_reload import build_version, point
from topics import SESSION_TIMEOUT_MS, create_topics, fresh, produce, read_topic, wait_until

LINES = [b"Back-off restarting failed container api in pod api-1", b"disk /dev/sda1 is 97% full",
         b"Readiness probe failed: HTTP probe failed with statuscode: 503"] * 2


def scrape(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_escalate_answer_store_score_and_reload(kafka, tiny_model, tmp_path, logdistill_exe):
    source, results, dlq, escalate, feedback, group = fresh("logs", "results", "dlq", "escalate", "feedback", "g")
    create_topics(kafka, source, results, dlq, escalate, feedback)
    current = tmp_path / "current"
    os.symlink(build_version(tiny_model[0], tmp_path / "v1", "v1"), current)
    store_path, port = tmp_path / "labels.sqlite", free_port()
    flags = {"model": current, "bootstrap-servers": kafka.bootstrap, "input-topic": source, "output-topic": results,
             "dlq-topic": dlq, "escalation-topic": escalate, "feedback-topic": feedback, "group-id": group,
             "label-store": store_path, "low-confidence": 1.01, "reload-interval-s": 0.2, "poll-timeout-ms": 200,
             "session-timeout-ms": SESSION_TIMEOUT_MS, "metrics-host": "127.0.0.1", "metrics-port": port}
    command = [str(logdistill_exe), "serve", "--no-enable-idempotence"] + \
        [arg for name, value in flags.items() for arg in (f"--{name}", str(value))]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        produce(kafka, source, LINES)
        escalations = [json.loads(r.value) for r in read_topic(kafka, escalate, 3)]
        assert len(escalations) == 3 and {e["model_version"] for e in escalations} == {"v1"}

        # The teacher: agrees with the student on two templates, not on the third.
        labels = list(escalations[0]["student"]["probs"])
        answers = [dict(e, teacher_id="llm", label=e["student"]["label"]) for e in escalations[:2]]
        third = escalations[2]
        answers.append(dict(third, teacher_id="llm", label=next(l for l in labels if l != third["student"]["label"])))
        for a in answers:
            del a["student"]  # an echo of the escalation plus the answer, without the student's guess
        produce(kafka, feedback, [json.dumps(a).encode() for a in answers])
        def scored() -> dict | None:
            metrics = scrape(port)
            return metrics if metrics.get(("logdistill_feedback_total", (("result", "disagree"),))) == 1 else None

        metrics = wait_until(scored, 30, "the answers to be scored")
        assert metrics[("logdistill_feedback_total", (("result", "agree"),))] == 2
        assert abs(metrics[("logdistill_online_accuracy", ())] - 2 / 3) < 1e-9
        assert metrics[("logdistill_escalations_total", ())] == 3

        point(current, build_version(tiny_model[0], tmp_path / "v2", "v2"))
        wait_until(lambda: scrape(port).get(("logdistill_model_reloads_total", (("result", "ok"),))) == 1, 30,
                   "the new model to be loaded")
        produce(kafka, source, LINES)
        versions = [json.loads(r.value)["model_version"] for r in read_topic(kafka, results, 2 * len(LINES))]
        assert versions == ["v1"] * len(LINES) + ["v2"] * len(LINES)
        escalated = [json.loads(r.value)["model_version"] for r in read_topic(kafka, escalate, 6)]
        assert escalated == ["v1"] * 3 + ["v2"] * 3  # a new model's doubts are escalated afresh

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_path.read_text()[-3000:]
    finally:
        proc.kill()
    store = LabelStore(store_path)
    try:
        stored = store.get_many("llm", [e["template"]["key"] for e in escalations], tuple(labels))
    finally:
        store.close()
    assert len(stored) == 3
    assert labels[int(stored[third["template"]["key"]].argmax())] == answers[2]["label"]
