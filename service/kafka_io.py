"""Kafka clients for `logdistill serve`, built from ServeConfig: kafka-python, or with
kafka_client=confluent the librdkafka clients of service/confluent_io.py (same calls, same errors).

Only construction lives here; the delivery rules (what to commit when) are in serve.py.
"""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from service.config import ServeConfig

# Short enough that a broker outage surfaces as an error the serve loop retries (and reports
# on /readyz) within seconds, instead of blocking inside the client for minutes.
BOOTSTRAP_TIMEOUT_MS = 10_000
PRODUCER_MAX_BLOCK_MS = 10_000
PRODUCER_REQUEST_TIMEOUT_MS = 10_000
PRODUCER_DELIVERY_TIMEOUT_MS = 30_000
# Headroom over the largest dead letter for the record's headers and batch framing.
PRODUCER_REQUEST_SLACK_BYTES = 64 * 1024
# kafka-python's commit() and close() otherwise wait up to request_timeout_ms (30 s) for an absent
# coordinator: too long for the serve loop's own retry (and SIGTERM's drain deadline) to act.
COMMIT_TIMEOUT_MS = 10_000
CLOSE_TIMEOUT_MS = 5_000
# kafka-python backs off reconnecting up to 30 s, so after a long outage it could take that long to
# notice the broker is back; the Java clients' default is 1 s.
RECONNECT_BACKOFF_MAX_MS = 2_000


def common_options(config: ServeConfig) -> dict:
    return {
        "bootstrap_servers": [s.strip() for s in config.bootstrap_servers.split(",") if s.strip()],
        "client_id": config.client_id,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        **config.kafka_security(),
    }


def input_topics(config: ServeConfig) -> list[str]:
    return [t.strip() for t in config.input_topic.split(",") if t.strip()]


