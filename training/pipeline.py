"""Build a model artifact end to end: corpus → templates → teacher labels → augment → distil →
evaluate on held-out templates → export int8 ONNX with metrics and a model card.

Read `build_model` top to bottom; each step is one small function below it.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from service.classifier import Classifier
from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import parse_line
from service.taxonomy import Taxonomy, load_taxonomy
from training import k8s_corpus
from training.augment import augment_line
from training.corpus import LogRecord, Template, dedup_templates, read_jsonl, read_loghub_dir, read_text_file
from training.distill import TrainConfig, predict_logits, train_student
from training.evaluate import (agreement, classification_report, group_bootstrap_accuracy, keyword_baseline,
                               plot_confusion, retention)
from training.export import write_artifact
from training.label_store import label_templates
from training.model_card import write_model_card
from training.student import Student, StudentConfig
from training.teachers.base import TeacherQuery
from training.teachers.recorded import RecordedTeacher
from training import pretrained
from training.tokenizer import train_wordpiece, with_cls_sep

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class BuildConfig:
    out_dir: str = "models/default"
    teacher: str = "recorded"                 # recorded | embedding
    taxonomy: str | None = None               # default: the packaged taxonomy
    loghub_dir: str | None = str(SHARED_DATA / "loghub")
    recorded_labels: str = str(SHARED_DATA / "loghub_labels.csv")
    use_seed_corpus: bool = True              # hand-labelled Kubernetes templates (training/data)
    seed_lines_per_template: int = 12
    extra_files: list[str] = field(default_factory=list)  # .log/.txt (unlabelled) or .jsonl
    label_store: str = "models/label_store.sqlite"
    test_fraction: float = 0.2
    augment_variants: int = 4
    max_train_templates: int | None = None     # for quick runs and tests
    seed: int = 0
    # embed_dim=384: MiniLM's token embeddings, frozen, with a learned projection to dim (see pretrained.py).
    student: dict = field(default_factory=lambda: {"dim": 128, "layers": 2, "heads": 4, "max_length": 64,
                                                   "embed_dim": 384})
    tokenizer: str = "minilm"                 # minilm (MiniLM's WordPiece vocabulary) | corpus (trained here)
    init_embeddings: bool = True              # start token embeddings from MiniLM's (see pretrained.py)
    train: dict = field(default_factory=dict)  # overrides of TrainConfig
    progress: bool = True


def build_model(cfg: BuildConfig) -> dict:
    started = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    taxonomy = load_taxonomy(cfg.taxonomy)
    log = _logger(cfg.progress)

    # 1. Corpus → distinct templates, each with a gold label where one is known.
    records = collect_records(cfg)
    templates = dedup_templates(records)
    gold_teacher = make_gold_table(cfg, taxonomy)
    dedup = {"lines": len(records), "templates": len(templates),
             "teacher_call_saving": round(1 - len(templates) / max(len(records), 1), 4)}
    log(f"corpus: {dedup['lines']} lines → {dedup['templates']} templates "
        f"(teacher calls saved by dedup: {dedup['teacher_call_saving']:.1%})")

    # 2. Split by source template (group), stratified by gold label: test templates are unseen.
    train_templates, test_templates = split_by_group(templates, gold_teacher, cfg.test_fraction, cfg.seed)
    if cfg.max_train_templates:
        train_templates = random.Random(cfg.seed).sample(train_templates,
                                                         min(cfg.max_train_templates, len(train_templates)))
    log(f"split: {len(train_templates)} train / {len(test_templates)} held-out templates")

    # 3. Teacher soft labels (through the label store: each template is paid for once).
    teacher = make_teacher(cfg, taxonomy, gold_teacher)
    store = LabelStore(cfg.label_store)
    t0 = time.time()
    soft, label_stats = label_templates(teacher, store, queries(train_templates + test_templates),
                                        taxonomy.labels, progress=cfg.progress)
    teacher_seconds = time.time() - t0
    log(f"teacher {teacher.teacher_id}: {asdict(label_stats)} in {teacher_seconds:.1f}s")

    # 4. Training set: labelled train templates + augmented lines inheriting their label.
    train_texts, train_probs = [], []
    for t in train_templates:
        if t.key in soft:
            train_texts.append(t.key)
            train_probs.append(soft[t.key])
    n_original = len(train_texts)
    aug_texts, aug_probs = augment(train_templates, soft, set(train_texts) | {t.key for t in test_templates},
                                   cfg.augment_variants, cfg.seed)
    train_texts += aug_texts
    train_probs += aug_probs
    log(f"training set: {n_original} templates + {len(aug_texts)} augmented")

    # 5. Tokenizer and student.
    tokenizer = make_tokenizer(cfg, train_texts)
    student_cfg = StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=len(taxonomy.labels),
                                **cfg.student)
    train_cfg = TrainConfig(**{**asdict(TrainConfig()), "seed": cfg.seed, **cfg.train})
    model = Student(student_cfg)
    if cfg.init_embeddings:
        vectors = pretrained.token_vectors(tokenizer)
        if student_cfg.embed_dim:  # frozen MiniLM rows, learned projection: unseen words keep their meaning
            model.tokens.weight.data.copy_(torch.from_numpy(vectors / vectors.std() * 0.02))
            model.tokens.weight.requires_grad_(False)
        else:
            model.tokens.weight.data.copy_(torch.from_numpy(pretrained.project(vectors, student_cfg.dim)))
    history = train_student(model, tokenizer, train_texts, np.stack(train_probs), train_cfg,
                            progress=cfg.progress)

    # 6. Evaluate on held-out templates, then export and re-evaluate through the runtime.
    evaluation = HeldOut.build(test_templates, gold_teacher, soft, taxonomy)
    fp32_logits = predict_logits(model, tokenizer, evaluation.keys)
    version = model_version(cfg, teacher.teacher_id, train_texts)
    config = {"model_version": version, "max_length": student_cfg.max_length, "teacher": teacher.teacher_id,
              "student": student_cfg.to_dict(), "train": train_cfg.to_dict(), "build": _build_settings(cfg),
              "n_parameters": model.n_parameters(), "loss_history": [round(x, 5) for x in history]}
    with tempfile.TemporaryDirectory() as scratch:
        draft = write_artifact(Path(scratch) / "draft", model, tokenizer, taxonomy, config)
        runtime_probs = Classifier.from_dir(draft, cache_size=0).student.predict_proba(evaluation.keys)
    metrics = evaluation.metrics(runtime_probs, fp32_logits)
    # Templates seen in training: how faithfully the student reproduces the teacher where it was taught.
    seen_logits = predict_logits(model, tokenizer, train_texts[:n_original])
    metrics["seen_templates"] = {"templates": n_original, "agreement_with_teacher":
                                 agreement(seen_logits, np.stack(train_probs[:n_original]))}
    metrics.update({"dedup": dedup, "teacher_labelling": {**asdict(label_stats), "seconds": round(teacher_seconds, 2)},
                    "training_examples": {"templates": n_original, "augmented": len(aug_texts)},
                    "build_seconds": round(time.time() - started, 1)})

    # 7. The final artifact, with metrics, confusion matrix and model card.
    with tempfile.TemporaryDirectory() as scratch:
        confusion_png = Path(scratch) / "confusion.png"
        plot_confusion(np.array(metrics["student"]["templates"]["confusion"]), taxonomy.labels, confusion_png,
                       f"student vs gold, held-out templates ({version})")
        card = Path(scratch) / "model_card.md"
        write_model_card(card, config, metrics, taxonomy)
        out = write_artifact(cfg.out_dir, model, tokenizer, taxonomy, config, metrics,
                             extra_files={"confusion.png": confusion_png, "model_card.md": card},
                             train_templates=train_texts)
    store.close()
    log(f"wrote {out} ({version}) in {time.time() - started:.0f}s")
    log(summary_line(metrics))
    return metrics


# ---- 1. corpus ---------------------------------------------------------------------------

def collect_records(cfg: BuildConfig) -> list[LogRecord]:
    records: list[LogRecord] = []
    if cfg.loghub_dir:
        records += read_loghub_dir(cfg.loghub_dir)
    if cfg.use_seed_corpus:
        seed_templates, slots = k8s_corpus.load_seed_templates()
        for raw, template_id, label in k8s_corpus.generate_lines(seed_templates, slots,
                                                                  cfg.seed_lines_per_template, cfg.seed):
            records.append(LogRecord(text=raw, source="k8s-seed", group=f"k8s:{template_id}",
                                     meta={"system": "k8s", "event_id": template_id, "gold": label}))
    for path in cfg.extra_files:
        records += read_jsonl(path) if str(path).endswith(".jsonl") else read_text_file(path)
    return records


def make_gold_table(cfg: BuildConfig, taxonomy: Taxonomy) -> RecordedTeacher:
    """Recorded LLM labels for Loghub (silver) + hand labels for the seed corpus (gold), one table."""
    rows = []
    if cfg.recorded_labels and Path(cfg.recorded_labels).exists():
        import csv

        with open(cfg.recorded_labels, newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    if cfg.use_seed_corpus:
        seed_templates, _ = k8s_corpus.load_seed_templates()
        rows += [{"system": "k8s", "event_id": t.template_id, "label": t.label, "probs": ""} for t in seed_templates]
    return RecordedTeacher(taxonomy, rows)


def gold_index(template: Template, gold_teacher: RecordedTeacher, taxonomy: Taxonomy) -> int | None:
    if "gold" in template.meta:
        return taxonomy.index(template.meta["gold"])
    recorded = gold_teacher.distributions([TeacherQuery(template.key, "", template.meta)])[0]
    return None if recorded is None else int(np.argmax(recorded))


# ---- 2. split ----------------------------------------------------------------------------

def split_by_group(templates: list[Template], gold_teacher: RecordedTeacher, test_fraction: float,
                   seed: int) -> tuple[list[Template], list[Template]]:
    """Hold out whole source templates, stratified by gold label; labels with one group stay in train."""
    taxonomy = gold_teacher.taxonomy
    group_label: dict[str, int | None] = {}
    for t in templates:
        group_label.setdefault(t.group, gold_index(t, gold_teacher, taxonomy))
    by_label: dict[int | None, list[str]] = {}
    for group, label in sorted(group_label.items(), key=lambda kv: kv[0]):
        by_label.setdefault(label, []).append(group)
    rng = random.Random(seed)
    test_groups = set()
    for label, groups in sorted(by_label.items(), key=lambda kv: str(kv[0])):
        if label is None or len(groups) < 2:
            continue  # no gold to score it with, or too rare to hold out
        rng.shuffle(groups)
        test_groups.update(groups[: max(1, round(test_fraction * len(groups)))])
    train = [t for t in templates if t.group not in test_groups]
    test = [t for t in templates if t.group in test_groups]
    return train, test


# ---- 3. teacher --------------------------------------------------------------------------

def make_teacher(cfg: BuildConfig, taxonomy: Taxonomy, gold_teacher: RecordedTeacher):
    if cfg.teacher == "recorded":
        return gold_teacher
    if cfg.teacher == "embedding":
        from training.teachers.embedding import EmbeddingTeacher

        return EmbeddingTeacher(taxonomy)
    raise ValueError(f"unknown teacher {cfg.teacher!r} (recorded | embedding)")


def queries(templates: list[Template]) -> list[TeacherQuery]:
    return [TeacherQuery(key=t.key, example=t.examples[0], meta=t.meta) for t in templates]


# ---- 4. augmentation ---------------------------------------------------------------------

def augment(templates: list[Template], soft: dict[str, np.ndarray], seen: set[str], variants: int,
            seed: int) -> tuple[list[str], list[np.ndarray]]:
    """New template keys from resampled / rewrapped example lines; each inherits its source's label."""
    rng = random.Random(seed)
    texts, probs = [], []
    for t in templates:
        if t.key not in soft or variants <= 0:
            continue
        # Loghub lines carry a vendor header; their bare message is what other envelopes would wrap.
        source = t.meta.get("content") or t.examples[0]
        for line in augment_line(source, rng, level_hint=t.meta.get("level"), n_variants=variants):
            key = template_key(parse_line(line))
            if key not in seen:
                seen.add(key)
                texts.append(key)
                probs.append(soft[t.key])
    return texts, probs


