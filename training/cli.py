"""`logdistill train`: registered into the `logdistill` command through an entry point."""

from __future__ import annotations

import json
import os


def register(commands) -> None:
    p = commands.add_parser("train", help="build a student model artifact (corpus → teacher → distil → export)")
    p.add_argument("--out", default="models/default", help="artifact directory to write")
    p.add_argument("--teacher", choices=["recorded", "embedding"], default="recorded")
    p.add_argument("--taxonomy", help="taxonomy YAML (default: the packaged one)")
    p.add_argument("--loghub-dir", help="Loghub-style dataset root (default: ../shared/data/loghub)")
    p.add_argument("--recorded-labels", help="recorded teacher labels CSV (default: ../shared/data/loghub_labels.csv)")
    p.add_argument("--no-seed-corpus", action="store_true", help="leave out the hand-labelled Kubernetes templates")
    p.add_argument("--extra", nargs="*", default=[], help="more corpus files: .log/.txt or .jsonl")
    p.add_argument("--label-store", default="models/label_store.sqlite")
    p.add_argument("--tokenizer", choices=["corpus", "minilm"],
                   help="student vocabulary: MiniLM's WordPiece (default) or one trained on the corpus")
    p.add_argument("--no-pretrained-init", action="store_true", help="random token embeddings, not MiniLM's")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lam", type=float, help="weight of the soft-label KL term (0..1)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--dim", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--augment-variants", type=int)
    p.add_argument("--max-train-templates", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads (a build is byte-reproducible for a given thread count)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run_train)


def run_train(args) -> int:
    import torch

    from training.pipeline import BuildConfig, build_model

    torch.set_num_threads(args.threads)
    cfg = BuildConfig(out_dir=args.out, teacher=args.teacher, taxonomy=args.taxonomy,
                      use_seed_corpus=not args.no_seed_corpus, extra_files=args.extra,
                      label_store=args.label_store, seed=args.seed, max_train_templates=args.max_train_templates,
                      progress=not args.quiet)
    if args.loghub_dir:
        cfg.loghub_dir = args.loghub_dir
    if args.recorded_labels:
        cfg.recorded_labels = args.recorded_labels
    if args.tokenizer:
        cfg.tokenizer = args.tokenizer
    cfg.init_embeddings = not args.no_pretrained_init
    if args.augment_variants is not None:
        cfg.augment_variants = args.augment_variants
    cfg.train = {k: v for k, v in {"epochs": args.epochs, "lam": args.lam,
                                   "temperature": args.temperature}.items() if v is not None}
    cfg.student = {**cfg.student, **{k: v for k, v in {"dim": args.dim, "layers": args.layers}.items()
                                     if v is not None}}
    metrics = build_model(cfg)
    if args.quiet:
        print(json.dumps({k: metrics[k] for k in ("retention", "held_out", "dedup")}))
    return 0