def make_consumer(config: ServeConfig) -> KafkaConsumer:
    if config.kafka_client == "confluent":
        from service.confluent_io import ConfluentConsumer

        return ConfluentConsumer(librdkafka_consumer_settings(config), input_topics(config))
    consumer = KafkaConsumer(
        **common_options(config),
        group_id=config.group_id,
        enable_auto_commit=False,  # offsets are committed by hand, after the results are acknowledged
        auto_offset_reset=config.auto_offset_reset,
        max_poll_records=config.max_poll_records,
        fetch_max_wait_ms=config.fetch_max_wait_ms,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=max(100, config.session_timeout_ms // 3),
        max_poll_interval_ms=config.max_poll_interval_ms,
        # A message over the fetch size still comes back (alone); oversize ones go to the DLQ.
        max_partition_fetch_bytes=max(1024 * 1024, config.max_message_bytes),
    )
    consumer.subscribe(input_topics(config))
    return consumer


def make_producer(config: ServeConfig) -> KafkaProducer:
    if config.kafka_client == "confluent":
        from service.confluent_io import ConfluentProducer

        return ConfluentProducer(librdkafka_producer_settings(config))
    options = {
        **common_options(config),
        "acks": "all",
        "enable_idempotence": config.enable_idempotence,
        "linger_ms": config.linger_ms,
        "max_block_ms": PRODUCER_MAX_BLOCK_MS,
        "request_timeout_ms": PRODUCER_REQUEST_TIMEOUT_MS,
        "delivery_timeout_ms": PRODUCER_DELIVERY_TIMEOUT_MS,
        "max_request_size": max(1024 * 1024, config.dlq_max_bytes + PRODUCER_REQUEST_SLACK_BYTES),
    }
    if config.compression_type:
        options["compression_type"] = config.compression_type
    return KafkaProducer(**options)


# ---- the same settings, spelled for librdkafka (confluent-kafka) ----------------------------------

LIBRDKAFKA_PREFETCH_KB = 4 * 1024
LIBRDKAFKA_PREFETCH_MESSAGES = 5_000  # ~0.25 s of a busy stream
LIBRDKAFKA_FETCH_QUEUE_BACKOFF_MS = 20
LIBRDKAFKA_SECURITY = {"security_protocol": "security.protocol", "sasl_mechanism": "sasl.mechanisms",
                       "sasl_plain_username": "sasl.username", "sasl_plain_password": "sasl.password",
                       "ssl_cafile": "ssl.ca.location", "ssl_certfile": "ssl.certificate.location",
                       "ssl_keyfile": "ssl.key.location", "ssl_password": "ssl.key.password"}


def librdkafka_common(config: ServeConfig) -> dict:
    settings = {"bootstrap.servers": config.bootstrap_servers, "client.id": config.client_id,
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                **{LIBRDKAFKA_SECURITY[name]: value for name, value in config.kafka_security().items()
                   if name in LIBRDKAFKA_SECURITY}}
    if config.security_protocol in ("SSL", "SASL_SSL"):
        settings["ssl.endpoint.identification.algorithm"] = "https" if config.ssl_check_hostname else "none"
    return settings


def librdkafka_consumer_settings(config: ServeConfig) -> dict:
    return {**librdkafka_common(config), "group.id": config.group_id,
            "enable.auto.commit": False, "enable.auto.offset.store": False,  # serve commits, after the acks
            "auto.offset.reset": config.auto_offset_reset, "fetch.wait.max.ms": config.fetch_max_wait_ms,
            "session.timeout.ms": config.session_timeout_ms,
            "heartbeat.interval.ms": max(100, config.session_timeout_ms // 3),
            "max.poll.interval.ms": config.max_poll_interval_ms,
            "max.partition.fetch.bytes": max(1024 * 1024, config.max_message_bytes),
            "fetch.max.bytes": max(50 * 1024 * 1024, config.max_message_bytes),
            "receive.message.max.bytes": max(100 * 1024 * 1024, 2 * config.max_message_bytes),
            # librdkafka prefetches up to 64 MB or 100,000 messages per consumer by default, and a short
            # log line costs several times its size in the queue: a 1 GB edge node wants less (16 MB /
            # 20,000 messages: serve's peak RSS 199 MiB in `make bench`; these: 188 MiB, same lines/s).
            # With a small queue, the pause before fetching again once it is full must be short too
            # (1 s by default: the stream would stop for most of it).
            "queued.max.messages.kbytes": LIBRDKAFKA_PREFETCH_KB,
            "queued.min.messages": max(LIBRDKAFKA_PREFETCH_MESSAGES, 4 * config.max_poll_records),
            "fetch.queue.backoff.ms": LIBRDKAFKA_FETCH_QUEUE_BACKOFF_MS}


def librdkafka_producer_settings(config: ServeConfig) -> dict:
    settings = {**librdkafka_common(config), "acks": "all", "enable.idempotence": config.enable_idempotence,
                "linger.ms": config.linger_ms, "request.timeout.ms": PRODUCER_REQUEST_TIMEOUT_MS,
                "message.timeout.ms": PRODUCER_DELIVERY_TIMEOUT_MS,
                "message.max.bytes": max(1024 * 1024, config.dlq_max_bytes + PRODUCER_REQUEST_SLACK_BYTES)}
    if config.compression_type:
        settings["compression.type"] = config.compression_type
    return settings


def consumer_lag(consumer, committed: dict) -> dict:
    """{TopicPartition: records behind} for the assigned partitions this process has committed.

    The high watermark comes with every fetch response (consumer.highwater), so this costs no
    request; end_offsets() would cost a round trip to the broker per batch.
    """
    lags = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is not None and tp in committed:
            lags[tp] = max(0, highwater - committed[tp])
    return lags


def coordinator_reachable(consumer, producer=None) -> bool:
    """Whether the consumer currently knows its group coordinator, i.e. can reach the cluster.

    An idle poll returns nothing whether or not the brokers are there, and kafka-python has no
    public connectivity signal; its coordinator's own view is the best available. It is private
    API, so it is guarded: without it, readiness falls back to "no error seen".
    """
    if hasattr(consumer, "reachable"):  # confluent_io: the clients' own view, from librdkafka's error callbacks
        return consumer.reachable and getattr(producer, "reachable", True)
    try:
        return not consumer._coordinator.coordinator_unknown()
    except AttributeError:
        return True
