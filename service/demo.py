"""`logdistill demo`: the streaming service end to end on one machine with no Kafka installed.

    embedded broker (tansu, in memory, 127.0.0.1, free port)
      └► Loghub lines replayed into the input topic
           └► `logdistill serve` (a child process, exactly the command an edge node runs)
                └► results + dead letters, read back ──► live summary, with serve's /metrics

A Kafka address given the usual ways (--bootstrap-servers, LOGDISTILL_BOOTSTRAP_SERVERS, or
bootstrap_servers in the YAML file) uses that cluster instead of starting a broker. Every `serve`
option is accepted under its usual name; the demo only changes some defaults (topic and group
names, loopback metrics on a free port, tansu-friendly client settings).

It ends once every replayed line has a result or a dead letter and its offset is committed,
prints the summary and exits 0 (1 if a line is left unanswered by --timeout-s); with
--keep-running it goes on serving until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path

from service import config as serve_config
from service.config import ServeConfig

DEMO_DEFAULTS = {
    "model": "models/default",
    "input_topic": "logdistill-demo.logs",
    "output_topic": "logdistill-demo.classified",
    "dlq_topic": "logdistill-demo.dlq",
    "group_id": "logdistill-demo",
    "escalation_topic": "logdistill-demo.escalate",
    "feedback_topic": "logdistill-demo.feedback",
    "metrics_host": "127.0.0.1",
}
DEMO_DEFAULTS = {k: v for k, v in DEMO_DEFAULTS.items() if k in serve_config.FIELDS}  # options serve has
# The repo's layout: ../shared/data/loghub next to the checkout (as for training).
SHARED_LOGHUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "loghub"
REPLAY_SEED = 7  # shuffled, so that a --limit sample mixes every system
TICK_S = 0.5
RATE_WINDOW_S = 3.0
SERVE_STOP_TIMEOUT_S = 40  # > serve's default drain timeout (25 s)


class DemoError(RuntimeError):
    pass


def add_arguments(parser) -> None:
    g = parser.add_argument_group("demo")
    g.add_argument("--logs", nargs="+", metavar="FILE",
                   help=f"log files to replay, one message per line (default: {SHARED_LOGHUB}/*/*_2k.log)")
    g.add_argument("--limit", type=int, default=0, help="replay at most this many lines (0: all)")
    g.add_argument("--rate", type=float, default=0, help="replay at most this many lines/s (0: no limit)")
    g.add_argument("--partitions", type=int, default=2, help="partitions of the input topic, if it creates it")
    g.add_argument("--keep-running", action="store_true",
                   help="after the replay, keep serving and showing until Ctrl-C")
    g.add_argument("--timeout-s", type=float, default=600, help="give up waiting for the results after this long")
    g.add_argument("--summary-json", metavar="PATH", help="also write the final summary here, as JSON")
    serve_config.add_arguments(parser)


def replay_lines(files: list[str] | None, limit: int = 0) -> list[bytes]:
    paths = [Path(f) for f in files] if files else sorted(SHARED_LOGHUB.glob("*/*_2k.log"))
    if not paths:
        raise DemoError(f"no log files to replay: none under {SHARED_LOGHUB} (pass --logs FILE ...)")
    lines = [line for path in paths for line in path.read_bytes().splitlines()]
    random.Random(REPLAY_SEED).shuffle(lines)
    return lines[:limit] if limit > 0 else lines


# Configuration: serve's options, with the demo's defaults underneath ---------------------

def explicit_options(args, environ) -> set[str]:
    """Options the user set anywhere (flag, env var, YAML file): the demo's defaults leave those alone."""
    names = {name for name in serve_config.FIELDS if getattr(args, name, None) is not None}
    names |= {name for name in serve_config.FIELDS if serve_config.env_name(name) in environ}
    config_file = args.config or environ.get(serve_config.CONFIG_ENV)
    if config_file:
        names |= set(serve_config.read_yaml(config_file))
    return names


def serve_flags(values: dict) -> list[str]:
    """Option values → `serve` flags (the child also inherits the env vars and the --config file)."""
    flags = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        else:
            flags += [flag, str(value)]
    return flags


# The moving parts ---------------------------------------------------------------------

