"""Settings for `logdistill serve`: one table of options, read from flags, env vars and YAML.

12-factor: every option has one name, spelled three ways —
    YAML key      bootstrap_servers: kafka:9092
    env var       LOGDISTILL_BOOTSTRAP_SERVERS=kafka:9092
    flag          --bootstrap-servers kafka:9092
Precedence, highest first: flag, env var, YAML file (--config / LOGDISTILL_CONFIG), default.
The Helm chart uses the same names, so a value moves between them unchanged.
"""

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from service.confidence import EscalationPolicy

ENV_PREFIX = "LOGDISTILL_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"


class ConfigError(ValueError):
    pass


def opt(default: Any, help: str, *, secret: bool = False, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "secret": secret, "choices": choices})


@dataclass
class ServeConfig:
    # Model and classification
    model: str = opt("", "model artifact directory (required)")
    threads: int = opt(2, "ONNX Runtime intra-op threads")
    batch_size: int = opt(32, "model batch size (template cache misses per call)")
    cache_size: int = opt(50_000, "template cache entries (0 disables)")
    max_line_bytes: int = opt(64 * 1024, "longest log line classified; longer ones go to the dead-letter topic")
    max_message_bytes: int = opt(1024 * 1024, "largest Kafka message unwrapped (envelope included)")
    only_problems: bool = opt(False, "emit only results whose label is not --normal-label (all are still counted)")
    normal_label: str = opt("normal", "the label --only-problems leaves out")
    # The cascade's one decision (service/confidence.py): a result is escalated to the teacher when its
    # calibrated confidence is under low_confidence (τ) or its out-of-distribution score is over max_ood (δ).
    low_confidence: float = opt(EscalationPolicy.low_confidence, "calibrated confidence under which a result is "
                                                                 "escalated (τ)")
    max_ood: float = opt(EscalationPolicy.max_ood, "out-of-distribution score over which a result is escalated (δ): the share of "
                               "held-out real log templates nearer to the training set than the line; 1: off")
    # Model updates and the teacher loop (reload.py, cascade.py, feedback.py)
    reload_interval_s: float = opt(10.0, "how often the model directory is checked for a new model, between "
                                         "batches (0: never)")
    escalation_topic: str = opt("logs.escalate", "low-confidence results are also sent here for teacher "
                                                 "labelling (empty: off)")
    escalation_dedup: int = opt(10_000, "escalate a template once per model while it is among this many "
                                        "recently escalated ones (0: every low-confidence line)")
    feedback_topic: str = opt("logs.feedback", "teacher answers (JSON) scored against the student and stored "
                                               "for retraining (empty: off)")
    feedback_group_id: str = opt("", "consumer group of the feedback topic (empty: <group_id>.feedback); "
                                     "one per instance for every instance to see every answer")
    label_store: str = opt("models/label_store.sqlite", "SQLite label store the teacher answers go to "
                                                        "(training's default path; empty: not stored)")
    accuracy_window: int = opt(500, "online accuracy is over this many most recent teacher answers")
    kafka_client: str = opt("kafka-python", "Kafka client library of serve's loop: kafka-python, or confluent "
                                            "(confluent-kafka / librdkafka: several times less CPU per message)",
                            choices=("kafka-python", "confluent"))
    # Kafka topics and group
    bootstrap_servers: str = opt("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated")
    input_topic: str = opt("logs", "topic(s) to classify, comma-separated")
    output_topic: str = opt("logs.classified", "topic for one JSON result per input message")
    dlq_topic: str = opt("logs.dlq", "dead-letter topic: original bytes, reason in headers")
    group_id: str = opt("logdistill", "consumer group")
    client_id: str = opt("logdistill", "Kafka client id")
    auto_offset_reset: str = opt("earliest", "where a new group starts", choices=("earliest", "latest"))
    max_poll_records: int = opt(500, "largest batch taken from one poll")
    poll_timeout_ms: int = opt(1000, "how long one poll waits for records (also the SIGTERM reaction time)")
    fetch_max_wait_ms: int = opt(100, "longest a broker may hold a fetch waiting for data (kafka-python's 500 "
                                      "adds that much latency at low traffic)")
    session_timeout_ms: int = opt(10_000, "consumer group session timeout")
    max_poll_interval_ms: int = opt(300_000, "longest gap between polls before the group evicts this consumer")
    enable_idempotence: bool = opt(True, "idempotent producer (turn off for brokers without support, e.g. tansu)")
    compression_type: str = opt("", "producer compression (gzip, snappy, lz4, zstd); empty: none")
    linger_ms: int = opt(5, "producer linger")
    dlq_max_bytes: int = opt(900_000, "dead-letter values are cut to this size (header says so); under the "
                                      "1 MB default broker limit")
    # Kafka security, passed through to kafka-python unchanged (empty: unset)
    security_protocol: str = opt("PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                                 choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    sasl_mechanism: str = opt("", "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, GSSAPI")
    sasl_plain_username: str = opt("", "SASL username")
    sasl_plain_password: str = opt("", "SASL password (prefer the env var)", secret=True)
    ssl_cafile: str = opt("", "CA bundle to verify the brokers")
    ssl_certfile: str = opt("", "client certificate (mutual TLS)")
    ssl_keyfile: str = opt("", "client private key (mutual TLS)")
    ssl_password: str = opt("", "password of the client private key", secret=True)
    ssl_check_hostname: bool = opt(True, "verify the broker's hostname against its certificate")
    # Behaviour under failure
    retry_backoff_initial_s: float = opt(0.5, "first wait after a Kafka error; doubles up to the max")
    retry_backoff_max_s: float = opt(30.0, "longest wait between retries")
    drain_timeout_s: float = opt(25.0, "on SIGTERM, how long to keep retrying an unfinished batch before "
                                       "exiting without committing it")
    # Observability
    metrics_host: str = opt("0.0.0.0", "address for /metrics, /healthz, /readyz")
    metrics_port: int = opt(9108, "port for /metrics, /healthz, /readyz (0: no HTTP server)")
    log_level: str = opt("INFO", "logging level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    def kafka_security(self) -> dict:
        """The security options kafka-python takes, only those that are set."""
        names = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                 "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
        options = {name: getattr(self, name) for name in names if getattr(self, name)}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
        return options

    def redacted(self) -> dict:
        """For logging: secrets replaced by '***'."""
        return {f.name: ("***" if f.metadata["secret"] and getattr(self, f.name) else getattr(self, f.name))
                for f in dataclasses.fields(self)}


FIELDS = {f.name: f for f in dataclasses.fields(ServeConfig)}


def add_arguments(parser, names: tuple[str, ...] | None = None, config_help: str | None = None) -> None:
    """One flag per option (or per option in `names`). Defaults stay None so that an absent flag lets
    env and YAML through."""
    parser.add_argument("--config", default=None,
                        help=f"{config_help or 'YAML file with the same option names'} (env: {CONFIG_ENV})")
    for name in names or FIELDS:
        f = FIELDS[name]
        flag = "--" + name.replace("_", "-")
        help = f"{f.metadata['help']} (env: {env_name(name)}; default: {f.default!r})"
        if f.type is bool:
            parser.add_argument(flag, dest=name, default=None, action=argparse.BooleanOptionalAction, help=help)
        else:
            parser.add_argument(flag, dest=name, default=None, type=str, choices=f.metadata["choices"], help=help)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def load_config(flags: argparse.Namespace | Mapping | None = None,
                environ: Mapping[str, str] | None = None, require_model: bool = True) -> ServeConfig:
    """Defaults, then the YAML file, then env vars, then flags. Commands that only need the Kafka
    settings (`teach`, `retrain`) pass require_model=False: one Secret and ConfigMap serve them all."""
    flags = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = flags.get("config") or environ.get(CONFIG_ENV)
    if config_file:
        values.update(read_yaml(config_file))
    values.update({name: environ[env_name(name)] for name in FIELDS if env_name(name) in environ})
    values.update({name: flags[name] for name in FIELDS if flags.get(name) is not None})
    config = ServeConfig(**{name: coerce(name, value) for name, value in values.items()})
    if require_model and not config.model:
        raise ConfigError(f"no model directory: pass --model or set {env_name('model')}")
    return config


def read_yaml(path: str | Path) -> dict:
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    data = {str(key).replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {', '.join(unknown)}")
    return data


def coerce(name: str, value: Any):
    """A value from any source (flag text, env text, YAML scalar) → the option's type."""
    f = FIELDS[name]
    try:
        if f.type is bool:
            value = parse_bool(value)
        elif value is None:
            value = f.default
        else:
            value = f.type(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"option {name}: {value!r} is not a valid {f.type.__name__} ({exc})") from None
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise ConfigError(f"option {name}: {value!r} is not one of {', '.join(choices)}")
    return value


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false")
