"""`logdistill retrain`: registered into the `logdistill` command through an entry point.

Kafka connection settings are read exactly as `serve` reads them (service/config.py: flag, then
LOGDISTILL_* env var, then the --config YAML file), so one Secret serves both. Exit status 0 when
the candidate is promoted and when it is kept (the JSON outcome line says which); non-zero only
when something failed.
"""

from __future__ import annotations

import json
import sys

# The serve options a Kafka snapshot needs: where the brokers are, how to talk to them, how big a message may be.
KAFKA_OPTIONS = ("bootstrap_servers", "client_id", "security_protocol", "sasl_mechanism", "sasl_plain_username",
                 "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password",
                 "ssl_check_hostname", "max_message_bytes", "max_line_bytes")


def register(commands) -> None:
    from service.config import add_arguments
    from training.build_options import add_build_arguments

    p = commands.add_parser(
        "retrain", help="merge new logs into a model root's corpus, train a candidate, promote it if not worse",
        description="Collects new logs (files, a Kafka snapshot, a cluster's pods), labels only templates the "
                    "label store lacks, builds a candidate into <root>/versions/, scores it and the served "
                    "model on the same held-out templates, and swaps <root>/current to it if the gate passes.")
    p.add_argument("--root", required=True, help="model root: versions/, current, corpus/, label_store.sqlite, "
                                                 "reports/")
    p.add_argument("--label-store", help="SQLite label store (default: <root>/label_store.sqlite)")
    p.add_argument("--files", nargs="+", default=[], help="log files to add: .log/.txt or .jsonl")
    sources = p.add_argument_group("Kafka snapshot (topics read from their start to their end offsets now)")
    sources.add_argument("--kafka-topics", default="", help="comma-separated, e.g. logs.escalate,logs.feedback")
    sources.add_argument("--kafka-timeout-s", type=float, default=300.0,
                         help="stop reading after this long even if some partition is not at its end (reported)")
    add_arguments(sources, KAFKA_OPTIONS, config_help="serve's YAML file: its Kafka settings")
    k8s = p.add_argument_group("Kubernetes pod logs")
    k8s.add_argument("--k8s-namespace", help="collect the logs of this namespace's pods")
    k8s.add_argument("--k8s-selector", default="", help="label selector, e.g. app=web,tier!=db")
    k8s.add_argument("--k8s-since-seconds", type=int)
    k8s.add_argument("--k8s-tail-lines", type=int)
    k8s.add_argument("--k8s-limit-bytes", type=int, help="per container")
    k8s.add_argument("--k8s-kubeconfig", help="default: in-cluster service account, else $KUBECONFIG / ~/.kube/config")
    gate = p.add_argument_group("promotion gate")
    gate.add_argument("--gate-metric", choices=["accuracy", "macro_f1"], default="accuracy",
                      help="on held-out templates")
    gate.add_argument("--gate-max-drop", type=float, default=0.0,
                      help="promote iff candidate >= current - this (negative: the candidate must improve)")
    p.add_argument("--keep-versions", type=int, default=5,
                   help="keep the newest N versions under <root>/versions (always current and the one before "
                        "this run); 0 keeps all")
    # Build settings, as `train`'s. Teacher answers from the feedback topic count for the templates they
    # cover when their teacher_id is this build's teacher's.
    add_build_arguments(p)
    p.add_argument("--quiet", action="store_true", help="only the JSON outcome line")
    p.set_defaults(handler=run_retrain)


def sources(args):
    from service.config import load_config
    from training.corpus.k8s_logs import LogQuery
    from training.loop.retrain import Sources

    topics = [t.strip() for t in args.kafka_topics.split(",") if t.strip()]
    found = Sources(files=args.files, kafka_topics=topics, kafka_timeout_s=args.kafka_timeout_s,
                    k8s_kubeconfig=args.k8s_kubeconfig)
    if topics:
        found.kafka = load_config({"config": args.config, **{name: getattr(args, name) for name in KAFKA_OPTIONS}},
                                  require_model=False)
    if args.k8s_namespace:
        found.k8s = LogQuery(args.k8s_namespace, args.k8s_selector, since_seconds=args.k8s_since_seconds,
                             tail_lines=args.k8s_tail_lines, limit_bytes=args.k8s_limit_bytes)
    return found


def run_retrain(args) -> int:
    import torch

    from kafka.errors import KafkaError
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException

    from service.config import ConfigError
    from training.build_options import build_config
    from training.loop.retrain import Gate, RetrainError, retrain

    torch.set_num_threads(args.threads)
    try:
        report = retrain(args.root, build_config(args), sources(args),
                         Gate(args.gate_metric, args.gate_max_drop), log=(lambda _: None) if args.quiet else print,
                         label_store=args.label_store, keep_versions=args.keep_versions or None)
    except (RetrainError, ConfigError, ValueError, OSError, KafkaError, ApiException, ConfigException) as exc:
        print(f"logdistill retrain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({key: report[key] for key in ("promoted", "candidate", "current", "previous", "gate")}))
    return 0
