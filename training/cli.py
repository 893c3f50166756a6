"""`logdistill train`: registered into the `logdistill` command through an entry point."""

from __future__ import annotations

import json


def register(commands) -> None:
    from training.build_options import add_build_arguments

    p = commands.add_parser("train", help="build a student model artifact (corpus → teacher → distil → export)")
    p.add_argument("--out", default="models/default", help="artifact directory to write")
    p.add_argument("--extra", nargs="*", default=[], help="more corpus files: .log/.txt or .jsonl")
    p.add_argument("--label-store", default="models/label_store.sqlite")
    p.add_argument("--quiet", action="store_true")
    add_build_arguments(p)
    p.set_defaults(handler=run_train)


def run_train(args) -> int:
    import torch

    from training.build_options import build_config
    from training.pipeline import build_model

    torch.set_num_threads(args.threads)
    metrics = build_model(build_config(args, out_dir=args.out, extra_files=args.extra, label_store=args.label_store))
    if args.quiet:
        print(json.dumps({k: metrics[k] for k in ("retention", "held_out", "dedup")}))
    return 0
