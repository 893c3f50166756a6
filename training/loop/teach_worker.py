"""`logdistill teach`: the teacher's side of the low-confidence cascade, online.

    serve ──(low confidence)──▶ logs.escalate ──▶ teach ──▶ LLM teacher
      ▲                                             │
      └──── online accuracy + label store ◀── logs.feedback

`serve` escalates the lines its student is unsure of (service/cascade.py). This worker reads
them, has the teacher label their templates, and answers on the feedback topic in the format
service/feedback.py reads, so `serve` scores its student against the teacher and stores the
answer for the next `logdistill retrain`.

- The teacher labels templates, not lines: a batch is deduplicated by template key, and every
  template goes through the label store first, so a template escalated again (by another
  instance, after a restart, by a new model) costs no second teacher call.
- Delivery: the answers (and dead letters) of a batch are acknowledged by the broker before its
  offsets are committed: at least once. A replayed answer is stored again, harmlessly.
- An escalation that is not one (not JSON, no line) goes to the dead-letter topic with reason
  `bad_escalation`; a template the teacher could not label (a malformed answer after retries)
  with reason `teacher_failed`, its escalation intact, to be replayed when the teacher is fixed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass, field

import numpy as np
from kafka.errors import KafkaError

from service.classifier import LineError, preview
from service.config import ServeConfig
from service.feedback import BadAnswer, load_json
from service.kafka_io import make_consumer, make_producer
from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import parse_line
from service.records import dead_letter, template_id
from service.consuming import Backoff, next_offsets
from training.teachers.label_store import label_templates
from training.teachers.base import Teacher, TeacherQuery

log = logging.getLogger("logdistill.teach")
BAD_ESCALATION = "bad_escalation"
TEACHER_FAILED = "teacher_failed"
ACK_TIMEOUT_S = 60


@dataclass
class Escalation:
    key: str    # the template key the student was unsure of
    line: str   # one real line of it: what the teacher is shown
    echo: dict  # what the answer carries back (template id, student answer, model version)


def parse_escalation(value: bytes | None) -> Escalation | LineError:
    """An escalation as service/cascade.py writes it; a bare JSON {"line": ...} is accepted too."""
    try:
        obj = load_json(value)
        if not isinstance(obj, dict) or not isinstance(obj.get("line"), str) or not obj["line"].strip():
            raise BadAnswer("an escalation is a JSON object with a non-empty \"line\"")
    except BadAnswer as exc:
        return LineError(BAD_ESCALATION, str(exc), preview(value or b""))
    template = obj.get("template")
    key = template.get("key") if isinstance(template, dict) else None
    if not isinstance(key, str) or not key.strip():
        key = template_key(parse_line(obj["line"]))  # as serve keys a line
    echo = {name: obj[name] for name in ("student", "model_version", "source") if name in obj}
    return Escalation(key=key, line=obj["line"], echo=echo)


def answer_value(escalation: Escalation, probs: np.ndarray, labels: tuple[str, ...], teacher_id: str) -> bytes:
    """The feedback message (service/feedback.py's format) for one template."""
    return json.dumps({
        "template": {"id": template_id(escalation.key), "key": escalation.key},
        "line": escalation.line,
        "label": labels[int(np.argmax(probs))],
        "probs": {label: round(float(p), 6) for label, p in zip(labels, probs)},
        "teacher_id": teacher_id,
        **escalation.echo,
    }).encode()


@dataclass
class TeachStats:
    escalations: int = 0
    templates: int = 0
    from_store: int = 0
    labelled: int = 0
    failed: int = 0
    bad: int = 0
    answers: int = 0
    batches: int = 0

    def add(self, **counts) -> None:
        for name, n in counts.items():
            setattr(self, name, getattr(self, name) + n)


@dataclass
class TeachWorker:
    config: ServeConfig        # Kafka settings, escalation_topic, feedback_topic, dlq_topic, label_store
    teacher: Teacher
    labels: tuple[str, ...]
    group_id: str = "logdistill-teacher"
    stats: TeachStats = field(default_factory=TeachStats)

    def __post_init__(self):
        self.stopping = threading.Event()
        self.consumer = self.producer = self.store = None  # made in run()'s thread (SQLite wants one thread)

    def stop(self) -> None:
        self.stopping.set()

    def run(self, max_idle_polls: int | None = None, max_failures: int = 20) -> int:
        """Until stop() (or, for a batch job, until `max_idle_polls` empty polls in a row once partitions
        are assigned). A batch that fails (Kafka, the teacher) is retried with backoff; `max_failures` in a
        row end the worker with the error, for its supervisor to see and restart it."""
        idle = failures = 0
        backoff = Backoff(self.config.retry_backoff_initial_s, self.config.retry_backoff_max_s)
        try:
            while not self.stopping.is_set():
                try:
                    records = self.poll()
                    if records:
                        self.handle(records)
                    backoff.reset()
                    failures = 0
                except Exception as exc:  # Kafka or the teacher: the batch is uncommitted, it comes back
                    failures += 1
                    if failures >= max_failures:
                        raise
                    log.warning("teach: %s: %s; retrying", type(exc).__name__, exc)
                    self.rewind()
                    self.stopping.wait(backoff.next())
                    continue
                if self.consumer is not None and self.consumer.assignment():  # not idle while joining
                    idle = 0 if records else idle + 1
                if max_idle_polls is not None and idle >= max_idle_polls:
                    break
        finally:
            self.close()
        log.info("teach: %s", dataclasses.asdict(self.stats))
        return 0

    def poll(self) -> list:
        if self.store is None:
            self.store = LabelStore(self.config.label_store or ":memory:")
        if self.consumer is None:
            own = dataclasses.replace(self.config, input_topic=self.config.escalation_topic, group_id=self.group_id,
                                      client_id=f"{self.config.client_id}-teach")  # told apart from serve's
            self.consumer, self.producer = make_consumer(own), make_producer(own)
        batches = self.consumer.poll(timeout_ms=self.config.poll_timeout_ms)
        return [record for tp in sorted(batches) for record in batches[tp]]

    def handle(self, records: list) -> None:
        """Label the batch's templates, send answers and dead letters, await acks, then commit."""
        parsed = [(record, parse_escalation(record.value)) for record in records]
        escalations = {e.key: e for _, e in parsed if isinstance(e, Escalation)}  # one answer per template
        queries = [TeacherQuery(key=e.key, example=e.line) for e in escalations.values()]
        answers, labelling = label_templates(self.teacher, self.store, queries, self.labels)
        # Keyed by template id, as serve keys escalations: one template, one partition.
        outputs = [(self.config.feedback_topic, template_id(e.key), answer_value(e, answers[e.key], self.labels,
                                                                    self.teacher.teacher_id), None)
                   for e in escalations.values() if e.key in answers]
        for record, item in parsed:
            if isinstance(item, LineError):
                outputs.append(self._dead_letter(record, item))
            elif item.key not in answers:
                outputs.append(self._dead_letter(record, LineError(
                    TEACHER_FAILED, f"teacher {self.teacher.teacher_id} gave no valid answer", "")))
        futures = [self.producer.send(topic, key=key.encode() if isinstance(key, str) else key, value=value,
                                      headers=headers or [])
                   for topic, key, value, headers in outputs]
        for future in futures:
            future.get(timeout=ACK_TIMEOUT_S)  # raises what the broker said: the batch is then replayed
        self.consumer.commit(next_offsets(records))
        self.stats.add(escalations=len(records), templates=labelling.asked, from_store=labelling.from_store,
                       labelled=labelling.labelled, failed=labelling.failed,
                       bad=sum(isinstance(item, LineError) for _, item in parsed),
                       answers=sum(topic == self.config.feedback_topic for topic, *_ in outputs), batches=1)

    def _dead_letter(self, record, error: LineError) -> tuple:
        # The model that handled the message here is the teacher: its id goes where serve puts its model's.
        value, headers = dead_letter(record, error, self.teacher.teacher_id, self.config.dlq_max_bytes)
        return self.config.dlq_topic, record.key, value, headers

    def rewind(self) -> None:
        """After a failed batch, read it again from the last commit (kafka-python moved past it)."""
        try:
            if self.consumer is not None:
                for tp in self.consumer.assignment():
                    committed = self.consumer.committed(tp)
                    if committed is None:
                        self.consumer.seek_to_beginning(tp)
                    else:
                        self.consumer.seek(tp, committed)
        except KafkaError as exc:
            log.warning("teach: rewind failed (%s); restarting the consumer", exc)
            self.consumer.close(autocommit=False)
            self.consumer = None

    def close(self) -> None:
        for close in (lambda: self.consumer and self.consumer.close(autocommit=False),
                      lambda: self.producer and self.producer.close(timeout=5),
                      lambda: self.store and self.store.close()):
            try:
                close()
            except Exception as exc:  # best effort: everything committed was delivered
                log.warning("teach: closing: %s", exc)
