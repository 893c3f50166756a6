"""The retraining loop: new logs in, a candidate model out, promoted only if it is not worse.

A model root holds everything a retrain needs, so every run is reproducible from disk:

    <root>/versions/<model_version>/    complete artifacts: the newest --keep-versions, current and the one before
    <root>/current -> versions/<v>      what `serve --model <root>/current` serves (hot reload)
    <root>/corpus/*.jsonl               logs collected over time: one line per template not seen before
    <root>/label_store.sqlite           teacher answers, each template paid for once
    <root>/reports/retrain-<UTC>.json   what each run collected, labelled, scored and decided

One run, top to bottom (`retrain`):
  1. collect: log files, a Kafka snapshot (raw logs, escalations, teacher answers: kafka_snapshot.py),
     a cluster's pod logs (k8s_logs.py); teacher answers go straight into the label store;
  2. append to the corpus the lines whose template the corpus (default sources + earlier
     collections) lacks, one line each: a template is one training example, whatever its count;
  3. build a candidate (pipeline.build_model) on default sources + the whole corpus; the teacher
     labels only templates the store lacks. The split is stable (pipeline.split_stable): the
     served model's held-out groups stay held out, new groups are placed by a seeded hash;
  4. score the candidate and the served model on the candidate's held-out set (heldout.json: same
     keys, same gold), through the runtime (service.classifier), leaving out any key the served
     model was trained on (its templates.json): neither model is scored on what it saw;
  5. gate: promote iff candidate ≥ current − max_drop on the chosen template-level metric.
     Promotion swaps the `current` symlink in one rename, as service/reload.py expects;
  6. prune versions/ to the newest `keep_versions`, never current or the version before this run
     (the rollback target): a root on a volume would otherwise grow by one artifact a run.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from service.artifact import ArtifactError
from service.classifier import Classifier
from service import feedback
from service.config import ServeConfig
from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import parse_line
from service.records import template_id
from service.taxonomy import load_taxonomy
from training.corpus.readers import LogRecord, read_jsonl, read_text_file
from training.evaluation.metrics import agreement, classification_report, group_bootstrap_accuracy
from training.pipeline import HELDOUT_FILE, BuildConfig, build_model, collect_records

GATE_METRICS = ("accuracy", "macro_f1")


class RetrainError(RuntimeError):
    pass


@dataclass
class Gate:
    metric: str = "accuracy"   # on held-out templates: accuracy | macro_f1
    max_drop: float = 0.0      # promote iff candidate >= current - max_drop (negative: must improve)

    def __post_init__(self):
        if self.metric not in GATE_METRICS:
            raise ValueError(f"gate metric {self.metric!r} is not one of {', '.join(GATE_METRICS)}")


@dataclass
class Sources:
    files: list[str] = field(default_factory=list)
    kafka: ServeConfig | None = None        # connection settings, read as `serve` reads them
    kafka_topics: list[str] = field(default_factory=list)
    kafka_timeout_s: float = 300.0
    k8s: object | None = None               # k8s_logs.LogQuery
    k8s_kubeconfig: str | None = None


class ModelRoot:
    """The directory layout of one retrained model (module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.versions = self.path / "versions"
        self.current = self.path / "current"
        self.corpus = self.path / "corpus"
        self.reports = self.path / "reports"
        self.label_store = self.path / "label_store.sqlite"

    def corpus_files(self) -> list[str]:
        return [str(p) for p in sorted(self.corpus.glob("*.jsonl"))]

    def current_version(self) -> str | None:
        if not os.path.lexists(self.current):
            return None
        if not self.current.is_symlink():
            raise RetrainError(f"{self.current} must be a symlink to versions/<version> (it is swapped to promote)")
        return Path(os.readlink(self.current)).name

    def promote(self, version: str) -> None:
        """Point `current` at versions/<version> in one step: ln -s versions/v next && mv -T next current."""
        staging = self.path / "current.next"
        if os.path.lexists(staging):
            staging.unlink()
        os.symlink(Path("versions") / version, staging)  # relative: the root can move or be mounted elsewhere
        os.replace(staging, self.current)

    def prune(self, keep: int, protect: set[str | None]) -> list[str]:
        """Delete all but the `keep` newest complete versions (by build time), never one in `protect`."""
        if keep < 1:
            raise ValueError(f"keep_versions must be at least 1, got {keep}")
        built = sorted((p for p in self.versions.iterdir() if p.is_dir() and not p.name.startswith(".")),
                       key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
        doomed = [p for p in built[keep:] if p.name not in protect]
        for path in doomed:
            shutil.rmtree(path)
        return sorted(p.name for p in doomed)


def retrain(root: str | Path, build: BuildConfig, sources: Sources, gate: Gate, log=print,
            label_store: str | Path | None = None, keep_versions: int | None = None) -> dict:
    """One retraining run; returns the report (also written to <root>/reports/).
    label_store: default <root>/label_store.sqlite; keep_versions: None keeps every version."""
    if keep_versions is not None and keep_versions < 1:
        raise ValueError(f"keep_versions must be at least 1, got {keep_versions}")
    root = ModelRoot(root)
    store_path = Path(label_store) if label_store else root.label_store
    started = time.time()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    for directory in (root.versions, root.corpus, root.reports):
        directory.mkdir(parents=True, exist_ok=True)
    with exclusive(root.path / ".retrain.lock"):
        previous = root.current_version()
        build = dataclasses.replace(build, label_store=str(store_path))
        taxonomy = load_taxonomy(build.taxonomy)

        # 1-2. New logs → the corpus; teacher answers → the label store.
        records, collected = collect(sources, taxonomy.labels, log)
        collected["answers_stored"] = store_answers(store_path, collected.pop("answers"), taxonomy.labels)
        added = append_to_corpus(root, build, records, stamp)
        log(f"collected {len(records)} records (Kafka: one per template); "
            f"{added['templates']} new templates → {added['file'] or 'none'}")

        # 3. Candidate.
        held_out = held_out_groups(root.current) if previous else []
        candidate, metrics = build_candidate(root, build, held_out, stamp)
        log(f"candidate {candidate} (current: {previous or 'none'})")

        # 4-5. Same held-out set, both models, then the gate.
        comparison = compare(root.versions / candidate, root.current if previous else None)
        decision = decide(comparison, gate, candidate, previous)
        if decision["promoted"]:
            root.promote(candidate)

        # 6. Old versions go; what serves now and what served before this run stay.
        pruned = root.prune(keep_versions, {previous, root.current_version()}) if keep_versions else []
        if pruned:
            log(f"pruned {len(pruned)} old version(s): {', '.join(pruned)}")

    report = {
        "started": stamp, "seconds": round(time.time() - started, 1), "root": str(root.path),
        "previous": previous, "candidate": candidate, "current": root.current_version(),
        "collected": collected, "corpus": {**added, "files": len(root.corpus_files())},
        "labelling": metrics.get("teacher_labelling"), "candidate_build": build_summary(metrics),
        "comparison": comparison, **decision, "pruned": pruned,
    }
    (root.reports / f"retrain-{stamp}.json").write_text(json.dumps(report, indent=2))
    return report


# ---- 1. collect --------------------------------------------------------------------------

def collect(sources: Sources, labels: tuple[str, ...], log) -> tuple[list[LogRecord], dict]:
    records: list[LogRecord] = []
    stats: dict = {"files": {}, "answers": []}
    for path in sources.files:
        found = list(read_jsonl(path) if str(path).endswith(".jsonl") else read_text_file(path))
        stats["files"][str(path)] = len(found)
        records += found
    if sources.kafka_topics:
        from training.corpus.kafka_snapshot import read_snapshot

        snapshot = read_snapshot(sources.kafka, sources.kafka_topics, labels, sources.kafka_timeout_s)
        stats["kafka"] = snapshot.stats.to_dict()
        stats["answers"] = snapshot.answers
        records += snapshot.records
        log(f"kafka snapshot of {', '.join(sources.kafka_topics)}: {stats['kafka']}")
    if sources.k8s is not None:
        from training.corpus.k8s_logs import api_client, collect_pod_logs

        pods = collect_pod_logs(api_client(sources.k8s_kubeconfig), sources.k8s)
        stats["kubernetes"] = pods.summary()
        records += pods.records
        log(f"kubernetes {sources.k8s.namespace} ({sources.k8s.selector or 'all pods'}): "
            f"{stats['kubernetes']['lines']} lines, {len(stats['kubernetes']['skipped'])} containers skipped")
    stats["records"] = len(records)  # files and pods: every line; Kafka: one per template
    return records, stats


def store_answers(path: Path, answers: list, labels: tuple[str, ...]) -> dict[str, int]:
    """Teacher answers from the snapshot into the label store, as `serve` stores them; a build whose
    teacher has their id takes them instead of asking again."""
    if not answers:
        return {}
    store = LabelStore(path)
    try:
        return feedback.store_answers(store, answers, labels)
    finally:
        store.close()


# ---- 2. corpus ---------------------------------------------------------------------------

def append_to_corpus(root: ModelRoot, build: BuildConfig, records: list[LogRecord], stamp: str) -> dict:
    """One line per template the corpus lacks, into corpus/<stamp>.jsonl (read back by read_jsonl)."""
    known = {template_key(parse_line(r.text))
             for r in collect_records(dataclasses.replace(build, extra_files=[*build.extra_files,
                                                                              *root.corpus_files()]))}
    new: dict[str, dict] = {}
    for record in records:
        key = template_key(parse_line(record.text))
        if key not in known and key not in new:
            new[key] = corpus_line(record, key, stamp)
    path = None
    if new:
        path = root.corpus / f"{stamp}.jsonl"
        staging = path.with_suffix(".partial")  # a crash leaves no half file that read_jsonl would choke on
        staging.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in new.values()))
        staging.rename(path)
    return {"records": len(records), "templates": len(new), "file": path.name if path else None}


