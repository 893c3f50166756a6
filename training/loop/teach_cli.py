"""`logdistill teach`: registered into the `logdistill` command through an entry point (teach_worker.py)."""

from __future__ import annotations

import logging
import signal


def register(commands) -> None:
    from service.config import add_arguments
    from training.teachers.registry import LLM_TEACHERS, add_llm_teacher_arguments

    p = commands.add_parser("teach", help="answer serve's escalations with an LLM teacher, on the feedback topic",
                            description="Consumes --escalation-topic, labels each template once (label store "
                                        "first), produces answers to --feedback-topic. Kafka options, topics and "
                                        "--label-store are serve's, read the same way (flags, LOGDISTILL_* env, "
                                        "--config YAML).")
    p.add_argument("--teacher", choices=[*LLM_TEACHERS, "embedding"], default="openai")
    p.add_argument("--teacher-group-id", default="logdistill-teacher", help="consumer group of the worker")
    p.add_argument("--taxonomy", help="taxonomy YAML (default: the packaged one); must match the served model's")
    p.add_argument("--exit-when-idle", type=int, metavar="POLLS",
                   help="stop after this many empty polls in a row (a batch job, e.g. a CronJob); default: run on")
    add_llm_teacher_arguments(p)
    add_arguments(p)
    p.set_defaults(handler=run_teach)


def run_teach(args) -> int:
    from service.config import load_config
    from service.taxonomy import load_taxonomy
    from training.loop.teach_worker import TeachWorker
    from training.teachers.registry import build_llm_teacher, llm_teacher_options

    config = load_config(args, require_model=False)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    taxonomy = load_taxonomy(args.taxonomy)
    if args.teacher == "embedding":
        from training.teachers.embedding import EmbeddingTeacher

        teacher = EmbeddingTeacher(taxonomy)
    else:
        teacher = build_llm_teacher(args.teacher, taxonomy, llm_teacher_options(args))
    worker = TeachWorker(config, teacher, taxonomy.labels, group_id=args.teacher_group_id)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    return worker.run(max_idle_polls=args.exit_when_idle)
