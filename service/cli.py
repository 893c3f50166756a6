"""`logdistill` command line.

The runtime owns `classify`. Other commands (training, model building) register themselves
through the `logdistill.commands` entry-point group, so this module never imports training
code and an edge install without torch simply has fewer commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import entry_points
from typing import BinaryIO, Iterator

from service import __version__

CLASSIFY_CHUNK_LINES = 512


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logdistill", description="Distilled log classification.")
    parser.add_argument("--version", action="version", version=f"logdistill {__version__}")
    commands = parser.add_subparsers(title="commands")
    add_classify_command(commands)
    add_serve_command(commands)
    add_demo_command(commands)
    for plugin in entry_points(group="logdistill.commands"):
        try:
            register = plugin.load()
        except ImportError as exc:  # e.g. training extras (torch) not installed on an edge node
            add_unavailable_command(commands, plugin.name, exc)
            continue
        register(commands)
    return parser


def add_unavailable_command(commands, name: str, exc: ImportError) -> None:
    """Keep a plugin's name visible, failing with the reason only when someone runs it."""
    p = commands.add_parser(name, help=f"(unavailable here: {exc.name or exc})", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(_args) -> int:
        print(f"logdistill: {name!r} commands need the training extras (pip install 'logdistill[train]'): {exc}",
              file=sys.stderr)
        return 2

    p.set_defaults(handler=unavailable)


def add_classify_command(commands) -> None:
    p = commands.add_parser("classify", help="classify log lines from files or stdin, one JSON object per line")
    p.add_argument("files", nargs="*", help="log files (default: stdin)")
    p.add_argument("--model", required=True, help="model artifact directory")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache-size", type=int, default=50_000, help="template cache entries (0 disables)")
    p.add_argument("--max-line-bytes", type=int, default=64 * 1024)
    add_policy_arguments(p)
    p.set_defaults(handler=run_classify)


def add_policy_arguments(parser) -> None:
    """τ and δ of the cascade's decision (service/confidence.py), as `serve` spells them."""
    from service.confidence import EscalationPolicy

    parser.add_argument("--low-confidence", type=float, default=EscalationPolicy.low_confidence,
                        help="escalate results under this calibrated confidence (τ; default %(default)s)")
    parser.add_argument("--max-ood", type=float, default=EscalationPolicy.max_ood,
                        help="escalate results over this out-of-distribution score (δ; 1: never; "
                             "default %(default)s)")


def policy_of(args):
    from service.confidence import EscalationPolicy

    return EscalationPolicy(args.low_confidence, args.max_ood)


def run_classify(args) -> int:
    from service.artifact import ArtifactError
    from service.classifier import Classifier

    try:
        classifier = Classifier.from_dir(args.model, threads=args.threads, batch_size=args.batch_size,
                                         cache_size=args.cache_size, max_line_bytes=args.max_line_bytes,
                                         policy=policy_of(args))
    except ArtifactError as exc:
        print(f"logdistill: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    errors = 0
    for chunk in read_chunks(args.files):
        for result in classifier.classify_raw(chunk):
            record = result.to_record()
            errors += "error" in record
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    if errors:
        print(f"logdistill: {errors} line(s) could not be classified (see their 'error' records)", file=sys.stderr)
    return 0


def add_serve_command(commands) -> None:
    from service.config import add_arguments  # light: kafka-python is imported only when serving

    p = commands.add_parser("serve", help="classify a Kafka topic into a results topic (at-least-once), "
                                          "with Prometheus metrics",
                            description="Options also come from LOGDISTILL_* env vars and a YAML file "
                                        "(same names); flags win over env, env over the file.")
    add_arguments(p)
    p.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    from service.serve import main as serve_main

    return serve_main(args)


def add_demo_command(commands) -> None:
    from service.demo import add_arguments  # light: rich, the broker and Kafka load only when it runs

    p = commands.add_parser("demo", help="replay sample logs through `serve` on an embedded Kafka broker, "
                                         "with a live summary",
                            description="Starts an embedded broker (unless --bootstrap-servers or "
                                        "LOGDISTILL_BOOTSTRAP_SERVERS names a cluster), replays the Loghub "
                                        "lines, runs `serve` on them and shows what it does. Every `serve` "
                                        "option is accepted, from flags, LOGDISTILL_* env vars or a YAML file.")
    add_arguments(p)
    p.set_defaults(handler=run_demo)


def run_demo(args) -> int:
    from service.demo import main as demo_main

    return demo_main(args)


def read_chunks(files: list[str]) -> Iterator[list[bytes]]:
    """Lines as raw bytes, in chunks, so decoding errors are reported per line, not per file."""
    for name in files or ["-"]:
        stream: BinaryIO = sys.stdin.buffer if name == "-" else open(name, "rb")
        with stream:
            chunk: list[bytes] = []
            for raw in stream:
                chunk.append(raw)
                if len(chunk) >= CLASSIFY_CHUNK_LINES:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk


if __name__ == "__main__":
    sys.exit(main())
