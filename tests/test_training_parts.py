"""Training building blocks: corpus readers, dedup, label store, teachers, augmentation, split, evaluation."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import LEVEL_ALIASES, parse_line
from service.taxonomy import load_taxonomy
from training import pipeline
from training.corpus.augment import augment_line, resample_variables, rewrap
from training.corpus.k8s_corpus import ENVELOPES, wrap
from training.corpus.readers import LogRecord, Template, dedup_templates, read_jsonl, read_loghub_structured, read_text_file
from training.evaluation.metrics import agreement, classification_report, group_bootstrap_accuracy, keyword_baseline, retention
from training.teachers.label_store import label_templates
from training.teachers.base import TeacherQuery
from training.teachers.recorded import RecordedTeacher

TAXONOMY = load_taxonomy()
LABELS = TAXONOMY.labels


def key_of(line: str) -> str:
    return template_key(parse_line(line))


# ---- corpus readers ------------------------------------------------------------------------

def test_read_text_file(tmp_path):
    path = tmp_path / "app.log"
    path.write_bytes(b"connection refused to 10.0.0.1:5432\n\n   \nE0612 10:01:02.123456 1 a.go:1] disk full\r\n"
                     b"caf\xc3\xa9 \xff ok\n")
    records = list(read_text_file(path))
    assert [r.text for r in records] == ["connection refused to 10.0.0.1:5432",
                                         "E0612 10:01:02.123456 1 a.go:1] disk full", "café \ufffd ok"]
    assert {r.source for r in records} == {"file:app.log"}
    assert [r.group for r in records] == ["connection refused to <IP>", "[error] disk full", "café \ufffd ok"]
    assert all(r.meta == {} for r in records)


def test_read_jsonl(tmp_path):
    path = tmp_path / "labelled.jsonl"
    rows = [{"line": "dial tcp 10.0.0.1:53: i/o timeout", "label": "network"},
            {"message": "user admin logged in from 10.1.1.1"},
            {},  # placeholder for a blank line, see below
            {"line": 42, "msg": "disk /dev/sda1 full", "template_id": "disk-full", "label": "resource"}]
    text = "\n".join("" if not row else json.dumps(row) for row in rows) + "\n"
    path.write_text(text)
    records = list(read_jsonl(path))
    assert [r.text for r in records] == ["dial tcp 10.0.0.1:53: i/o timeout", "user admin logged in from 10.1.1.1",
                                         "disk /dev/sda1 full"]  # non-string "line" skipped for "msg"
    assert [r.meta for r in records] == [{"gold": "network"}, {}, {"gold": "resource"}]
    assert records[0].group == key_of(records[0].text)
    assert records[2].group == "disk-full"
    assert records[0].source == "jsonl:labelled.jsonl"


def test_read_jsonl_line_without_text_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"line": "fine"}) + "\n" + json.dumps({"level": "error", "label": "crash"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: no log text"):
        list(read_jsonl(path))


LOGHUB_HEADER = ["LineId", "Date", "Time", "Pid", "Level", "Component", "Content", "EventId", "EventTemplate"]
LOGHUB_ROWS = [
    ["1", "081109", "203615", "148", "INFO", "dfs.DataNode", "Receiving block blk_123 src: /10.0.0.1:500",
     "E1", "Receiving block blk_<*> src: /<*>:<*>"],
    ["2", "081109", "203616", "149", "WARN", "dfs.DataNode", "Slow write\x0cto disk 7 took 900ms",
     "E2", "Slow write<*>to disk <*> took <*>"],
    ["3", "081109", "203617", "150", "", "dfs.FSNamesystem", "Receiving block blk_456 src: /10.0.0.2:500",
     "E1", "Receiving block blk_<*> src: /<*>:<*>"],
]


def write_loghub(root: Path, with_raw: bool = True) -> Path:
    system = root / "Tiny"
    system.mkdir(parents=True)
    csv_path = system / "Tiny_2k.log_structured.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(LOGHUB_HEADER)
        writer.writerows(LOGHUB_ROWS)
    if with_raw:
        raw = "".join(f"{r[1]} {r[2]} {r[3]} {r[4]} {r[5]}: {r[6]}\n" for r in LOGHUB_ROWS)
        (system / "Tiny_2k.log").write_text(raw, encoding="utf-8")
    return csv_path


def test_read_loghub_structured_joins_raw_lines_by_line_id(tmp_path):
    records = list(read_loghub_structured(write_loghub(tmp_path)))
    assert len(records) == 3
    # The raw line, header and all, is the text; line 2 holds a form feed, which must not split it.
    assert [r.text for r in records] == [f"{r[1]} {r[2]} {r[3]} {r[4]} {r[5]}: {r[6]}" for r in LOGHUB_ROWS]
    assert [r.group for r in records] == ["Tiny:E1", "Tiny:E2", "Tiny:E1"]
    assert {r.source for r in records} == {"loghub:Tiny"}
    assert records[1].meta == {"system": "Tiny", "event_id": "E2", "content": LOGHUB_ROWS[1][6], "level": "WARN"}
    assert records[2].meta["level"] is None  # empty Level column


def test_read_loghub_structured_without_raw_file_uses_content(tmp_path):
    records = list(read_loghub_structured(write_loghub(tmp_path, with_raw=False)))
    assert [r.text for r in records] == [r[6] for r in LOGHUB_ROWS]


# ---- dedup ---------------------------------------------------------------------------------

def test_dedup_templates_counts_groups_and_saving():
    records = [LogRecord(f"connection refused to 10.0.0.{i}:5432 after {i} retries", "s", "g-net",
                         {"system": "A", "event_id": "net"}) for i in range(1, 7)]
    records += [LogRecord(f"disk /dev/sd{c}1 is full", "s", "g-disk", {"event_id": "disk"}) for c in "ab"]
    # One line of another source template that masks to the network key: the key stays with g-net.
    records.insert(0, LogRecord("connection refused to 10.9.9.9:1 after 99 retries", "s", "g-rare",
                                {"event_id": "rare"}))
    templates = dedup_templates(records, max_examples=3)
    by_key = {t.key: t for t in templates}
    assert set(by_key) == {"connection refused to <IP> after <NUM> retries", "disk <PATH> is full"}
    net, disk = by_key["connection refused to <IP> after <NUM> retries"], by_key["disk <PATH> is full"]
    assert (net.count, disk.count) == (7, 2)
    assert (net.group, net.meta) == ("g-net", {"system": "A", "event_id": "net"})
    assert net.examples == [r.text for r in records[:3]]  # the first lines, capped at max_examples
    assert disk.group == "g-disk" and len(disk.examples) == 2
    saving = 1 - len(templates) / len(records)  # the teacher is asked once per template, not per line
    assert saving == pytest.approx(7 / 9)


# ---- label store ---------------------------------------------------------------------------

class CountingTeacher:
    """Our own Teacher protocol: a deterministic distribution per key; counts what it is asked."""

    def __init__(self, labels=LABELS, teacher_id: str = "counting:v1", refuse: tuple[str, ...] = ()):
        self.labels = labels
        self.teacher_id = teacher_id
        self.refuse = refuse
        self.asked: list[str] = []

    def distributions(self, queries):
        out = []
        for q in queries:
            self.asked.append(q.key)
            if q.key in self.refuse:
                out.append(None)
                continue
            p = np.random.default_rng(sum(q.key.encode())).dirichlet(np.ones(len(self.labels)))
            out.append(p.astype(np.float32))
        return out


def queries(keys):
    return [TeacherQuery(key=k, example=k) for k in keys]


def test_label_store_round_trip_and_reopen(tmp_path):
    path = tmp_path / "sub" / "labels.sqlite"
    store = LabelStore(path)
    answers = {"a <NUM>": np.array([0.25, 0.75]), "b": np.array([1 / 3, 2 / 3])}
    store.put_many("t1", answers, ("normal", "crash"))
    got = store.get_many("t1", ["a <NUM>", "b", "missing"], ("normal", "crash"))
    assert set(got) == {"a <NUM>", "b"}
    np.testing.assert_allclose(got["b"], answers["b"], atol=1e-6)
    assert got["a <NUM>"].dtype == np.float32
    assert store.get_many("t2", ["a <NUM>"], ("normal", "crash")) == {}  # another teacher
    store.close()
    reopened = LabelStore(path)
    assert reopened.count() == 2 and reopened.count("t1") == 2 and reopened.count("t2") == 0
    np.testing.assert_allclose(reopened.get_many("t1", ["a <NUM>"], ("normal", "crash"))["a <NUM>"], [0.25, 0.75])
    reopened.close()


def test_label_store_many_keys(tmp_path):
    store = LabelStore(tmp_path / "ls.sqlite")
    keys = [f"template {i}" for i in range(1234)]  # more than one SQLite parameter chunk
    store.put_many("t", {k: np.array([1.0, 0.0]) for k in keys}, ("normal", "crash"))
    assert len(store.get_many("t", keys, ("normal", "crash"))) == 1234
    store.close()


def test_second_labelling_run_is_answered_from_the_store(tmp_path):
    keys = [f"event {i} happened" for i in range(70)]  # more than one teacher batch
    teacher = CountingTeacher()
    store = LabelStore(tmp_path / "ls.sqlite")
    first, stats = label_templates(teacher, store, queries(keys + keys[:5]), LABELS)  # duplicates asked once
    assert (stats.asked, stats.from_store, stats.labelled, stats.failed) == (70, 0, 70, 0)
    assert sorted(teacher.asked) == sorted(keys)
    store.close()

    store = LabelStore(tmp_path / "ls.sqlite")  # a later run
    again_teacher = CountingTeacher()
    second, stats = label_templates(again_teacher, store, queries(keys), LABELS)
    assert (stats.asked, stats.from_store, stats.labelled) == (70, 70, 0)
    assert again_teacher.asked == []
    for key in keys:  # bit-identical: a warm store must not change the model a rebuild trains
        np.testing.assert_array_equal(second[key], first[key])

    # A new key is the only thing the teacher is asked.
    _, stats = label_templates(again_teacher, store, queries(keys + ["brand new"]), LABELS)
    assert (stats.from_store, stats.labelled) == (70, 1) and again_teacher.asked == ["brand new"]
    store.close()


def test_other_taxonomy_is_not_served_from_the_store(tmp_path):
    store = LabelStore(tmp_path / "ls.sqlite")
    keys = ["disk full", "probe failed"]
    label_templates(CountingTeacher(), store, queries(keys), LABELS)
    other_labels = tuple(reversed(LABELS))
    teacher = CountingTeacher(labels=other_labels)
    _, stats = label_templates(teacher, store, queries(keys), other_labels)
    assert (stats.from_store, stats.labelled) == (0, 2)
    assert sorted(teacher.asked) == sorted(keys)
    store.close()


def test_refused_queries_are_not_stored_and_asked_again(tmp_path):
    store = LabelStore(tmp_path / "ls.sqlite")
    teacher = CountingTeacher(refuse=("unknowable",))
    answers, stats = label_templates(teacher, store, queries(["known", "unknowable"]), LABELS)
    assert set(answers) == {"known"} and (stats.labelled, stats.failed) == (1, 1)
    teacher.asked.clear()
    _, stats = label_templates(teacher, store, queries(["known", "unknowable"]), LABELS)
    assert teacher.asked == ["unknowable"] and (stats.from_store, stats.failed) == (1, 1)
    store.close()


# ---- teachers ------------------------------------------------------------------------------

def test_recorded_teacher_replays_the_shared_labels():
    path = Path(pipeline.SHARED_DATA) / "loghub_labels.csv"
    if not path.is_file():
        pytest.skip(f"recorded labels not found at {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows
    teacher = RecordedTeacher.from_csv(TAXONOMY, path)
    dists = teacher.distributions([TeacherQuery("", "", {"system": r["system"], "event_id": r["event_id"]})
                                   for r in rows])
    for row, dist in zip(rows, dists):
        assert dist is not None and dist.shape == (len(LABELS),)
        assert dist.sum() == pytest.approx(1.0, abs=1e-6)
        assert LABELS[int(np.argmax(dist))] == row["label"], row
    unknown = TeacherQuery("", "", {"system": "HDFS", "event_id": "no-such-event"})
    assert teacher.distributions([unknown]) == [None]


def test_recorded_teacher_id_fingerprints_its_table():
    rows = [{"system": "S", "event_id": "E1", "label": "network", "probs": json.dumps({"network": 0.6,
                                                                                       "normal": 0.2})}]
    a = RecordedTeacher(TAXONOMY, rows)
    b = RecordedTeacher(TAXONOMY, [{**rows[0], "probs": ""}])
    assert a.teacher_id != b.teacher_id and a.teacher_id == RecordedTeacher(TAXONOMY, rows).teacher_id
    dist = a.distributions([TeacherQuery("", "", {"system": "S", "event_id": "E1"})])[0]
    assert dist[TAXONOMY.index("network")] == pytest.approx(0.75)  # renormalised 0.6 / 0.8


def test_embedding_teacher_on_packaged_minilm():
    pytest.importorskip("sentence_transformers")
    from training.teachers.embedding import EmbeddingTeacher

    teacher = EmbeddingTeacher(TAXONOMY)
    texts = ["connection refused by upstream host, dial tcp timeout",
             "[error] OOMKilled: container exceeded its memory limit",
             "Readiness probe failed: HTTP probe failed with statuscode: <503>",
             "Started container nginx",
             "Failed to pull image \"<HOST>/app:<NUM>\": ErrImagePull"]
    dists = teacher.distributions(queries(texts))
    assert len(dists) == 5
    for dist in dists:
        assert dist.shape == (13,) == (len(LABELS),)
        assert dist.sum() == pytest.approx(1.0, abs=1e-5)
        assert (dist >= 0).all()
    top3 = [LABELS[i] for i in np.argsort(-dists[0])[:3]]
    assert "network" in top3
    assert not np.allclose(dists[0], dists[3])  # the inputs matter


# ---- augmentation --------------------------------------------------------------------------

RESAMPLE_LINES = [
    "connection refused to 10.0.0.1:5432 after 3 retries",
    "request 3f2a9c1e-1234-4abc-8def-0123456789ab failed at 2024-06-12T10:01:02Z",
    "pod web-7d9f8b6c5-x2kqz OOMKilled, exit code 137",
    "read /var/lib/data/ failed: 0xdeadbeef",
    "GET http://example.com/x returned 503 in 12ms",
    "user bob@example.com login failed from node1.cluster.internal",
    "After Scheduling: PendingReds:1 ScheduledMaps:2 AssignedReds:0",
    "E0612 10:01:02.123456       1 schedule_one.go:345] 0/3 nodes are available: 3 Insufficient cpu.",
    "2024-06-12T10:01:02.123456789Z stderr F dial tcp 10.0.0.7:5432: connect: connection refused",
    json.dumps({"log": "GET /api/v1/orders HTTP/1.1\" 200 5351 took 4.5s\n", "stream": "stdout",
                "time": "2024-01-30T15:42:32.783249436Z"}),
]


@pytest.mark.parametrize("line", RESAMPLE_LINES)
def test_resample_changes_values_but_keeps_the_key(line):
    original_key = key_of(line)
    changed = 0
    for seed in range(20):
        new = resample_variables(line, random.Random(seed))
        assert key_of(new) == original_key, (line, new)
        assert parse_line(new).format == parse_line(line).format
        changed += new != line
    assert changed >= 18  # fresh values nearly every time


def test_resample_is_deterministic_per_seed():
    line = RESAMPLE_LINES[0]
    assert resample_variables(line, random.Random(5)) == resample_variables(line, random.Random(5))


@pytest.mark.parametrize("line", RESAMPLE_LINES[:3] + RESAMPLE_LINES[7:])
def test_rewrap_keeps_the_message(line):
    original = parse_line(line)
    formats = set()
    for seed in range(25):
        parsed = parse_line(rewrap(line, random.Random(seed)))
        assert parsed.message == original.message
        assert parsed.level in (original.level, None)  # kept wherever the envelope can carry a level
        formats.add(parsed.format)
    assert len(formats) >= 3  # several envelopes were used


def test_rewrap_uses_the_level_hint_only_when_the_line_has_none():
    rng = random.Random(0)
    hinted = {parse_line(rewrap("disk is full", rng, level_hint="WARN")).level for _ in range(30)}
    assert hinted == {"warning", None}  # None: plain and CRI envelopes carry no level
    klog = RESAMPLE_LINES[7]  # an E... line: its own level wins over the hint
    assert {parse_line(rewrap(klog, rng, level_hint="info")).level for _ in range(30)} == {"error", None}


def test_augment_line_variants():
    line = RESAMPLE_LINES[0]
    variants = augment_line(line, random.Random(1), level_hint="error", n_variants=4)
    assert len(variants) == 4
    assert parse_line(variants[0]).format == "plain" and variants[0] != line  # resampled only
    assert all(parse_line(v).message.startswith("connection refused to ") for v in variants)
    assert all(key_of(parse_line(v).message) == key_of(line) for v in variants)


@pytest.mark.parametrize("level", sorted(set(LEVEL_ALIASES.values())) + [None])
def test_augmentation_handles_every_level_the_parser_knows(level):
    """A corpus line at any parsed level (debug and trace included) augments and re-wraps in every envelope."""
    rng = random.Random(5)
    spellings = [alias for alias, normal in LEVEL_ALIASES.items() if normal == level] or [None]
    for spelling in spellings:
        line = json.dumps({"level": spelling, "msg": "cache refreshed for 12 keys"}) if spelling else "cache refreshed"
        for variant in augment_line(line, rng, level_hint=spelling, n_variants=6):
            assert parse_line(variant).message.startswith("cache refreshed")
        for envelope in ENVELOPES:
            parsed = parse_line(wrap("cache refreshed", level, rng, envelope=envelope))
            assert parsed.message == "cache refreshed"
            if envelope == "json":
                assert parsed.level == level


# ---- split ---------------------------------------------------------------------------------

def synthetic_templates() -> list[Template]:
    rng = random.Random(3)
    templates = []
    for g in range(40):
        label = ["normal", "network", "crash", "storage"][g % 4] if g < 36 else None
        for k in range(rng.randint(1, 4)):
            meta = {"gold": label} if label else {"system": "X", "event_id": f"unknown-{g}"}
            templates.append(Template(key=f"group {g} variant {k}", group=f"G{g}", count=1 + k, examples=[""],
                                      meta=meta))
    templates.append(Template(key="lonely config", group="G-config", count=1, examples=[""],
                              meta={"gold": "config"}))
    return templates


def assert_disjoint_split(templates, train, test):
    assert sorted(t.key for t in train + test) == sorted(t.key for t in templates)
    train_groups, test_groups = {t.group for t in train}, {t.group for t in test}
    assert not train_groups & test_groups
    assert test_groups


def test_split_by_group_synthetic():
    templates = synthetic_templates()
    gold = RecordedTeacher(TAXONOMY, [])
    train, test = pipeline.split_by_group(templates, gold, 0.25, seed=0)
    assert_disjoint_split(templates, train, test)
    test_groups = {t.group for t in test}
    assert "G-config" not in test_groups  # a label with one group stays in training
    assert not any(t.meta.get("event_id", "").startswith("unknown") for t in test)  # no gold: train
    # Stratified: each of the four labelled classes (9 groups each) gives round(0.25 * 9) = 2 groups.
    per_label = {}
    for t in test:
        per_label.setdefault(t.meta["gold"], set()).add(t.group)
    assert {label: len(groups) for label, groups in per_label.items()} == {"normal": 2, "network": 2, "crash": 2,
                                                                            "storage": 2}
    assert pipeline.split_by_group(templates, gold, 0.25, seed=0) == (train, test)  # deterministic


def test_split_by_group_real_corpus():
    if not (Path(pipeline.SHARED_DATA) / "loghub").is_dir():
        pytest.skip("Loghub data not found under ../shared/data")
    cfg = pipeline.BuildConfig(seed_lines_per_template=2, progress=False)
    templates = dedup_templates(pipeline.collect_records(cfg))
    gold = pipeline.make_gold_table(cfg, TAXONOMY)
    train, test = pipeline.split_by_group(templates, gold, cfg.test_fraction, cfg.seed)
    assert_disjoint_split(templates, train, test)
    assert 0.1 < len(test) / len(templates) < 0.4



def test_sample_groups_keeps_whole_groups_and_is_seeded():
    templates = synthetic_templates()
    groups = {t.group for t in templates}
    half = pipeline.sample_groups(templates, 0.5, seed=0)
    kept = {t.group for t in half}
    assert len(kept) == round(0.5 * len(groups))
    assert sorted(t.key for t in half) == sorted(t.key for t in templates if t.group in kept)  # whole groups
    assert pipeline.sample_groups(templates, 0.5, seed=0) == half
    assert {t.group for t in pipeline.sample_groups(templates, 0.5, seed=1)} != kept
    assert len({t.group for t in pipeline.sample_groups(templates, 0.001, seed=0)}) == 1  # never empty


def test_train_fraction_is_checked_and_leaves_the_default_version_alone():
    with pytest.raises(ValueError, match="train_fraction"):
        pipeline.prepare_training_data(pipeline.BuildConfig(train_fraction=0.0, progress=False))
    # Options added after the first builds: at their defaults they are not part of the version.
    settings = pipeline._build_settings(pipeline.BuildConfig())
    assert not {"train_fraction", "paraphrase", "max_test_templates"} & settings.keys()
    assert pipeline._build_settings(pipeline.BuildConfig(train_fraction=0.5))["train_fraction"] == 0.5

# ---- evaluation ----------------------------------------------------------------------------

EVAL_LABELS = ("normal", "network", "app_error", "storage", "crash")
GOLD = np.array([0, 0, 1, 1, 2, 0, 0])
PRED = np.array([0, 1, 1, 1, 0, 0, 3])
# confusion (gold rows × pred cols): normal [2,1,0,1], network [0,2,0,0], app_error [1,0,0,0]
# normal    P = 2/3, R = 2/4, F1 = 4/7      network P = 2/3, R = 1, F1 = 0.8
# app_error P = 0,   R = 0,   F1 = 0        storage: predicted once, never gold: shown, not in macro-F1


def test_classification_report_by_hand():
    report = classification_report(GOLD, PRED, EVAL_LABELS)
    assert report["accuracy"] == pytest.approx(4 / 7)
    assert report["macro_f1"] == pytest.approx((4 / 7 + 0.8 + 0.0) / 3)
    assert report["n"] == 7
    per = report["per_label"]
    assert set(per) == {"normal", "network", "app_error", "storage"}  # crash: neither gold nor predicted
    assert per["normal"] == {"precision": 0.6667, "recall": 0.5, "f1": 0.5714, "support": 4.0}
    assert per["network"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2.0}
    assert per["app_error"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0}
    assert per["storage"]["support"] == 0.0 and per["storage"]["precision"] == 0.0
    assert report["confusion"][0] == [2, 1, 0, 1, 0]


def test_classification_report_probabilities_and_weights():
    probs = np.eye(len(EVAL_LABELS))[PRED] * 0.6 + 0.08
    assert classification_report(GOLD, probs, EVAL_LABELS) == classification_report(GOLD, PRED, EVAL_LABELS)
    weights = np.array([1, 1, 1, 1, 3, 1, 1])  # the missed app_error line occurred three times
    weighted = classification_report(GOLD, PRED, EVAL_LABELS, weights=weights)
    assert weighted["accuracy"] == pytest.approx(4 / 9)
    assert weighted["per_label"]["app_error"]["support"] == 3.0
    assert weighted["per_label"]["normal"]["precision"] == pytest.approx(0.4)  # 2 of 5 weighted predictions


def test_agreement():
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert agreement(a, np.array([0, 1, 1, 1])) == pytest.approx(0.75)
    assert agreement(a, np.array([0, 1, 1, 1]), weights=np.array([1, 1, 6, 2])) == pytest.approx(0.4)
    assert agreement(a, a) == 1.0


def test_retention():
    student = {"accuracy": 0.6, "macro_f1": 0.3}
    assert retention(student, {"accuracy": 0.8, "macro_f1": 0.6}) == pytest.approx({"accuracy": 0.75,
                                                                                     "macro_f1": 0.5})
    assert retention(student, {"accuracy": 0.8, "macro_f1": 0.0})["macro_f1"] == 0.0


def test_keyword_baseline():
    texts = ["NullPointerException in handler", "Job FAILED after retry", "Started container", "no errors found",
             "connection refused"]
    got = keyword_baseline(texts, LABELS)
    app_error, normal = LABELS.index("app_error"), LABELS.index("normal")
    assert got.tolist() == [app_error, app_error, normal, app_error, normal]


def test_group_bootstrap_interval_brackets_the_accuracy_and_widens_with_fewer_groups():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.7
    many = group_bootstrap_accuracy(correct, [f"g{i}" for i in range(400)])
    few = group_bootstrap_accuracy(correct, [f"g{i % 20}" for i in range(400)])
    assert many["accuracy"] == pytest.approx(correct.mean())
    for ci in (many, few):
        assert ci["ci_low"] < ci["accuracy"] < ci["ci_high"]
    # 20 groups of correlated rows know less than 400 independent rows.
    assert few["ci_high"] - few["ci_low"] > many["ci_high"] - many["ci_low"]
    assert few["groups"] == 20


def test_group_bootstrap_weights_rows_and_is_exact_when_every_row_agrees():
    perfect = group_bootstrap_accuracy(np.ones(10, dtype=bool), list("aabbccddee"))
    assert (perfect["ci_low"], perfect["accuracy"], perfect["ci_high"]) == (1.0, 1.0, 1.0)
    weighted = group_bootstrap_accuracy(np.array([1, 0], dtype=bool), ["a", "b"], weights=np.array([3.0, 1.0]))
    assert weighted["accuracy"] == pytest.approx(0.75)
