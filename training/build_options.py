"""The build's command-line options, shared by `train` and `retrain`: one flag per BuildConfig
setting, and the BuildConfig those flags describe. An unset flag keeps BuildConfig's default."""

from __future__ import annotations

import argparse
import os

from training.teachers.registry import LLM_TEACHERS, add_llm_teacher_arguments, llm_teacher_options

TEACHERS = ("recorded", "embedding", "multi", *LLM_TEACHERS)
# flag → where it goes: a BuildConfig field, or a key of BuildConfig.train / BuildConfig.student
TRAIN_FLAGS = ("epochs", "lam", "temperature", "hidden_beta")
STUDENT_FLAGS = ("dim", "layers", "heads")
CONFIG_FLAGS = ("loghub_dir", "recorded_labels", "k8s_labels", "eval_lines", "tokenizer", "augment_variants",
                "test_fraction",
                "seed_lines_per_template", "combine", "train_fraction")


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", choices=TEACHERS, default="recorded",
                   help="recorded LLM labels, MiniLM zero-shot, a combination (--teachers), a local causal LM, "
                        "or an OpenAI-compatible endpoint")
    p.add_argument("--teachers", help="--teacher multi: comma-separated members, e.g. recorded,embedding")
    p.add_argument("--teacher-weights", help="--teacher multi: comma-separated weights, one per member")
    p.add_argument("--combine", choices=["mean", "product"], help="--teacher multi: weighted mean or product of experts")
    p.add_argument("--taxonomy", help="taxonomy YAML (default: the packaged one)")
    p.add_argument("--loghub-dir", help="Loghub-style dataset root (default: ../shared/data/loghub)")
    p.add_argument("--recorded-labels", help="recorded teacher labels CSV (default: ../shared/data/loghub_labels.csv)")
    p.add_argument("--k8s-labels", help="recorded labels of cloud-native log templates, one line each: corpus and "
                                        "labels (default: ../shared/data/k8s_labels.csv)")
    p.add_argument("--no-k8s-labels", action="store_true", help="leave out the k8s_labels.csv corpus")
    p.add_argument("--no-component-split", action="store_true",
                   help="hold out no whole programs (by default a seeded set of components is scored separately)")
    p.add_argument("--eval-lines", nargs="+", metavar="FILE",
                   help="labelled real lines (CSV line,label or JSONL) scored into metrics.json, never trained on "
                        "(default: ../shared/data/k8s_dev_lines.csv)")
    p.add_argument("--no-seed-corpus", action="store_true", help="leave out the hand-labelled Kubernetes templates")
    p.add_argument("--seed-lines-per-template", type=int, help="lines generated per seed template")
    p.add_argument("--tokenizer", choices=["corpus", "minilm"],
                   help="student vocabulary: MiniLM's WordPiece (default) or one trained on the corpus")
    p.add_argument("--no-pretrained-init", action="store_true", help="random token embeddings, not MiniLM's")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lam", type=float, help="weight of the soft-label KL term (0..1)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--hidden-beta", type=float,
                   help="weight of the intermediate-layer loss against a fine-tuned MiniLM teacher-assistant (0: off)")
    p.add_argument("--dim", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--heads", type=int)
    p.add_argument("--augment-variants", type=int)
    p.add_argument("--paraphrases", type=int, metavar="N",
                   help="LLM teachers: N teacher paraphrases per training template, each validated by the teacher")
    p.add_argument("--paraphrase-templates", type=int, help="rewrite at most this many templates (LLM calls: N each)")
    p.add_argument("--paraphrase-threshold", type=float, default=0.5,
                   help="a paraphrase is kept when the teacher gives its source's label at least this probability")
    p.add_argument("--max-train-templates", type=int, help="train on a random sample of this many templates")
    p.add_argument("--max-test-templates", type=int,
                   help="score on a random sample of this many templates of each held-out set (for slow teachers)")
    p.add_argument("--test-fraction", type=float, help="share of source templates held out for evaluation")
    p.add_argument("--train-fraction", type=float,
                   help="train on this seeded share of the training source groups (a learning-curve point; "
                        "the held-out set is unchanged)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads (a build is byte-reproducible for a given thread count)")
    add_llm_teacher_arguments(p)


def build_config(args: argparse.Namespace, **fields):
    """The BuildConfig the parsed flags describe; `fields` (out_dir, label_store, ...) are set as given."""
    from training.pipeline import BuildConfig

    cfg = BuildConfig(teacher=args.teacher, taxonomy=args.taxonomy, use_seed_corpus=not args.no_seed_corpus,
                      init_embeddings=not args.no_pretrained_init, seed=args.seed,
                      max_train_templates=args.max_train_templates,
                      max_test_templates=args.max_test_templates, progress=not args.quiet,
                      teacher_options=llm_teacher_options(args), **fields)
    for name in CONFIG_FLAGS:
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.no_k8s_labels:
        cfg.k8s_labels = None
    if args.no_component_split:
        cfg.component_split = {}
    if args.teachers:
        cfg.teachers = [name.strip() for name in args.teachers.split(",") if name.strip()]
    if args.teacher_weights:
        cfg.teacher_weights = [float(w) for w in args.teacher_weights.split(",")]
    if args.paraphrases:
        cfg.paraphrase = {"n": args.paraphrases, "threshold": args.paraphrase_threshold,
                          "max_templates": args.paraphrase_templates}
    cfg.train = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    cfg.student = {**cfg.student, **{name: getattr(args, name) for name in STUDENT_FLAGS
                                     if getattr(args, name) is not None}}
    return cfg
