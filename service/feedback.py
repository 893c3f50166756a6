"""Teacher answers from the feedback topic: scored against the student, stored for retraining.

A message is JSON, typically an escalation (cascade.py) echoed back with the teacher's answer:
    {"template": "<template key>" or {"key": ...},   or "line": a log line (its key is derived)
     "label": "network",                the teacher's label; optional when probs are given
     "probs": {"network": 0.9, ...},    optional: its distribution (labels left out count 0)
     "teacher_id": "gpt-4o-2024-08"}    required: the label store is keyed by (teacher id, template)
Anything else (not JSON, no template, an unknown label, ...) goes to the dead-letter topic with
reason `bad_feedback` and the detail in its headers; no message stops the loop.

Online accuracy: each answer is scored against the label the model now serving gives its template
(a pure function of the key: the label its results carry); the gauge is the share of agreements
over the last --accuracy-window answers, restarted when a new model is served. Answers come for
escalated, i.e. low-confidence, lines: the estimate is pessimistic, not accuracy over all traffic.

Why a second consumer on its own thread, not the serve consumer subscribed to both topics:
  - answers never enter the results path: no special cases in the batching, dead letters, metrics
    and commit rules of the input, which are what at-least-once rests on;
  - its own group (--feedback-group-id) can be made per instance, so that every instance reads every
    answer and keeps a complete label store, while the input stays split across the instances;
  - a kafka-python consumer belongs to one thread and its poll blocks: here it waits on answers,
    not on log traffic. The classifier is only read (ONNX Runtime sessions are thread-safe).
Delivery: an answer is in the label store (an idempotent upsert) and every dead letter acknowledged
before the offsets are committed: at least once; a replayed answer is stored again, harmlessly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sqlite3
import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from kafka.errors import KafkaError

from service.classifier import LineError, preview
from service.kafka_io import COMMIT_TIMEOUT_MS, make_consumer, make_producer
from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import parse_line
from service.records import dead_letter
from service.consuming import Backoff, next_offsets

log = logging.getLogger("logdistill.feedback")
BAD_FEEDBACK = "bad_feedback"
ACK_TIMEOUT_S = 60


# The message format ---------------------------------------------------------------------

class BadAnswer(ValueError):
    pass


@dataclass
class Answer:
    template: str
    teacher_id: str
    label: str
    probs: np.ndarray  # over the taxonomy, in its order, summing to 1


def parse_answer(value: bytes | None, labels: tuple[str, ...]) -> Answer | LineError:
    try:
        obj = load_json(value)
        if not isinstance(obj, dict):
            raise BadAnswer("feedback must be a JSON object")
        probs = answer_probs(obj.get("probs"), labels)
        label = answer_label(obj.get("label"), probs, labels)
        if probs is None:
            probs = np.eye(len(labels), dtype=np.float32)[labels.index(label)]
        return Answer(answer_template(obj), answer_teacher(obj), label, probs)
    except BadAnswer as exc:
        return LineError(BAD_FEEDBACK, str(exc), preview(value or b""))


def load_json(value: bytes | None):
    if not value:
        return None
    try:
        return json.loads(value.decode("utf-8"))  # decoded here: json.loads would guess UTF-16 from a BOM
    except UnicodeDecodeError as exc:
        raise BadAnswer(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    except ValueError as exc:
        raise BadAnswer(f"not JSON: {exc}") from None


def answer_template(obj: dict) -> str:
    template = obj.get("template")
    if isinstance(template, dict):
        template = template.get("key")
    if isinstance(template, str) and template.strip():
        return template
    if isinstance(obj.get("line"), str) and obj["line"].strip():
        return template_key(parse_line(obj["line"]))  # as serve keys a line
    raise BadAnswer("no template key (\"template\" or \"template\": {\"key\"}) and no \"line\"")


def answer_teacher(obj: dict) -> str:
    teacher = obj.get("teacher_id")
    if not isinstance(teacher, str) or not teacher.strip():
        raise BadAnswer("no \"teacher_id\" (the label store is keyed by it)")
    return teacher


def answer_probs(probs, labels: tuple[str, ...]) -> np.ndarray | None:
    if probs is None:
        return None
    if not isinstance(probs, dict):
        raise BadAnswer("\"probs\" must map labels to probabilities")
    unknown = sorted(set(probs) - set(labels))
    if unknown:
        raise BadAnswer(f"\"probs\" has labels not in the taxonomy: {unknown}")
    values = [probs.get(label, 0) for label in labels]
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= 0
               for p in values) or sum(values) <= 0:
        raise BadAnswer("\"probs\" must be finite, non-negative numbers, not all 0")
    array = np.asarray(values, dtype=np.float32)
    return array / array.sum()


def answer_label(label, probs: np.ndarray | None, labels: tuple[str, ...]) -> str:
    if label is None:
        if probs is None:
            raise BadAnswer("neither \"label\" nor \"probs\"")
        return labels[int(np.argmax(probs))]
    if label not in labels:
        raise BadAnswer(f"label {label!r} is not in the taxonomy {list(labels)}")
    if probs is not None and probs[labels.index(label)] < probs.max():
        raise BadAnswer(f"label {label!r} is not the most probable in \"probs\"")
    return label


def store_answers(store: LabelStore, answers: list[Answer], labels: tuple[str, ...]) -> dict[str, int]:
    """Answers into the label store under their teacher ids (the last answer for a template wins, as
    in the store); how many templates per teacher."""
    by_teacher: dict[str, dict[str, np.ndarray]] = {}
    for a in answers:
        by_teacher.setdefault(a.teacher_id, {})[a.template] = a.probs
    for teacher_id, probs in by_teacher.items():
        store.put_many(teacher_id, probs, labels)
    return {teacher_id: len(probs) for teacher_id, probs in by_teacher.items()}


# Online accuracy ------------------------------------------------------------------------

class OnlineAccuracy:
    """Share of agreements over the last `window` answers."""

    def __init__(self, window: int):
        self.recent: deque[bool] = deque(maxlen=max(1, window))

    def add(self, agree: bool) -> None:
        self.recent.append(agree)

    def reset(self) -> None:
        self.recent.clear()

    @property
    def value(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("nan")


# The loop -------------------------------------------------------------------------------

class Stopped(Exception):
    """Stop was requested while a step was being retried: leave, uncommitted (it is redelivered)."""


def feedback_group(config) -> str:
    return config.feedback_group_id or f"{config.group_id}.feedback"


class FeedbackLoop:
    """Consumes the feedback topic on its own thread; owns its consumer, its producer (dead letters
    only, made on first need) and its label store connection (SQLite wants one thread)."""

    def __init__(self, config, metrics, classifier: Callable[[], object]):
        self.config = config
        self.metrics = metrics
        self.classifier = classifier  # the model serving now (it changes on hot reload)
        self.accuracy = OnlineAccuracy(config.accuracy_window)
        self.stopping = threading.Event()
        self.consumer = self.producer = self.store = None
        self._scored_version: str | None = None
        self._poll_backoff = Backoff(config.retry_backoff_initial_s, config.retry_backoff_max_s)
        self.thread = threading.Thread(target=self.run, name="logdistill-feedback", daemon=True)

    def start(self) -> "FeedbackLoop":
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        self.stopping.set()
        self.thread.join(timeout_s)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                records = self.poll()
                if records:
                    self.handle(records)
        except Stopped:
            log.info("feedback: stopped with a batch unfinished; it will be redelivered")
        except Exception:  # a bug here must not take the classification service down
            log.exception("feedback loop failed; serving continues without feedback")
        finally:
            self.close()

    def poll(self) -> list:
        try:
            if self.consumer is None:
                self.consumer = make_consumer(dataclasses.replace(
                    self.config, input_topic=self.config.feedback_topic, group_id=feedback_group(self.config),
                    client_id=f"{self.config.client_id}-feedback"))
            batches = self.consumer.poll(timeout_ms=self.config.poll_timeout_ms)
        except KafkaError as exc:
            self._failed("poll", exc)
            self.stopping.wait(self._poll_backoff.next())
            return []
        self._poll_backoff.reset()
        return [record for tp in sorted(batches) for record in batches[tp]]

    def handle(self, records: list) -> None:
        """Store the answers and dead-letter the rest, then commit, then score."""
        classifier = self.classifier()
        parsed = [(record, parse_answer(record.value, classifier.labels)) for record in records]
        answers = [a for _, a in parsed if isinstance(a, Answer)]
        bad = [(record, error) for record, error in parsed if isinstance(error, LineError)]
        if answers and self.config.label_store:
            self.retry("label store write", lambda: self.store_answers(answers, classifier.labels))
        if bad:
            self.retry("dead letters", lambda: self.send_dead_letters(bad, classifier.model_version))
            self.metrics.dead_letters.labels(BAD_FEEDBACK).inc(len(bad))
        self.commit(records)
        self.score(answers, classifier)

    def store_answers(self, answers: list[Answer], labels: tuple[str, ...]) -> None:
        if self.store is None:
            self.store = LabelStore(self.config.label_store)
        store_answers(self.store, answers, labels)

    def send_dead_letters(self, bad: list, model_version: str) -> None:
        if self.producer is None:
            self.producer = make_producer(self.config)
        futures = []
        for record, error in bad:
            value, headers = dead_letter(record, error, model_version, self.config.dlq_max_bytes)
            futures.append(self.producer.send(self.config.dlq_topic, value=value, key=record.key, headers=headers))
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_S)  # raises what the broker said

    def commit(self, records: list) -> None:
        """Not retried: what failed to commit is stored already, and a later commit covers it; at worst
        a restart replays it (stored again, scored again)."""
        try:
            self.consumer.commit(next_offsets(records), timeout_ms=COMMIT_TIMEOUT_MS)
        except KafkaError as exc:
            self._failed("commit", exc)

    def score(self, answers: list[Answer], classifier) -> None:
        if not answers:
            return
        if classifier.model_version != self._scored_version:
            self.accuracy.reset()  # a new model: its own accuracy, not a blend
            self._scored_version = classifier.model_version
        keys = list(dict.fromkeys(a.template for a in answers))
        student = dict(zip(keys, classifier.student.predict_proba(keys).argmax(axis=1)))
        for a in answers:
            agree = classifier.labels[student[a.template]] == a.label
            self.accuracy.add(agree)
            self.metrics.feedback.labels("agree" if agree else "disagree").inc()
        self.metrics.online_accuracy.set(self.accuracy.value)

    def retry(self, what: str, step: Callable[[], None]) -> None:
        """Until it succeeds; a stop request ends the wait (Stopped: the batch stays uncommitted)."""
        backoff = Backoff(self.config.retry_backoff_initial_s, self.config.retry_backoff_max_s)
        while True:
            try:
                return step()
            except (KafkaError, sqlite3.Error, OSError) as exc:
                self._failed(what, exc)
            if self.stopping.wait(backoff.next()):
                raise Stopped

    def _failed(self, what: str, exc: Exception) -> None:
        if isinstance(exc, KafkaError):
            self.metrics.kafka_errors.labels("feedback").inc()
        log.warning("feedback: %s failed (%s: %s); retrying", what, type(exc).__name__, exc)

    def close(self) -> None:
        for name, close in (("consumer", lambda: self.consumer and self.consumer.close(autocommit=False)),
                            ("producer", lambda: self.producer and self.producer.close(timeout=5)),
                            ("label store", lambda: self.store and self.store.close())):
            try:
                close()
            except Exception as exc:  # best effort: everything committed is stored
                log.warning("feedback: closing the %s: %s", name, exc)