# ---- 5. tokenizer ------------------------------------------------------------------------

def make_tokenizer(cfg: BuildConfig, train_texts: list[str]):
    if cfg.tokenizer == "corpus":
        return train_wordpiece(train_texts)
    if cfg.tokenizer == "minilm":
        return with_cls_sep(pretrained.minilm_tokenizer())
    raise ValueError(f"unknown tokenizer {cfg.tokenizer!r} (corpus | minilm)")


# ---- 6. evaluation -----------------------------------------------------------------------

@dataclass
class HeldOut:
    keys: list[str]
    gold: np.ndarray           # label index per key
    counts: np.ndarray         # lines per key (for line-weighted scores)
    teacher: np.ndarray        # the teacher's distribution per key
    groups: list[str]          # source template per key, "<corpus>:<id>": its keys succeed or fail together
    labels: tuple[str, ...]

    @classmethod
    def build(cls, templates: list[Template], gold_teacher: RecordedTeacher, soft: dict[str, np.ndarray],
              taxonomy: Taxonomy) -> "HeldOut":
        rows = [(t, gold_index(t, gold_teacher, taxonomy)) for t in templates]
        rows = [(t, g) for t, g in rows if g is not None and t.key in soft]
        return cls(keys=[t.key for t, _ in rows], gold=np.array([g for _, g in rows], dtype=int),
                   counts=np.array([t.count for t, _ in rows], dtype=float),
                   teacher=np.stack([soft[t.key] for t, _ in rows]),
                   groups=[t.group for t, _ in rows], labels=taxonomy.labels)

    def scores(self, pred: np.ndarray) -> dict:
        return {"templates": classification_report(self.gold, pred, self.labels),
                "lines": classification_report(self.gold, pred, self.labels, weights=self.counts)}

    def metrics(self, student_probs: np.ndarray, fp32_logits: np.ndarray) -> dict:
        student = self.scores(student_probs)
        teacher = self.scores(self.teacher)
        return {
            "held_out": {"templates": len(self.keys), "lines": int(self.counts.sum())},
            "student": student,
            "teacher": teacher,
            "keyword_baseline": self.scores(keyword_baseline(self.keys, self.labels)),
            "retention": {unit: retention(student[unit], teacher[unit]) for unit in ("templates", "lines")},
            "agreement_with_teacher": {"templates": agreement(student_probs, self.teacher),
                                       "lines": agreement(student_probs, self.teacher, self.counts)},
            "int8_vs_fp32_agreement": agreement(student_probs, fp32_logits),
            "student_accuracy_by_source": self.accuracy_by_source(student_probs),
            "student_accuracy_ci": self.accuracy_ci(student_probs),
        }

    def accuracy_ci(self, pred: np.ndarray) -> dict:
        """95% intervals from resampling source groups: how much the held-out figure could move."""
        correct = np.asarray(pred).argmax(axis=1) == self.gold
        return {"templates": group_bootstrap_accuracy(correct, self.groups),
                "lines": group_bootstrap_accuracy(correct, self.groups, weights=self.counts)}

    @property
    def sources(self) -> list[str]:
        """Corpus of origin per key: a Loghub system or "k8s"."""
        return [group.split(":")[0] for group in self.groups]

    def accuracy_by_source(self, pred: np.ndarray) -> dict:
        correct = np.asarray(pred).argmax(axis=1) == self.gold
        sources = np.array(self.sources)
        return {source: {"templates": int((sources == source).sum()),
                         "accuracy": round(float(correct[sources == source].mean()), 4)}
                for source in sorted(set(sources.tolist()))}