class Replayer(threading.Thread):
    """Produces the lines and records the (partition, offset) the broker acknowledged for each."""

    CHUNK = 500

    def __init__(self, config: ServeConfig, topic: str, lines: list[bytes], rate: float = 0):
        super().__init__(name="replay", daemon=True)
        self.config, self.topic, self.lines, self.rate = config, topic, lines, rate
        self.acked: list[tuple[int, int]] = []
        self.error: Exception | None = None
        self.finished = False

    def run(self) -> None:
        from service.kafka_io import make_producer

        try:
            producer = make_producer(self.config)
            chunk = max(1, min(self.CHUNK, int(self.rate / 4))) if self.rate else self.CHUNK
            started = time.monotonic()
            for start in range(0, len(self.lines), chunk):
                futures = [producer.send(self.topic, value=line) for line in self.lines[start:start + chunk]]
                producer.flush()
                self.acked += [(md.partition, md.offset) for md in (f.get(timeout=60) for f in futures)]
                if self.rate:  # pace: never ahead of rate × elapsed
                    time.sleep(max(0.0, len(self.acked) / self.rate - (time.monotonic() - started)))
            producer.close()
        except Exception as exc:  # reported by the main loop, which owns the screen
            self.error = exc
        self.finished = True


class Outputs:
    """Reads the result and dead-letter topics back: which replayed offsets got an answer."""

    def __init__(self, config: ServeConfig, input_topic: str, from_start: bool):
        from kafka import KafkaConsumer, TopicPartition

        from service.kafka_io import common_options

        self.input_topic = input_topic
        self.dlq_topic = config.dlq_topic
        self.consumer = KafkaConsumer(**common_options(config), enable_auto_commit=False,
                                      max_partition_fetch_bytes=max(1024 * 1024, config.dlq_max_bytes * 2))
        partitions = [TopicPartition(t, p) for t in (config.output_topic, config.dlq_topic)
                      for p in wait_for_partitions(self.consumer, t)]
        self.consumer.assign(partitions)
        if from_start:
            self.consumer.seek_to_beginning()
        else:  # a real cluster: older runs' records stay unread; position() pins the end now
            self.consumer.seek_to_end()
            for tp in partitions:
                self.consumer.position(tp)
        self.sources: Counter = Counter()
        self.results = self.dead_letters = 0
        self.examples: dict[str, list[str]] = {}

    def poll(self, timeout_ms: int) -> None:
        from service.records import dead_letter_reason

        for batch in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in batch:
                if record.topic == self.dlq_topic:
                    h = dead_letter_reason(record.headers)
                    topic, source = h.get("source.topic"), (int(h["source.partition"]), int(h["source.offset"]))
                    if topic == self.input_topic:
                        self.dead_letters += 1
                else:
                    result = json.loads(record.value)
                    topic, source = result["source"]["topic"], (result["source"]["partition"],
                                                                 result["source"]["offset"])
                    if topic == self.input_topic:
                        self.results += 1
                        examples = self.examples.setdefault(result["label"], [])
                        if len(examples) < 2:
                            examples.append(result["line"])
                if topic == self.input_topic:
                    self.sources[source] += 1

    def answered(self, acked: list[tuple[int, int]]) -> int:
        return sum(1 for source in acked if source in self.sources)

    @property
    def duplicates(self) -> int:
        return sum(self.sources.values()) - len(self.sources)

    def close(self) -> None:
        self.consumer.close()


