"""The cascade on the demo stream: the system's accuracy (the student on kept lines, the teacher on escalated
ones) and teacher calls per 1,000 lines, for the lines `make demo` replays.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/cascade.py --model models/default
        → bench/results/cascade.json and cascade.md
    HF_HUB_OFFLINE=1 .venv/bin/python bench/cascade.py --model DIR --out-dir /tmp/x --limit 2000   # a quick look

1. The stream: exactly `service.demo.replay_lines(None)` (every `../shared/data/loghub/*/*_2k.log`,
   shuffled with the demo's seed). Each system's raw lines are paired with its `_structured.csv` rows
   before the shuffle (same count, LineId 1..n in order, the row's Content inside the raw line, else the
   bench stops), the gold label is the recorded teacher's for (system, EventId) in loghub_labels.csv,
   and the same shuffle is applied to the pairs; the line sequence must equal replay_lines(None).
2. The lines go through `Classifier.from_dir(model, policy=EscalationPolicy(τ, δ))` in batches of 500
   with the default template cache, and each result through serve's `Escalator` (dedup 10,000): the
   escalation messages it returns are the teacher calls.
3. The sweep re-decides each result (its calibrated confidence and OOD score) under other (τ, δ) and
   replays the re-decided results through a fresh Escalator each, so per-template dedup is serve's own.
   The row of the streamed policy must reproduce the streamed figures exactly (checked).
4. Alongside: k8s_dev_lines.csv through `training.evaluation.labelled_lines` with the same policy, and
   the build's own confidence figures copied from the model's metrics.json.

On this stream the teacher's answer for an escalated line *is* the gold label (the gold labels are the
recorded teacher's), so system accuracy = share of lines escalated or kept and right: an upper bound
that says what escalating costs and buys, not how good the teacher is (bench/llm_teacher.py measures that).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from machine import ContentionMeter, machine_info  # noqa: E402
from service import demo  # noqa: E402
from service.confidence import BOTH, LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, EscalationPolicy  # noqa: E402

REASONS = (LOW_CONFIDENCE, OUT_OF_DISTRIBUTION, BOTH)
TAUS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DELTAS = (0.9, 0.95, 0.99, 1.0)
BATCH = 500        # serve's max_poll_records: one poll, one classify_raw call
DEDUP = 10_000     # serve's escalation_dedup default
TOPIC = "logdistill-demo.logs"
ESCALATION_TOPIC = "logdistill-demo.escalate"


class StreamError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class StreamLine:
    line: bytes
    gold: str | None  # the recorded teacher's label for (system, event_id); None: no recorded label
    system: str
    event_id: str


# ---- 1. the demo stream with its gold labels ------------------------------------------------------

def read_labels(path: Path) -> dict[tuple[str, str], str]:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["system"], r["event_id"]): r["label"].strip() for r in csv.DictReader(f)}


def pair_system(log_path: Path, labels: dict[tuple[str, str], str]) -> list[StreamLine]:
    """One system's raw lines (split as replay_lines splits them) with their structured rows, in file order."""
    system = log_path.parent.name
    raw = log_path.read_bytes().splitlines()
    structured = log_path.with_name(log_path.name + "_structured.csv")
    if not structured.is_file():
        raise StreamError(f"{log_path}: no {structured.name} next to it: cannot pair lines with templates")
    with open(structured, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(raw):
        raise StreamError(f"{system}: {len(raw)} raw lines but {len(rows)} rows in {structured.name}")
    out = []
    for i, (line, row) in enumerate(zip(raw, rows), 1):
        if int(row["LineId"]) != i:
            raise StreamError(f"{structured}: row {i} has LineId {row['LineId']}: rows are not in file order")
        if row["Content"].strip() not in line.decode("utf-8", "replace"):
            raise StreamError(f"{system} line {i}: the structured row's Content {row['Content'][:80]!r} is not "
                              f"in the raw line {line[:120]!r}: the files do not pair")
        out.append(StreamLine(line, labels.get((system, row["EventId"])), system, row["EventId"]))
    return out


def demo_stream(loghub: Path | None = None, labels_csv: Path | None = None) -> list[StreamLine]:
    """replay_lines(None)'s lines, in its order, each with its gold label."""
    loghub = Path(loghub or demo.SHARED_LOGHUB)
    labels = read_labels(Path(labels_csv or loghub.parent / "loghub_labels.csv"))
    paths = sorted(loghub.glob("*/*_2k.log"))  # replay_lines' files, in its order
    if not paths:
        raise StreamError(f"no Loghub files under {loghub}")
    stream = [item for path in paths for item in pair_system(path, labels)]
    random.Random(demo.REPLAY_SEED).shuffle(stream)  # the same permutation: it depends only on the length
    if loghub == Path(demo.SHARED_LOGHUB) and [s.line for s in stream] != demo.replay_lines(None):
        raise StreamError("the paired stream is not in replay_lines(None)'s order: service/demo.py changed "
                          "how it reads or shuffles; update demo_stream")
    return stream


# ---- 2. classifying and escalating, as serve does ---------------------------------------------------

@dataclasses.dataclass
class Row:
    item: StreamLine
    result: object  # Classification
    novel: bool | None  # its template is not among the artifact's training templates (None: unknown)
    sent: bool = False  # its escalation is one the escalator sent (the teacher call it made)


def classify_stream(classifier, stream: list[StreamLine], escalator, batch: int = BATCH):
    """(rows of the classified lines, lines the classifier refused, escalation messages), serve's way."""
    from service.classifier import LineError
    from service.records import template_id

    trained = classifier.student.artifact.training_templates
    rows, refused, messages = [], Counter(), []
    for start in range(0, len(stream), batch):
        chunk = stream[start: start + batch]
        for offset, (item, result) in enumerate(zip(chunk, classifier.classify_raw([s.line for s in chunk])),
                                                start):
            if isinstance(result, LineError):
                refused[result.reason] += 1  # serve: a dead letter, never escalated
                continue
            message = SimpleNamespace(topic=TOPIC, partition=0, offset=offset, timestamp=0)
            sent = escalator.escalate(message, result, None, classifier.model_version)
            if sent is not None:
                if sent[0].decode() != template_id(result.template):
                    raise StreamError(f"escalation keyed {sent[0]!r}, not by the template id of {result.template!r}")
                messages.append(sent)
            novel = None if trained is None else template_id(result.template) not in trained
            rows.append(Row(item, result, novel, sent is not None))
    return rows, refused, messages


def redecided(rows: list[Row], policy: EscalationPolicy):
    """Each result as the classifier would have returned it under `policy` (same verdict, new decision)."""
    from service.classifier import Classification

    answers: dict[int, object] = {}
    for row in rows:
        r = row.result
        answer = answers.get(id(r.answer))
        if answer is None:
            answer = dataclasses.replace(r.answer, escalation_reason=policy.reason(r.confidence, r.ood))
            answers[id(r.answer)] = answer
        yield Classification(r.line, r.template, answer, r.parsed)


def teacher_calls(results, escalator, model_version: str) -> int:
    calls = 0
    for offset, result in enumerate(results):
        message = SimpleNamespace(topic=TOPIC, partition=0, offset=offset, timestamp=0)
        calls += escalator.escalate(message, result, None, model_version) is not None
    return calls


# ---- 3. the figures ----------------------------------------------------------------------------------

def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(rows: list[Row], results: list, calls: int, labels: tuple[str, ...], lines: int) -> dict:
    """One policy's outcome: `results` are `rows`' results as decided under it; `calls` its teacher calls."""
    n = len(rows)
    escalated = [r.escalate for r in results]
    reasons = Counter(r.escalation_reason for r in results if r.escalate)
    gold = [(row.item.gold, r) for row, r in zip(rows, results) if row.item.gold in labels]
    right = [r.label == g for g, r in gold]
    kept_right = [ok for ok, (_, r) in zip(right, gold) if not r.escalate]
    wrong = [r.escalate for ok, (_, r) in zip(right, gold) if not ok]
    novel = [e for row, e in zip(rows, escalated) if row.novel]
    seen = [e for row, e in zip(rows, escalated) if row.novel is False]
    novel_right = [r.label == row.item.gold for row, r in zip(rows, results) if row.novel and row.item.gold in labels]
    seen_right = [r.label == row.item.gold for row, r in zip(rows, results)
                  if row.novel is False and row.item.gold in labels]
    return {
        "classified": n,
        "escalated": _share(sum(escalated), n),
        "escalated_lines": sum(escalated),
        "escalated_by_reason": {reason: _share(reasons[reason], n) for reason in REASONS},
        "teacher_calls": calls,
        "teacher_calls_per_1000_lines": round(1000 * calls / lines, 2) if lines else None,
        "escalated_templates": len({r.template for r in results if r.escalate}),
        "labelled": len(gold),
        "student_accuracy": _share(sum(right), len(right)),
        "kept_share": _share(len(kept_right), len(right)),
        "kept_accuracy": _share(sum(kept_right), len(kept_right)),
        "system_accuracy": _share(len(right) - len(kept_right) + sum(kept_right), len(right)),
        "errors_escalated": _share(sum(wrong), len(wrong)),
        "escalated_novel": _share(sum(novel), len(novel)),
        "escalated_seen": _share(sum(seen), len(seen)),
        "student_accuracy_novel": _share(sum(novel_right), len(novel_right)),
        "student_accuracy_seen": _share(sum(seen_right), len(seen_right)),
    }


def sweep(rows: list[Row], policies: list[EscalationPolicy], dedup: int, model_version: str,
          labels: tuple[str, ...], lines: int) -> list[dict]:
    from service.cascade import Escalator

    out = []
    for policy in policies:
        results = list(redecided(rows, policy))
        calls = teacher_calls(results, Escalator(ESCALATION_TOPIC, dedup), model_version)
        out.append({"low_confidence": policy.low_confidence, "max_ood": policy.max_ood,
                    **figures(rows, results, calls, labels, lines)})
    return out


def by_system(rows: list[Row], labels: tuple[str, ...]) -> dict:
    """The streamed policy's figures per system (a teacher call counts for the system whose line made it)."""
    out = {}
    for system in sorted({row.item.system for row in rows}):
        mine = [row for row in rows if row.item.system == system]
        out[system] = figures(mine, [row.result for row in mine], sum(row.sent for row in mine), labels, len(mine))
    return out


# ---- 4. k8s dev lines and the build's own figures ------------------------------------------------------

def k8s_dev(classifier, path: Path) -> dict:
    from training.evaluation.labelled_lines import evaluate_lines, read_labelled

    rows, bad = read_labelled([path], classifier.labels)
    report = evaluate_lines(classifier, rows, bad)
    cascade = report.get("cascade") or {}
    out = {"file": path.name, "n": report["n"], "n_bad": report["n_bad"], "accuracy": report["accuracy"],
           "escalated": cascade.get("escalated"), "kept_accuracy": cascade.get("kept_accuracy"),
           "errors_escalated": cascade.get("errors_caught"), "risk_coverage": cascade.get("risk_coverage")}
    if cascade.get("kept_accuracy") is not None:  # hand-checked labels: a teacher that gets every escalated line right
        out["system_accuracy_if_teacher_right"] = round(
            cascade["escalated"] + (1 - cascade["escalated"]) * cascade["kept_accuracy"], 4)
    return out


def build_figures(model: Path) -> dict | None:
    """The build's confidence section (metrics.json), for the splits the md shows; None for an older model."""
    path = model / "metrics.json"
    confidence = json.loads(path.read_text()).get("confidence") if path.is_file() else None
    if not confidence:
        return None
    splits = ("component_split", "template_split")
    return {"temperature": confidence.get("temperature"), "policy": confidence.get("policy"),
            "risk_coverage": {s: confidence.get("risk_coverage", {}).get(s) for s in splits},
            "policy_outcome": {s: confidence.get("policy_outcome", {}).get(s) for s in splits},
            "non_log_inputs": confidence.get("non_log_inputs")}


# ---- the run ----------------------------------------------------------------------------------------------

def run(args, command: str) -> dict:
    from service.cascade import Escalator
    from service.classifier import Classifier

    meter = ContentionMeter()
    policy = EscalationPolicy(args.low_confidence, args.max_ood)
    stream = demo_stream()
    total_stream = len(stream)
    if args.limit > 0:
        stream = stream[: args.limit]
    classifier = Classifier.from_dir(args.model, threads=args.threads, policy=policy)
    labels = tuple(classifier.labels)
    escalator = Escalator(ESCALATION_TOPIC, args.dedup)
    started = time.perf_counter()
    rows, refused, messages = classify_stream(classifier, stream, escalator, args.batch)
    classify_s = time.perf_counter() - started
    hit_ratio = _share(classifier.cache.hits, classifier.cache.hits + classifier.cache.misses)  # before k8s_dev
    lines = len(stream)
    default = figures(rows, [row.result for row in rows], len(messages), labels, lines)

    # The sweep's machinery must reproduce what was streamed, or its other rows mean nothing.
    replayed = sweep(rows, [policy], args.dedup, classifier.model_version, labels, lines)[0]
    replayed = {k: v for k, v in replayed.items() if k not in ("low_confidence", "max_ood")}
    if replayed != default:
        diff = {k: (default[k], replayed[k]) for k in default if default[k] != replayed[k]}
        raise StreamError(f"re-deciding under the streamed policy does not reproduce the stream: {diff}")

    taus, deltas = sorted(args.taus), sorted(args.deltas)
    policies = [EscalationPolicy(t, policy.max_ood) for t in taus] + \
               [EscalationPolicy(policy.low_confidence, d) for d in deltas]
    swept = sweep(rows, policies, args.dedup, classifier.model_version, labels, lines)
    unlabelled = Counter(row.item.system for row in rows if row.item.gold is None)
    unknown = Counter(row.item.gold for row in rows if row.item.gold is not None and row.item.gold not in labels)
    trained = classifier.student.artifact.training_templates
    novel = [row.novel for row in rows]
    report = {
        "about": "bench/cascade.py: the cascade on the demo stream (service.demo.replay_lines(None)); "
                 "gold = the recorded teacher's label per (system, EventId), so the teacher is right by construction",
        "model": str(args.model), "model_version": classifier.model_version,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "command": command,
        "policy": dataclasses.asdict(policy), "batch": args.batch, "dedup": args.dedup,
        "stream": {"lines": lines, "stream_lines": total_stream, "limit": args.limit or None,
                   "systems": dict(sorted(Counter(s.system for s in stream).items())),
                   "refused": dict(refused), "classified": len(rows),
                   "unlabelled": sum(unlabelled.values()), "unlabelled_by_system": dict(unlabelled),
                   "gold_not_in_taxonomy": dict(unknown),
                   "distinct_templates": len({row.result.template for row in rows}),
                   "novel_share": _share(sum(bool(n) for n in novel), len(rows)) if trained is not None else None,
                   "novel_templates": len({row.result.template for row in rows if row.novel})
                   if trained is not None else None,
                   "ood_scored": _share(sum(row.result.ood is not None for row in rows), len(rows)),
                   "cache_hit_ratio": hit_ratio,
                   "classify_s": round(classify_s, 2)},
        "default": default,
        "by_system": by_system(rows, labels),
        "sweep": {"tau": swept[: len(taus)], "delta": swept[len(taus):]},
        "k8s_dev_lines": k8s_dev(classifier, Path(demo.SHARED_LOGHUB).parent / "k8s_dev_lines.csv"),
        "build": build_figures(Path(args.model)),
        "machine": machine_info(),
    }
    report["contention"] = meter.result()
    return report


# ---- the markdown ---------------------------------------------------------------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _acc(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def markdown(r: dict) -> str:
    s, d, p = r["stream"], r["default"], r["policy"]
    m = r["machine"]
    out = [f"# The cascade on the demo stream ({r['model_version']})", "",
           f"Model `{r['model']}` (version `{r['model_version']}`), {r['date']}. Reproduce with:", "",
           f"    {r['command']}", "",
           f"Machine: {m['cpu_model']}, {m['usable_cores']} usable cores, Python {m['python']}, "
           f"onnxruntime {m['versions'].get('onnxruntime')}, commit {m['git_commit']}.", "",
           f"Stream: {s['lines']:,} lines of `service.demo.replay_lines(None)` ({s['stream_lines']:,} in all"
           + (f"; --limit {s['limit']}" if s["limit"] else "") + f"), {len(s['systems'])} Loghub systems, "
           f"{s['distinct_templates']:,} distinct template keys; classified in batches of {r['batch']} with the "
           f"default template cache, escalations through serve's `Escalator` (dedup {r['dedup']:,}). "
           f"{s['unlabelled']} line(s) without a recorded label (left out of accuracy); "
           f"{sum(s['refused'].values())} refused by the classifier."
           + ("" if s["ood_scored"] else " **This model gives no OOD score** (an artifact without the familiarity "
              "model): only confidence decides, and the δ sweep is flat."), "",
           "**Gold labels are the recorded teacher's** (loghub_labels.csv, per system and EventId), so on this "
           "stream the teacher is right by construction: an escalated line counts as answered correctly, and "
           "system accuracy = share of lines that are escalated or kept and right. It is what escalating costs "
           "(teacher calls) and buys against the teacher, not a measure of the teacher.", "",
           f"## Default policy: τ = {p['low_confidence']}, δ = {p['max_ood']}", "",
           "| figure | value |", "|---|---|",
           f"| lines | {s['lines']:,} |",
           f"| escalated | {_pct(d['escalated'])} ({d['escalated_lines']:,} lines, {d['escalated_templates']:,} "
           f"templates) |",
           *[f"| escalated: {reason.replace('_', ' ')} | {_pct(d['escalated_by_reason'][reason])} |" for reason in REASONS],
           f"| teacher calls (escalation messages) | {d['teacher_calls']:,} = "
           f"**{d['teacher_calls_per_1000_lines']:.1f} per 1,000 lines** |",
           f"| student accuracy, all lines | {_acc(d['student_accuracy'])} |",
           f"| student accuracy, kept lines | {_acc(d['kept_accuracy'])} |",
           f"| **system accuracy** (kept: student; escalated: teacher) | **{_acc(d['system_accuracy'])}** |",
           f"| student errors escalated | {_pct(d['errors_escalated'])} |",
           f"| lines of a template the student never trained on | {_pct(s['novel_share'])} "
           f"({s['novel_templates'] if s['novel_templates'] is not None else 'n/a'} templates) |",
           f"| escalated among novel-template lines | {_pct(d['escalated_novel'])} |",
           f"| escalated among seen-template lines | {_pct(d['escalated_seen'])} |",
           f"| student accuracy, novel-template / seen-template lines | {_acc(d['student_accuracy_novel'])} / "
           f"{_acc(d['student_accuracy_seen'])} |", "",
           "Teacher calls are far fewer than escalated lines: the escalator sends a template once per model.", "",
           "## By system (default policy)", "",
           "| system | lines | escalated | calls / 1,000 | student acc | kept acc | system acc | novel-template lines escalated |",
           "|---|---|---|---|---|---|---|---|"]
    for system, f in r["by_system"].items():
        out.append(f"| {system} | {f['classified']:,} | {_pct(f['escalated'])} | "
                   f"{f['teacher_calls_per_1000_lines']:.1f} | {_acc(f['student_accuracy'])} | "
                   f"{_acc(f['kept_accuracy'])} | {_acc(f['system_accuracy'])} | {_pct(f['escalated_novel'])} |")
    for name, symbol, fixed in (("tau", "τ", f"δ = {p['max_ood']}"), ("delta", "δ", f"τ = {p['low_confidence']}")):
        out += ["", f"## Sweep over {symbol} ({fixed})", "",
                f"| {symbol} | escalated | low conf. | OOD | both | calls / 1,000 | kept acc | system acc | "
                "errors escalated | novel escalated | seen escalated |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for f in r["sweep"][name]:
            value = f["low_confidence"] if name == "tau" else f["max_ood"]
            b = f["escalated_by_reason"]
            out.append(f"| {value:g} | {_pct(f['escalated'])} | {_pct(b[LOW_CONFIDENCE])} | "
                       f"{_pct(b[OUT_OF_DISTRIBUTION])} | {_pct(b[BOTH])} | {f['teacher_calls_per_1000_lines']:.1f} | "
                       f"{_acc(f['kept_accuracy'])} | {_acc(f['system_accuracy'])} | {_pct(f['errors_escalated'])} | "
                       f"{_pct(f['escalated_novel'])} | {_pct(f['escalated_seen'])} |")
    k = r["k8s_dev_lines"]
    out += ["", f"## Real Kubernetes lines ({k['file']}, hand-checked labels, same policy)", "",
            f"{k['n']} lines ({k['n_bad']} bad): student accuracy {_acc(k['accuracy'])}, escalated "
            f"{_pct(k['escalated'])}, accuracy on kept lines {_acc(k['kept_accuracy'])}, student errors escalated "
            f"{_pct(k['errors_escalated'])}"
            + (f"; system accuracy if the teacher got every escalated line right: "
               f"{_acc(k['system_accuracy_if_teacher_right'])}" if "system_accuracy_if_teacher_right" in k else "")
            + "."]
    if k.get("risk_coverage"):
        out += ["", "Risk–coverage (confidence alone, the most confident share kept):", "",
                "| kept | escalated | accuracy kept | τ that gives it |", "|---|---|---|---|",
                *[f"| {x['coverage']:.0%} | {x['escalated']:.0%} | {x['kept_accuracy']:.3f} | {x['tau']:.3f} |"
                  for x in k["risk_coverage"]]]
    b = r["build"]
    out += ["", "## The build's own figures (metrics.json, held-out templates, one row per template)", ""]
    if b is None:
        out.append("This model's metrics.json has no `confidence` section (built before calibration).")
    else:
        bp = b.get("policy") or {}
        out += [f"Temperature {b['temperature']}, build policy τ = {bp.get('low_confidence')}, "
                f"δ = {bp.get('max_ood')}.", "",
                "| split | templates | escalated | low conf. | OOD | both | kept acc | student acc | errors escalated |",
                "|---|---|---|---|---|---|---|---|---|"]
        for split, o in b["policy_outcome"].items():
            if o:
                n, by = o["n"], o["escalated_by_reason"]
                out.append(f"| {split} | {n} | {_pct(o['escalated'])} | "
                           + " | ".join(_pct(_share(by.get(x, 0), n)) for x in REASONS)
                           + f" | {_acc(o['kept_accuracy'])} | {_acc(o['student_accuracy'])} | "
                           f"{_pct(o['errors_caught'])} |")
        rc = {split: rows for split, rows in b["risk_coverage"].items() if rows}
        if rc:
            splits = list(rc)
            out += ["", "Risk–coverage (confidence alone): accuracy kept (τ that gives it)", "",
                    "| kept | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
            for i, row in enumerate(rc[splits[0]]):
                out.append(f"| {row['coverage']:.0%} | " + " | ".join(
                    f"{rc[x][i]['kept_accuracy']:.3f} ({rc[x][i]['tau']:.3f})" if i < len(rc[x]) else "n/a"
                    for x in splits) + " |")
        nl = b.get("non_log_inputs")
        if nl:
            out += ["", f"Text that is not a log ({nl['n']} lines): {_pct(nl['escalated'])} escalated; "
                    f"{nl['confident_normal']} kept as confident `normal`. By kind: "
                    + ", ".join(f"{kind} {_pct(v)}" for kind, v in nl["escalated_by_kind"].items()) + "."]
    c = r["contention"]
    out += ["", f"Wall time {c['wall_s']} s (classifying the stream {s['classify_s']} s); "
            f"other processes' share of the CPU meanwhile: {c.get('foreign_share_of_capacity', 'n/a')}.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    defaults = EscalationPolicy()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="the artifact directory")
    parser.add_argument("--out-dir", default=str(BENCH_DIR / "results"), help="where cascade.json and cascade.md go")
    parser.add_argument("--low-confidence", type=float, default=defaults.low_confidence,
                        help="τ: escalate under this calibrated confidence (serve's default)")
    parser.add_argument("--max-ood", type=float, default=defaults.max_ood,
                        help="δ: escalate over this OOD score (serve's default)")
    parser.add_argument("--taus", type=float, nargs="+", default=list(TAUS), metavar="TAU",
                        help=f"the τ sweep, at the run's δ (default: {' '.join(map(str, TAUS))})")
    parser.add_argument("--deltas", type=float, nargs="+", default=list(DELTAS), metavar="DELTA",
                        help=f"the δ sweep, at the run's τ (default: {' '.join(map(str, DELTAS))})")
    parser.add_argument("--limit", type=int, default=0, help="only the first N lines of the stream (0: all)")
    parser.add_argument("--batch", type=int, default=BATCH, help="lines per classify_raw call (serve's poll batch)")
    parser.add_argument("--dedup", type=int, default=DEDUP, help="the escalator's dedup (serve's escalation_dedup)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    command = "HF_HUB_OFFLINE=1 .venv/bin/python bench/cascade.py " + shlex.join(argv)

    report = run(args, command)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cascade.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "cascade.md").write_text(markdown(report))
    d = report["default"]
    print(json.dumps({"model_version": report["model_version"], "lines": report["stream"]["lines"],
                      "escalated": d["escalated"], "teacher_calls_per_1000_lines": d["teacher_calls_per_1000_lines"],
                      "student_accuracy": d["student_accuracy"], "kept_accuracy": d["kept_accuracy"],
                      "system_accuracy": d["system_accuracy"], "out": str(out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
