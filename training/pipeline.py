"""Build a model artifact end to end: corpus → templates → teacher labels → augment → distil →
evaluate on held-out templates → export int8 ONNX with metrics and a model card.

Read `build_model` top to bottom; each step is one small function below it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
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
from training.corpus import k8s_corpus
from training.corpus.augment import augment_line
from training.corpus.readers import (K8S_LABELS_SYSTEM, LogRecord, Template, dedup_templates, read_jsonl,
                                     read_k8s_labels, read_loghub_dir, read_text_file)
from training.distill.loop import TrainConfig, predict_logits, predict_pooled, train_student
from service.confidence import NEIGHBOURS_FILE, EvidenceTable
from service.familiarity import NGRAMS_FILE
from training.evaluation.calibration import (calibration_report, fit_familiarity, fit_temperature,
                                             plot_reliability, policy_outcome, risk_coverage)
from training.evaluation.held_out import HeldOut
from training.evaluation.metrics import agreement, plot_confusion
from training.evaluation.splits import component_split, gold_index, sample_groups, split_by_group, split_stable
from training.distill.export import write_artifact
from training.teachers.label_store import label_templates
from training.evaluation.model_card import write_model_card
from training.distill.student import Student, StudentConfig
from training.teachers.base import TeacherQuery
from training.teachers.recorded import RecordedTeacher
from training.teachers.registry import LLM_TEACHERS, build_llm_teacher
from training.teachers.usage import UsageReport
from training.distill import pretrained
from training.distill.tokenizer import train_wordpiece, with_cls_sep

# ../shared/data beside the checkout; LOGDISTILL_SHARED_DATA for an installed package (the train image).
SHARED_DATA = Path(os.environ.get("LOGDISTILL_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
HELDOUT_FILE = "heldout.json"
NON_LOG_LINES = Path(__file__).resolve().parent / "data" / "non_log_lines.jsonl"


@dataclass
class BuildConfig:
    out_dir: str = "models/default"
    teacher: str = "recorded"                 # recorded | embedding | multi | local-lm | openai
    teacher_options: dict = field(default_factory=dict)  # local-lm / openai settings (teachers/registry.py)
    # teacher="multi" (training/teachers/multi.py): these make_teacher names, combined per template.
    teachers: list[str] = field(default_factory=lambda: ["recorded", "embedding"])
    teacher_weights: list[float] | None = None  # one per member; None: equal weights
    combine: str = "mean"                     # mean | product (normalised weighted geometric mean)
    # train={"hidden_beta": β > 0}: intermediate-layer KD from a MiniLM teacher-assistant
    # (training/distill/assistant.py);
    # this dict overrides its AssistantConfig. Fine-tuned weights are cached next to the label store.
    assistant: dict = field(default_factory=dict)
    taxonomy: str | None = None               # default: the packaged taxonomy
    loghub_dir: str | None = str(SHARED_DATA / "loghub")
    recorded_labels: str = str(SHARED_DATA / "loghub_labels.csv")
    # Recorded teacher labels of cloud-native log templates, one realistic line each: corpus and labels
    # at once (training/corpus/readers.py read_k8s_labels; the recorded teacher answers them by row id).
    k8s_labels: str | None = str(SHARED_DATA / "k8s_labels.csv")
    use_seed_corpus: bool = True              # hand-labelled Kubernetes templates (training/data)
    seed_lines_per_template: int = 12
    extra_files: list[str] = field(default_factory=list)  # .log/.txt (unlabelled) or .jsonl
    label_store: str = "models/label_store.sqlite"
    test_fraction: float = 0.2
    # Whole programs held out (training/evaluation/splits.py component_split): software never seen.
    component_split: dict = field(default_factory=lambda: {"fraction": 0.12, "min_per_label": 10,
                                                           "max_component_share": 0.02})
    # More whole programs held out, neither trained on nor scored: the confidence calibration and the
    # out-of-distribution reference are fitted on them (training/evaluation/calibration.py). Empty: neither.
    # 16% of the component-tagged templates: with 8% (34 programs) the temperature missed the component
    # split's accuracy by 0.06 (ECE 0.066); with 16% (63 programs), ECE 0.041 (2026-12-03, README Results).
    calibration_split: dict = field(default_factory=lambda: {"fraction": 0.16, "min_per_label": 5,
                                                             "max_component_share": 0.02})
    # Real lines with hand-checked labels, scored through the runtime: evaluation only, never trained on.
    eval_lines: list[str] = field(default_factory=lambda: [str(p) for p in [SHARED_DATA / "k8s_dev_lines.csv"]
                                                           if p.exists()])
    augment_variants: int = 4
    # LLM paraphrases (training/corpus/paraphrase.py), opt-in, LLM teachers only: {"n": per template,
    # "threshold": min teacher probability of the source's label, "max_templates": how many to rewrite}.
    paraphrase: dict = field(default_factory=dict)
    max_train_templates: int | None = None     # for quick runs and tests
    # Keep this seeded share of the training source groups (held-out set unchanged): a learning
    # curve's point, i.e. what fewer teacher-labelled sources would have given (bench/ceiling.py).
    train_fraction: float = 1.0
    max_test_templates: int | None = None      # score on a random sample of each held-out set (slow teachers)
    # Retraining (training/loop/retrain.py): a split that stays put from build to build. These groups are held
    # out, any other gold group by a seeded hash of its name (split_stable); heldout.json joins the artifact.
    held_out_groups: list[str] | None = None
    seed: int = 0
    # embed_dim=384: MiniLM's token embeddings, frozen, with a learned projection to dim (see pretrained.py).
    student: dict = field(default_factory=lambda: {"dim": 128, "layers": 2, "heads": 4, "max_length": 64,
                                                   "embed_dim": 384})
    tokenizer: str = "minilm"                 # minilm (MiniLM's WordPiece vocabulary) | corpus (trained here)
    init_embeddings: bool = True              # start token embeddings from MiniLM's (see pretrained.py)
    # With embed_dim: keep MiniLM's token rows frozen (unseen words keep their meaning) or fine-tune them too.
    # Either way export folds rows and projection into one table: no cost at run time.
    freeze_embeddings: bool = True
    train: dict = field(default_factory=dict)  # overrides of TrainConfig
    progress: bool = True


@dataclass
class TrainingData:
    """Steps 1-4 of a build: what the student is trained on and scored against."""
    taxonomy: Taxonomy
    gold_teacher: RecordedTeacher
    teacher_id: str
    train_templates: list[Template]
    test_templates: list[Template]       # the template split: unseen templates of programs seen in training
    component_templates: list[Template]  # the component split: every template of the held-out programs
    components: list[str]                # the programs held out whole
    calibration_templates: list[Template]  # more whole programs: fit confidence and OOD, never trained on
    calibration_components: list[str]
    soft: dict[str, np.ndarray]        # teacher distribution per labelled template key (train + held-out)
    texts: list[str]                   # training inputs: the labelled train templates, then augmented keys
    probs: list[np.ndarray]            # the teacher distribution for each of `texts`
    n_templates: int                   # texts[:n_templates] are templates, the rest augmented
    metrics: dict                      # dedup, teacher labelling, training examples, teacher reports

    def held_out(self) -> HeldOut:
        return HeldOut.build(self.test_templates, self.gold_teacher, self.soft, self.taxonomy)

    def component_held_out(self) -> HeldOut:
        return HeldOut.build(self.component_templates, self.gold_teacher, self.soft, self.taxonomy,
                             source_key="component")

    def calibration_held_out(self) -> HeldOut:
        return HeldOut.build(self.calibration_templates, self.gold_teacher, self.soft, self.taxonomy,
                             source_key="component")


def build_model(cfg: BuildConfig) -> dict:
    started = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    log = _logger(cfg.progress)
    data = prepare_training_data(cfg, log)
    taxonomy, train_texts, train_probs, n_original = data.taxonomy, data.texts, data.probs, data.n_templates
    extra_metrics = dict(data.metrics)  # dedup, teacher labelling, training examples, teacher reports
    evaluation = data.held_out()  # held-out keys and gold: scores the student, and the assistant if any
    components = data.component_held_out()

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
            model.tokens.weight.requires_grad_(not cfg.freeze_embeddings)
        else:
            model.tokens.weight.data.copy_(torch.from_numpy(pretrained.project(vectors, student_cfg.dim)))
    hidden_targets = None
    if train_cfg.hidden_beta > 0:  # intermediate-layer KD: targets from the MiniLM teacher-assistant
        from training.distill import assistant
        hidden_targets, extra_metrics["assistant"] = assistant.hidden_targets(
            Path(cfg.label_store).parent / "assistant_cache", tokenizer, train_texts, np.stack(train_probs),
            n_original, student_cfg.layers, train_cfg.hidden_layers,
            assistant.config_for(cfg.assistant, train_cfg, student_cfg.max_length),
            held_out=evaluation)
        log(f"teacher-assistant: {extra_metrics['assistant'].get('held_out')}")
    history = train_student(model, tokenizer, train_texts, np.stack(train_probs), train_cfg,
                            progress=cfg.progress, hidden_targets=hidden_targets)

    # 6. Export a draft; fit confidence (temperature, OOD model) on the calibration split with the draft's
    # int8 runtime; then score every held-out set through the calibrated runtime users get.
    fp32_logits = predict_logits(model, tokenizer, evaluation.keys)
    version = model_version(cfg, data.teacher_id, train_texts)
    config = {"model_version": version, "max_length": student_cfg.max_length, "teacher": data.teacher_id,
              "student": student_cfg.to_dict(), "train": train_cfg.to_dict(), "build": _build_settings(cfg),
              "n_parameters": model.n_parameters(), "loss_history": [round(x, 5) for x in history]}
    scratch_dir = tempfile.TemporaryDirectory()
    scratch = Path(scratch_dir.name)
    # Evidence: every labelled training template, searched in the graph by pooled-vector similarity.
    evidence_keys = train_texts[:n_original]
    evidence_index = predict_pooled(model, tokenizer, evidence_keys)
    evidence_labels = [taxonomy.labels[i] for i in np.stack(train_probs[:n_original]).argmax(axis=1)]
    confidence_files = {NEIGHBOURS_FILE: EvidenceTable(evidence_keys, evidence_labels).write(scratch)}
    draft = Classifier.from_dir(write_artifact(scratch / "draft", model, tokenizer, taxonomy, config), cache_size=0)
    calibration_split = data.calibration_held_out()
    fitted, ood_files = fit_confidence(draft.student, calibration_split, train_texts, scratch)
    confidence_files.update(ood_files)
    if fitted:
        config["calibration"] = {**fitted, "components": data.calibration_components}
    runtime = Classifier.from_dir(write_artifact(scratch / "calibrated", model, tokenizer, taxonomy, config,
                                                 extra_files=confidence_files, evidence_index=evidence_index),
                                  cache_size=0)
    metrics = evaluation.metrics(runtime.student.predict_proba(evaluation.keys), fp32_logits)
    if components.keys:
        metrics["component_split"] = {
            "components": data.components,
            **components.metrics(runtime.student.predict_proba(components.keys),
                                 predict_logits(model, tokenizer, components.keys))}
    if cfg.eval_lines:
        metrics["real_lines"] = score_eval_lines(runtime, cfg.eval_lines)
    metrics["confidence"] = confidence_metrics(runtime, {
        "calibration_split": calibration_split, "template_split": evaluation, "component_split": components})
    # Templates seen in training: how faithfully the student reproduces the teacher where it was taught.
    seen_logits = predict_logits(model, tokenizer, train_texts[:n_original])
    metrics["seen_templates"] = {"templates": n_original, "agreement_with_teacher":
                                 agreement(seen_logits, np.stack(train_probs[:n_original]))}
    metrics.update({**extra_metrics, "build_seconds": round(time.time() - started, 1)})

    # 7. The final artifact, with metrics, confusion matrices, reliability diagram and model card.
    with scratch_dir:
        extra_files = dict(confidence_files)
        for name, split, title in (("confusion.png", metrics, "held-out templates"),
                                   ("confusion_components.png", metrics.get("component_split"), "held-out programs")):
            if split:
                extra_files[name] = scratch / name
                plot_confusion(np.array(split["student"]["templates"]["confusion"]), taxonomy.labels,
                               extra_files[name], f"student vs gold, {title} ({version})")
        if metrics["confidence"].get("splits"):
            extra_files["reliability.png"] = scratch / "reliability.png"
            plot_reliability(metrics["confidence"]["splits"], extra_files["reliability.png"],
                             f"reliability before and after temperature scaling ({version})")
        extra_files["model_card.md"] = scratch / "model_card.md"
        write_model_card(extra_files["model_card.md"], config, metrics, taxonomy)
        if cfg.held_out_groups is not None:  # what a retrain scores the served model on (same keys, same gold)
            extra_files[HELDOUT_FILE] = evaluation.write(scratch / HELDOUT_FILE,
                                                         data.test_templates + data.component_templates)
        out = write_artifact(cfg.out_dir, model, tokenizer, taxonomy, config, metrics,
                             extra_files=extra_files, train_templates=train_texts, evidence_index=evidence_index)
    log(f"wrote {out} ({version}) in {time.time() - started:.0f}s")
    log(summary_line(metrics))
    return metrics


def prepare_training_data(cfg: BuildConfig, log=lambda message: None) -> TrainingData:
    """Corpus → templates → split → teacher labels → augmented training set (steps 1-4)."""
    if not 0 < cfg.train_fraction <= 1:  # before any corpus work
        raise ValueError(f"train_fraction must be in (0, 1], got {cfg.train_fraction}")
    taxonomy = load_taxonomy(cfg.taxonomy)

    # 1. Corpus → distinct templates, each with a gold label where one is known.
    records = collect_records(cfg)
    templates = dedup_templates(records)
    gold_teacher = make_gold_table(cfg, taxonomy)
    dedup = {"lines": len(records), "templates": len(templates),
             "teacher_call_saving": round(1 - len(templates) / max(len(records), 1), 4)}
    log(f"corpus: {dedup['lines']} lines → {dedup['templates']} templates "
        f"(teacher calls saved by dedup: {dedup['teacher_call_saving']:.1%})")

    # 2. Split: whole programs out (component split), then source templates (group) out of the rest,
    # stratified by gold label. Both held-out sets are unseen in training.
    components = (component_split(templates, gold_teacher, seed=cfg.seed, **cfg.component_split)
                  if cfg.component_split else [])
    held_components = set(components)
    component_templates = [t for t in templates if t.meta.get("component") in held_components]
    rest = [t for t in templates if t.meta.get("component") not in held_components]
    # Then the calibration programs, from what is left, with their own seed.
    calibration_components = (component_split(rest, gold_teacher, seed=cfg.seed + 1, **cfg.calibration_split)
                              if cfg.calibration_split else [])
    calibration_templates = [t for t in rest if t.meta.get("component") in set(calibration_components)]
    rest = [t for t in rest if t.meta.get("component") not in set(calibration_components)]
    if cfg.held_out_groups is None:
        train_templates, test_templates = split_by_group(rest, gold_teacher, cfg.test_fraction, cfg.seed)
    else:
        train_templates, test_templates = split_stable(rest, gold_teacher, cfg.held_out_groups,
                                                       cfg.test_fraction, cfg.seed)
    if cfg.train_fraction < 1.0:  # a learning curve's point: fewer labelled sources, the same held-out set
        train_templates = sample_groups(train_templates, cfg.train_fraction, cfg.seed)
    if cfg.max_train_templates:
        train_templates = random.Random(cfg.seed).sample(train_templates,
                                                         min(cfg.max_train_templates, len(train_templates)))
    if cfg.max_test_templates:  # a slow teacher (a local LLM on CPU) labels a sample of each held-out set
        test_templates, component_templates, calibration_templates = (
            random.Random(cfg.seed).sample(held, min(cfg.max_test_templates, len(held)))
            for held in (test_templates, component_templates, calibration_templates))
    log(f"split: {len(train_templates)} train / {len(test_templates)} held-out templates / "
        f"{len(component_templates)} templates of {len(components)} held-out components / "
        f"{len(calibration_templates)} calibration templates of {len(calibration_components)} components")
    held_out_templates = test_templates + component_templates + calibration_templates

    # 3. Teacher soft labels (through the label store: each template is paid for once).
    teacher = make_teacher(cfg, taxonomy, gold_teacher)
    store = LabelStore(cfg.label_store)
    t0 = time.time()
    soft, label_stats = label_templates(teacher, store, queries(train_templates + held_out_templates),
                                        taxonomy.labels, progress=cfg.progress)
    teacher_seconds = time.time() - t0
    log(f"teacher {teacher.teacher_id}: {asdict(label_stats)} in {teacher_seconds:.1f}s")
    extra_metrics = {}
    if isinstance(getattr(teacher, "usage", None), UsageReport):  # an endpoint: requests, tokens, cost
        extra_metrics["teacher_usage"] = teacher.report()
    if cfg.teacher == "multi":  # per-member agreement, with the combination and with gold
        labelled = train_templates + held_out_templates
        gold = {t.key: g for t in labelled if (g := gold_index(t, gold_teacher, taxonomy)) is not None}
        extra_metrics["teachers"] = teacher.report(queries(labelled), soft, gold)

    # 4. Training set: labelled train templates + augmented lines inheriting their label.
    train_texts, train_probs = [], []
    for t in train_templates:
        if t.key in soft:
            train_texts.append(t.key)
            train_probs.append(soft[t.key])
    n_original = len(train_texts)
    aug_texts, aug_probs = augment(train_templates, soft, set(train_texts) | {t.key for t in held_out_templates},
                                   cfg.augment_variants, cfg.seed)
    train_texts += aug_texts
    train_probs += aug_probs
    if cfg.paraphrase.get("n"):  # the LLM teacher rewrites templates; only validated rewrites are kept
        para_texts, para_probs, extra_metrics["paraphrase"] = paraphrase(
            cfg, teacher, train_templates, soft, exclude={t.key for t in held_out_templates} | set(train_texts))
        train_texts += para_texts
        train_probs += para_probs
        aug_texts += para_texts
    log(f"training set: {n_original} templates + {len(aug_texts)} augmented")
    store.close()
    metrics = {"dedup": dedup, "teacher_labelling": {**asdict(label_stats), "seconds": round(teacher_seconds, 2)},
               "training_examples": {"templates": n_original, "augmented": len(aug_texts),
                                     "source_groups": len({t.group for t in train_templates if t.key in soft})},
               **extra_metrics}
    return TrainingData(taxonomy=taxonomy, gold_teacher=gold_teacher, teacher_id=teacher.teacher_id,
                        train_templates=train_templates, test_templates=test_templates,
                        component_templates=component_templates, components=components,
                        calibration_templates=calibration_templates,
                        calibration_components=calibration_components, soft=soft,
                        texts=train_texts, probs=train_probs, n_templates=n_original, metrics=metrics)


# ---- 1. corpus ---------------------------------------------------------------------------

def collect_records(cfg: BuildConfig) -> list[LogRecord]:
    records: list[LogRecord] = []
    if cfg.loghub_dir:
        records += read_loghub_dir(cfg.loghub_dir)
    if cfg.k8s_labels:
        records += read_k8s_labels(cfg.k8s_labels)
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
    """Recorded LLM labels for Loghub and k8s_labels.csv (silver) + hand labels for the seed corpus (gold),
    one table keyed by (system, id)."""
    rows = []
    if cfg.recorded_labels and Path(cfg.recorded_labels).exists():
        with open(cfg.recorded_labels, newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    if cfg.k8s_labels:
        with open(cfg.k8s_labels, newline="", encoding="utf-8") as f:
            rows += [{"system": K8S_LABELS_SYSTEM, "event_id": row["id"], "label": row["label"], "probs": row["probs"]}
                     for row in csv.DictReader(f)]
    if cfg.use_seed_corpus:
        seed_templates, _ = k8s_corpus.load_seed_templates()
        rows += [{"system": "k8s", "event_id": t.template_id, "label": t.label, "probs": ""} for t in seed_templates]
    return RecordedTeacher(taxonomy, rows)


# ---- 2. split ----------------------------------------------------------------------------

# ---- 3. teacher --------------------------------------------------------------------------

def make_teacher(cfg: BuildConfig, taxonomy: Taxonomy, gold_teacher: RecordedTeacher):
    if cfg.teacher == "recorded":
        return gold_teacher
    if cfg.teacher == "embedding":
        from training.teachers.embedding import EmbeddingTeacher

        return EmbeddingTeacher(taxonomy)
    if cfg.teacher == "multi":  # each member built by this function, labelled through the store under its own id
        from dataclasses import replace

        from training.teachers.multi import MultiTeacher

        if "multi" in cfg.teachers or len(set(cfg.teachers)) != len(cfg.teachers):
            raise ValueError(f"teachers={cfg.teachers}: members must be distinct, and not 'multi' itself")
        members = {name: make_teacher(replace(cfg, teacher=name), taxonomy, gold_teacher) for name in cfg.teachers}
        return MultiTeacher(members, LabelStore(cfg.label_store), taxonomy.labels, cfg.teacher_weights, cfg.combine)
    if cfg.teacher in LLM_TEACHERS:  # local-lm | openai, with cfg.teacher_options (registry.py)
        return build_llm_teacher(cfg.teacher, taxonomy, cfg.teacher_options)
    raise ValueError(f"unknown teacher {cfg.teacher!r} (recorded | embedding | multi | local-lm | openai)")


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


def paraphrase(cfg: BuildConfig, teacher, templates: list[Template], soft: dict[str, np.ndarray],
               exclude: set[str]) -> tuple[list[str], list[np.ndarray], dict]:
    """Teacher paraphrases of (up to max_templates of) the training templates, validated by the teacher."""
    from training.corpus.paraphrase import Paraphraser, sources_from_templates

    chat_model = getattr(teacher, "lm", None) or (teacher if hasattr(teacher, "chat") else None)
    if chat_model is None:
        raise ValueError(f"paraphrasing needs an LLM teacher (local-lm | openai) to write and check the "
                         f"rewrites; {teacher.teacher_id} cannot")
    sources = sources_from_templates(templates, soft)
    limit = cfg.paraphrase.get("max_templates")
    if limit and limit < len(sources):
        sources = random.Random(cfg.seed).sample(sources, limit)
    report = Paraphraser(chat_model, teacher, n=cfg.paraphrase["n"], threshold=cfg.paraphrase.get("threshold", 0.5),
                         seed=cfg.seed).run(sources, exclude_keys=exclude)
    texts, probs = report.training_examples()
    return texts, probs, {"templates": len(sources), **report.summary()}


# ---- 5. tokenizer ------------------------------------------------------------------------

def make_tokenizer(cfg: BuildConfig, train_texts: list[str]):
    if cfg.tokenizer == "corpus":
        return train_wordpiece(train_texts)
    if cfg.tokenizer == "minilm":
        return with_cls_sep(pretrained.minilm_tokenizer())
    raise ValueError(f"unknown tokenizer {cfg.tokenizer!r} (corpus | minilm)")


# ---- 6. evaluation -----------------------------------------------------------------------

def score_eval_lines(classifier: Classifier, paths: list[str]) -> dict:
    """Labelled real lines (CSV/JSONL, `logdistill evaluate`'s input) scored through the runtime."""
    from training.evaluation.labelled_lines import evaluate_lines, read_labelled

    rows, bad_rows = read_labelled(paths, classifier.labels)
    return {**evaluate_lines(classifier, rows, bad_rows), "files": [Path(p).name for p in paths]}  # names, not paths


def fit_confidence(student, calibration: HeldOut, train_texts: list[str], out_dir: Path) -> tuple[dict, dict]:
    """From the calibration split, through the draft int8 runtime: the temperature (config.json's
    "calibration") and the OOD model (its file). Without a calibration split: neither (T = 1, no OOD)."""
    if not calibration.keys:
        return {}, {}
    temperature = fit_temperature(student.logits(calibration.keys), calibration.gold)
    ood_model = fit_familiarity(train_texts, calibration.keys).write(out_dir)
    fitted = {"temperature": round(temperature, 4), "method": "temperature scaling, gold-label NLL",
              "fitted_on": "calibration split", "templates": len(calibration.keys)}
    return fitted, {NGRAMS_FILE: ood_model}


def confidence_metrics(runtime: Classifier, splits: dict[str, HeldOut]) -> dict:
    """Per held-out set: ECE before/after (15 bins), reliability, risk–coverage, OOD scores and what the
    default escalation policy does; and the same policy on text that is not a log at all."""
    out = {"temperature": runtime.student.temperature, "policy": asdict(runtime.policy), "splits": {},
           "risk_coverage": {}, "policy_outcome": {}}
    for name, split in splits.items():
        if not split.keys:
            continue
        raw_logits = runtime.student.logits(split.keys)  # before the temperature
        out["splits"][name] = calibration_report(raw_logits, split.gold, runtime.student.temperature)
        verdicts = runtime.judge(split.keys)
        confidence = np.array([v.probs.max() for v in verdicts])
        correct = np.array([int(v.probs.argmax()) for v in verdicts]) == split.gold
        ood = np.array([v.ood for v in verdicts]) if runtime.familiarity is not None else None
        out["risk_coverage"][name] = risk_coverage(confidence, correct)
        out["policy_outcome"][name] = policy_outcome(confidence, ood, correct, runtime.policy)
    out["non_log_inputs"] = non_log_outcome(runtime)
    return out


def non_log_outcome(runtime: Classifier) -> dict:
    """Text that is not a log (prose, code, SQL, base64, control bytes, other scripts...): the share
    escalated, per kind (training/data/non_log_lines.jsonl; tests/test_confidence.py checks another set)."""
    rows = [json.loads(line) for line in NON_LOG_LINES.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = runtime.classify_texts([r["text"] for r in rows])
    kinds: dict[str, list[bool]] = {}
    for row, result in zip(rows, results):
        kinds.setdefault(row["kind"], []).append(result.escalate)
    return {"n": len(rows), "escalated": round(float(np.mean([r.escalate for r in results])), 4),
            "confident_normal": sum(r.label == "normal" and r.confidence >= 0.5 and not r.escalate for r in results),
            "escalated_by_kind": {k: round(float(np.mean(v)), 4) for k, v in sorted(kinds.items())}}


def summary_line(metrics: dict) -> str:
    s, k = (metrics[x]["templates"] for x in ("student", "keyword_baseline"))
    ci = metrics["student_accuracy_ci"]["templates"]
    parts = [f"template split: acc {s['accuracy']:.3f} (95% CI {ci['ci_low']:.2f}–{ci['ci_high']:.2f}) "
             f"F1 {s['macro_f1']:.3f} soft {metrics['soft_agreement']:.3f} | keyword acc {k['accuracy']:.3f}"]
    if "component_split" in metrics:
        c = metrics["component_split"]
        ci = c["student_accuracy_ci"]["templates"]
        s = c["student"]["templates"]
        parts.append(f"component split: acc {s['accuracy']:.3f} (95% CI {ci['ci_low']:.2f}–{ci['ci_high']:.2f}) "
                     f"F1 {s['macro_f1']:.3f} soft {c['soft_agreement']:.3f}")
    if "real_lines" in metrics:
        r = metrics["real_lines"]
        parts.append(f"real lines: acc {r['accuracy']:.3f} F1 {r['macro_f1']:.3f} (n={r['n']})")
    confidence = metrics.get("confidence", {})
    if "component_split" in confidence.get("splits", {}):
        c, o = confidence["splits"]["component_split"], confidence["policy_outcome"]["component_split"]
        kept = "n/a" if o["kept_accuracy"] is None else f"{o['kept_accuracy']:.3f}"
        parts.append(f"confidence: T {confidence['temperature']:.3g}, component ECE {c['ece_before']:.3f} → "
                     f"{c['ece_after']:.3f}, escalated {o['escalated']:.1%} (kept acc {kept}), "
                     f"non-logs escalated {confidence['non_log_inputs']['escalated']:.0%}")
    return " | ".join(parts)


def model_version(cfg: BuildConfig, teacher_id: str, train_texts: list[str]) -> str:
    """Deterministic: the same data, teacher and settings give the same version."""
    digest = hashlib.sha256(json.dumps([_build_settings(cfg), teacher_id, train_texts]).encode()).hexdigest()
    return f"{cfg.teacher}-{digest[:10]}"


def _build_settings(cfg: BuildConfig) -> dict:
    settings = asdict(cfg)
    for path_key in ("out_dir", "label_store", "loghub_dir", "recorded_labels", "k8s_labels", "eval_lines",
                     "progress"):
        settings.pop(path_key, None)  # where files live does not change the model
    # Where the teacher runs (URL, key variable) neither: its teacher id, in the version, names what answers.
    settings.pop("teacher_options", None)
    held_out_groups = settings.pop("held_out_groups", None)  # unset: default builds keep their version
    if held_out_groups is not None:
        settings["held_out_groups_sha256"] = hashlib.sha256(json.dumps(sorted(held_out_groups)).encode()).hexdigest()
    if settings["teacher"] != "multi":  # unused settings: default builds keep their version
        for unused in ("teachers", "teacher_weights", "combine"):
            settings.pop(unused)
    if not settings["train"].get("hidden_beta"):
        settings.pop("assistant")
    # Options added after the first builds leave a build at their defaults with the version it had.
    for later, default in (("paraphrase", {}), ("max_test_templates", None), ("train_fraction", 1.0),
                           ("freeze_embeddings", True)):
        if settings.get(later) == default:
            settings.pop(later)
    return settings


def _logger(enabled: bool):
    def log(message: str) -> None:
        if enabled:
            print(f"[logdistill] {message}", flush=True)

    return log