def corpus_line(record: LogRecord, key: str, stamp: str) -> dict:
    line = {"line": record.text, "source": record.source, "collected": stamp}
    if "gold" in record.meta:
        line["label"] = record.meta["gold"]
    if record.group and record.group != key:  # a source's own template id (labelled JSONL)
        line["template_id"] = record.group
    if "kubernetes" in record.meta:
        line["kubernetes"] = record.meta["kubernetes"]
    return line


# ---- 3. candidate ------------------------------------------------------------------------

def held_out_groups(model_dir: Path) -> list[str]:
    """The groups the served model was scored on, to stay held out; none known: the hash rule alone."""
    try:
        return json.loads((model_dir / HELDOUT_FILE).read_text())["held_out_groups"]
    except (OSError, ValueError, KeyError):
        return []


def build_candidate(root: ModelRoot, build: BuildConfig, held_out: list[str], stamp: str) -> tuple[str, dict]:
    staging = root.versions / f".building-{stamp}"
    cfg = dataclasses.replace(build, out_dir=str(staging), extra_files=[*build.extra_files, *root.corpus_files()],
                              held_out_groups=held_out)
    try:
        metrics = build_model(cfg)
        version = json.loads((staging / "config.json").read_text())["model_version"]
        final = root.versions / version
        if final.exists():  # same data, teacher and settings: the same model, already there
            shutil.rmtree(staging)
        else:
            staging.rename(final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return version, metrics


def build_summary(metrics: dict) -> dict:
    return {"held_out": metrics.get("held_out"), "dedup": metrics.get("dedup"),
            "training_examples": metrics.get("training_examples"), "build_seconds": metrics.get("build_seconds"),
            "student": {unit: {m: metrics["student"][unit][m] for m in GATE_METRICS}
                        for unit in ("templates", "lines")}}


# ---- 4. compare --------------------------------------------------------------------------

def compare(candidate_dir: Path, current_dir: Path | None) -> dict:
    """Both models through the runtime on the candidate's held-out keys the current never trained on."""
    heldout = json.loads((candidate_dir / HELDOUT_FILE).read_text())
    labels = tuple(heldout["labels"])
    keep = np.ones(len(heldout["keys"]), dtype=bool)
    result: dict = {"held_out_templates": len(heldout["keys"]), "current": None}
    current = None
    if current_dir is not None:
        try:
            current = Classifier.from_dir(current_dir, threads=1, cache_size=0)
        except ArtifactError as exc:
            result["current_error"] = str(exc)
    if current is not None:
        seen = current.student.artifact.training_templates or frozenset()
        keep = np.array([template_id(key) not in seen for key in heldout["keys"]], dtype=bool)
        result["left_out_seen_by_current"] = int((~keep).sum())
        if current.labels != labels:
            result["current_error"] = f"another taxonomy ({list(current.labels)}): not comparable"
            current = None
    keys = [k for k, kept in zip(heldout["keys"], keep) if kept]
    gold = np.asarray(heldout["gold"], dtype=int)[keep]
    counts = np.asarray(heldout["counts"], dtype=float)[keep]
    result["templates"], result["lines"] = len(keys), int(counts.sum())
    if not keys:
        return result
    candidate_probs = Classifier.from_dir(candidate_dir, threads=1, cache_size=0).student.predict_proba(keys)
    result["candidate"] = scores(gold, candidate_probs, counts, labels)
    if current is not None:
        current_probs = current.student.predict_proba(keys)
        result["current"] = scores(gold, current_probs, counts, labels)
        result["agreement"] = round(agreement(candidate_probs, current_probs), 4)
        groups = [g for g, kept in zip(heldout["groups"], keep) if kept]
        result["accuracy_difference"] = paired_difference(gold, candidate_probs, current_probs, groups)
    return result


def paired_difference(gold: np.ndarray, candidate: np.ndarray, current: np.ndarray, groups: list[str]) -> dict:
    """Candidate − current accuracy on templates with a 95% interval from resampling source groups
    (paired: both models on the same draw). For the reader: the gate itself compares point scores."""
    difference = (candidate.argmax(axis=1) == gold).astype(float) - (current.argmax(axis=1) == gold)
    interval = group_bootstrap_accuracy(difference, groups)
    return {"templates": round(interval["accuracy"], 4), "ci_low": round(interval["ci_low"], 4),
            "ci_high": round(interval["ci_high"], 4), "groups": interval["groups"]}


def scores(gold: np.ndarray, probs: np.ndarray, counts: np.ndarray, labels: tuple[str, ...]) -> dict:
    templates = classification_report(gold, probs, labels)
    lines = classification_report(gold, probs, labels, weights=counts)
    return {unit: {m: round(report[m], 4) for m in GATE_METRICS}
            for unit, report in (("templates", templates), ("lines", lines))}


# ---- 5. gate -----------------------------------------------------------------------------

def decide(comparison: dict, gate: Gate, candidate: str, previous: str | None) -> dict:
    verdict = {"metric": gate.metric, "max_drop": gate.max_drop, "unit": "templates",
               "candidate": None, "current": None}
    if "candidate" in comparison:
        verdict["candidate"] = comparison["candidate"]["templates"][gate.metric]
    if comparison.get("current"):
        verdict["current"] = comparison["current"]["templates"][gate.metric]
    if previous is None:
        promoted, reason = True, "first model of this root"
    elif candidate == previous:
        promoted, reason = False, "the candidate is the model already served (same data and settings)"
    elif "current_error" in comparison and verdict["current"] is None:
        promoted, reason = True, f"the served model cannot be scored: {comparison['current_error']}"
    elif verdict["candidate"] is None:
        promoted, reason = False, "no held-out templates to compare the two models on"
    else:
        promoted = verdict["candidate"] >= verdict["current"] - gate.max_drop
        reason = (f"candidate {gate.metric} {verdict['candidate']:.4f} "
                  f"{'>=' if promoted else '<'} current {verdict['current']:.4f} - max_drop {gate.max_drop}")
    return {"promoted": promoted, "gate": {**verdict, "passed": promoted, "reason": reason}}


# ---- helpers -----------------------------------------------------------------------------

class exclusive:
    """One retrain per root at a time (a CronJob that overruns its schedule, a manual run)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise RetrainError(f"another retrain holds {self.path}") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