def summary_line(metrics: dict) -> str:
    s, t, k = (metrics[x]["templates"] for x in ("student", "teacher", "keyword_baseline"))
    r = metrics["retention"]["templates"]
    ci = metrics["student_accuracy_ci"]["templates"]
    return (f"held-out templates: student acc {s['accuracy']:.3f} (95% CI {ci['ci_low']:.2f}–{ci['ci_high']:.2f}) "
            f"F1 {s['macro_f1']:.3f} | "
            f"teacher acc {t['accuracy']:.3f} F1 {t['macro_f1']:.3f} | keyword acc {k['accuracy']:.3f} "
            f"F1 {k['macro_f1']:.3f} | retention acc {r['accuracy']:.1%} F1 {r['macro_f1']:.1%}")


def model_version(cfg: BuildConfig, teacher_id: str, train_texts: list[str]) -> str:
    """Deterministic: the same data, teacher and settings give the same version."""
    digest = hashlib.sha256(json.dumps([_build_settings(cfg), teacher_id, train_texts]).encode()).hexdigest()
    return f"{cfg.teacher}-{digest[:10]}"


def _build_settings(cfg: BuildConfig) -> dict:
    settings = asdict(cfg)
    for path_key in ("out_dir", "label_store", "loghub_dir", "recorded_labels", "progress"):
        settings.pop(path_key, None)  # where files live does not change the model
    return settings


def _logger(enabled: bool):
    def log(message: str) -> None:
        if enabled:
            print(f"[logdistill] {message}", flush=True)

    return log