def wait_for_partitions(consumer, topic: str, timeout_s: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        time.sleep(0.2)
    raise DemoError(f"topic {topic} has no partitions after {timeout_s:g} s")


def create_topics(config: ServeConfig, input_topic: str, partitions: int) -> None:
    """Input (several partitions), results and dead letters; existing topics are kept as they are."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from service.kafka_io import common_options

    admin = KafkaAdminClient(**common_options(config))
    try:
        for topic, n in ((input_topic, partitions), (config.output_topic, 1), (config.dlq_topic, 1)):
            try:
                admin.create_topics([NewTopic(topic, n, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class Committed:
    """The serve group's committed offsets (committed ⇒ the outputs were acknowledged)."""

    def __init__(self, config: ServeConfig, topic: str):
        from kafka import KafkaConsumer

        from service.kafka_io import common_options

        self.topic = topic
        self.consumer = KafkaConsumer(**common_options(config), group_id=config.group_id, enable_auto_commit=False)

    def covers(self, acked: list[tuple[int, int]]) -> bool:
        from kafka import TopicPartition

        ends: dict[int, int] = {}
        for partition, offset in acked:
            ends[partition] = max(ends.get(partition, 0), offset + 1)
        return all((self.consumer.committed(TopicPartition(self.topic, p)) or 0) >= end for p, end in ends.items())

    def close(self) -> None:
        self.consumer.close()


class Rate:
    """Messages/s consumed by serve: over a recent window, and on average while it had work.

    The average runs from the last scrape before the first message to the first scrape that saw
    the final count, so idle time before the replay and after the last line does not dilute it."""

    def __init__(self):
        self.window: deque = deque()
        self.base: tuple[float, float] | None = None   # last (time, count) before consumption started
        self.peak: tuple[float, float] | None = None   # first (time, count) at the highest count

    def add(self, now: float, consumed: float) -> None:
        if self.base is None or not consumed:
            self.base = (now, consumed)
        elif self.peak is None or consumed > self.peak[1]:
            self.peak = (now, consumed)
        self.window.append((now, consumed))
        while now - self.window[0][0] > RATE_WINDOW_S:
            self.window.popleft()

    @property
    def now(self) -> float | None:
        if not self.window:
            return None
        (t0, c0), (t1, c1) = self.window[0], self.window[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    @property
    def average(self) -> float | None:
        if self.base is None or self.peak is None or self.peak[0] <= self.base[0]:
            return None
        return (self.peak[1] - self.base[1]) / (self.peak[0] - self.base[0])


# The run --------------------------------------------------------------------------------

class Demo:
    def __init__(self, args, environ=None):
        self.args = args
        self.environ = os.environ if environ is None else environ
        self.workdir = Path(tempfile.mkdtemp(prefix="logdistill-demo-"))
        self.broker = None
        self.serve: subprocess.Popen | None = None
        self.closers: list = []
        self.keep_logs = True  # serve's and tansu's logs stay for a look unless the run was clean

    def configure(self) -> tuple[ServeConfig, list[str]]:
        """Starts the embedded broker unless a Kafka address was given; → (config, serve flags)."""
        from service.embedded_broker import SESSION_TIMEOUT_MS, TansuBroker, free_port

        explicit = explicit_options(self.args, self.environ)
        defaults = dict(DEMO_DEFAULTS, metrics_port=free_port())
        if "bootstrap_servers" not in explicit:
            self.broker = TansuBroker(log_path=self.workdir / "tansu.log").start()
            defaults.update(bootstrap_servers=self.broker.bootstrap, enable_idempotence=False,
                            session_timeout_ms=SESSION_TIMEOUT_MS)
        values = {name: value for name, value in defaults.items() if name not in explicit}
        values.update({name: getattr(self.args, name) for name in serve_config.FIELDS
                       if getattr(self.args, name, None) is not None})
        config = serve_config.load_config({**values, "config": self.args.config}, self.environ)
        if not config.metrics_port:
            raise DemoError("the demo reads serve's /metrics: metrics_port cannot be 0 here")
        if not (Path(config.model) / "model.onnx").is_file():
            raise DemoError(f"no model at {config.model}: build one with `make model`, or pass --model DIR")
        flags = serve_flags(values) + (["--config", self.args.config] if self.args.config else [])
        return config, flags

    def start_serve(self, flags: list[str]) -> None:
        log = open(self.workdir / "serve.log", "wb")
        # Its own session: on Ctrl-C the demo sends SIGTERM itself, before stopping the broker.
        self.serve = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", *flags],
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        log.close()

    def serve_log(self, tail: int = 2500) -> str:
        return (self.workdir / "serve.log").read_text(errors="replace")[-tail:]

    def stop_serve(self) -> int | None:
        if self.serve is None:
            return None
        return stop_serve(self.serve)

    def close(self) -> None:
        self.stop_serve()
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # best effort on the way out
                pass
        if self.broker is not None:
            self.broker.stop()
        if self.keep_logs and self.serve is not None:
            print(f"logdistill demo: logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, lines: list[bytes]) -> int:
        from rich.console import Console
        from rich.live import Live

        from service.demo_view import Snapshot, render, scrape, summary
        from service.kafka_io import input_topics

        console = Console()
        config, flags = self.configure()
        topic = input_topics(config)[0]
        metrics_url = f"http://{config.metrics_host}:{config.metrics_port}/metrics"
        console.print(f"broker {config.bootstrap_servers}{' (embedded tansu)' if self.broker else ''}; "
                      f"replaying {len(lines):,} lines into {topic}; serve's metrics: {metrics_url}; "
                      f"serve's log: {self.workdir / 'serve.log'}")
        create_topics(config, topic, self.args.partitions)
        outputs = Outputs(config, topic, from_start=self.broker is not None)
        self.closers.append(outputs.close)
        committed = Committed(config, topic)
        self.closers.append(committed.close)
        self.start_serve(flags)
        replayer = Replayer(config, topic, lines, self.args.rate)
        replayer.start()

        started = time.monotonic()
        deadline = started + self.args.timeout_s
        rate, last_scrape = Rate(), None
        complete = interrupted = False

        def snapshot(phase: str) -> Snapshot:
            acked = replayer.acked
            return Snapshot(phase=phase, bootstrap=config.bootstrap_servers, embedded=self.broker is not None,
                            input_topic=topic, metrics_url=metrics_url, total=len(lines), replayed=len(acked),
                            answered=outputs.answered(acked), results=outputs.results,
                            dead_letters=outputs.dead_letters, duplicates=outputs.duplicates,
                            elapsed_s=time.monotonic() - started, rate_now=rate.now, rate_avg=rate.average,
                            scrape=last_scrape, examples=outputs.examples)

        phase = "replaying"
        try:
            with Live(render(snapshot(phase)), console=console, transient=True, refresh_per_second=4) as live:
                while True:
                    tick = time.monotonic()
                    outputs.poll(timeout_ms=int(TICK_S * 400))
                    last_scrape = scrape(metrics_url) or last_scrape
                    if last_scrape is not None:
                        rate.add(time.monotonic(), last_scrape.value("logdistill_messages_total"))
                    if self.serve.poll() is not None:
                        raise DemoError(f"serve exited with code {self.serve.returncode}:\n{self.serve_log()}")
                    if replayer.error is not None:
                        raise DemoError(f"replay failed: {replayer.error!r}")
                    if not complete and replayer.finished:
                        every_line = config.only_problems or outputs.answered(replayer.acked) == len(replayer.acked)
                        complete = every_line and committed.covers(replayer.acked)
                    phase = ("serving, Ctrl-C to stop" if complete else "waiting for results") \
                        if replayer.finished else "replaying"
                    live.update(render(snapshot(phase)))
                    if complete and not self.args.keep_running:
                        break
                    if not complete and time.monotonic() > deadline and not self.args.keep_running:
                        phase = f"timed out after {self.args.timeout_s:g} s"
                        break
                    time.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
        except KeyboardInterrupt:
            interrupted = True
            phase = "stopped (Ctrl-C)"
        last_scrape = scrape(metrics_url) or last_scrape  # the final figures, before serve exits
        try:
            outputs.poll(timeout_ms=200)
        except Exception:  # a Ctrl-C may have landed inside the client; the counts so far stand
            pass
        code = self.stop_serve()
        final = snapshot("done" if complete and not interrupted else phase)
        console.print(render(final, final=True))
        self.report(console, final, config, code, complete)
        if self.args.summary_json:
            data = dict(summary(final), complete=complete, serve_exit_code=code)
            Path(self.args.summary_json).write_text(json.dumps(data, indent=2) + "\n")
        if complete and code == 0:
            self.keep_logs = False
            return 0
        return 130 if interrupted and not complete else 1

    def report(self, console, s, config: ServeConfig, serve_code: int | None, complete: bool) -> None:
        if complete and not config.only_problems:
            console.print(f"[green]every replayed line answered[/]: {s.results:,} results on "
                          f"{config.output_topic}, {s.dead_letters:,} dead letters on {config.dlq_topic}, "
                          f"{s.duplicates:,} duplicates, in {s.elapsed_s:.1f} s")
        elif complete:
            console.print(f"[green]every replayed line classified and committed[/] (--only-problems: "
                          f"{s.results:,} results emitted) in {s.elapsed_s:.1f} s")
        else:
            console.print(f"[red]{s.replayed - s.answered:,} of {s.replayed:,} replayed lines unanswered[/] "
                          f"({s.phase})")
        if serve_code not in (0, None):
            console.print(f"[red]serve exited with code {serve_code}[/]; its log: {self.workdir / 'serve.log'}\n"
                          f"{self.serve_log()}")
        console.print(f"model card: {Path(config.model) / 'model_card.md'}   "
                      "offline table: python -m training.demo")


def stop_serve(process: subprocess.Popen) -> int:
    """SIGTERM a `serve` child (it finishes, produces and commits its batch), kill it if it overstays;
    its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(SERVE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def raise_keyboard_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(args) -> int:
    from kafka.errors import KafkaError

    from service.config import ConfigError
    from service.embedded_broker import BrokerError

    try:
        import rich  # noqa: F401
    except ImportError:
        print("logdistill demo: needs the demo extras (pip install 'logdistill[demo]')", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # `kill` ends it like Ctrl-C: cleanly
    demo = Demo(args)
    try:
        return demo.run(replay_lines(args.logs, args.limit))
    except (ConfigError, BrokerError, DemoError, KafkaError, OSError) as exc:
        print(f"logdistill demo: {exc}", file=sys.stderr)
        return 2
    finally:
        demo.close()
