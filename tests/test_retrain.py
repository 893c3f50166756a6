"""The retraining loop (training/loop/retrain.py, `logdistill retrain`), end to end with real parts: the
real pipeline on a small corpus (three Loghub systems, a tiny student, the recorded teacher), a real
Kafka broker (tansu) for the snapshot, the Kubernetes API double for pod logs, and serve's own
hot-reload watcher on <root>/current.

One root goes through three runs (module fixture `runs`; each build is ~20-60 s on 2 busy cores):
  1. first run (a log file): promoted, since there is no current model;
  2. `logdistill retrain` (the CLI, Kafka settings from LOGDISTILL_* env) with new logs from
     Kafka topics (raw, escalations, teacher answers) and from pods: only new templates are
     sent to the teacher, and a teacher answer from the feedback topic is used instead of asking
     (the recorded teacher knows only Loghub's templates: it cannot label the others, which is
     what the answers are for); promoted (gate max drop 1.0);
  3. a candidate crippled for real (learning rate 0: an untrained student): the gate refuses it
     and `current` still points where it did.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from service.classifier import Classifier
from service.label_store import LabelStore
from service.masking import template_key
from service.parsing import parse_line
from service.reload import ModelReloader
from training.pipeline import HELDOUT_FILE, SHARED_DATA, BuildConfig
from training.loop.retrain import Gate, ModelRoot, RetrainError, Sources, append_to_corpus, decide, retrain

SYSTEMS = ("HDFS", "Apache", "Linux")
TINY = dict(teacher="recorded", use_seed_corpus=False, k8s_labels=None, student={"dim": 32, "layers": 1, "heads": 2, "max_length": 48},
            train={"epochs": 5}, augment_variants=1, progress=False)

FIRST_FILE_LINES = ["TLS handshake timeout contacting registry-1.docker.io",
                    "TLS handshake timeout contacting registry-2.docker.io"]  # one template
REFUSED = "dial tcp 10.0.3.7:5432: connect: connection refused"
BACKOFF = "Back-off restarting failed container api in pod api-7d9f8-x2x"
OOM = "Memory cgroup out of memory: Killed process 4211 (java)"
PROBE = "Readiness probe failed: HTTP probe failed with statuscode: 503"
X509 = "x509: certificate has expired or is not yet valid"
POD_LINE = "panic: runtime error: invalid memory address or nil pointer dereference"
HDFS_LINE = ("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block "
             "blk_38865049064139660 terminating")  # a template the corpus has: not new


def key(line: str) -> str:
    return template_key(parse_line(line))


def small_loghub(tmp: Path) -> Path:
    root = tmp / "loghub"
    root.mkdir()
    for system in SYSTEMS:
        os.symlink(Path(SHARED_DATA) / "loghub" / system, root / system)
    return root


def run_cli(argv: list[str]) -> tuple[int, dict]:
    from training.loop.retrain_cli import register

    parser = argparse.ArgumentParser(prog="logdistill")
    register(parser.add_subparsers())
    args = parser.parse_args(["retrain", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = args.handler(args)
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, kafka):
    import torch

    from k8s_api_server import FakeApiServer
    from topics import create_topics, fresh, produce

    if not (Path(SHARED_DATA) / "loghub").is_dir():
        pytest.skip(f"Loghub data not found under {SHARED_DATA}")
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("retrain")
    loghub, root = small_loghub(tmp), tmp / "root"
    build = BuildConfig(loghub_dir=str(loghub), **TINY)
    seen: dict = {"root": ModelRoot(root)}

    # 1. First run: a log file.
    first_file = tmp / "first.log"
    first_file.write_text("\n".join(FIRST_FILE_LINES) + "\n")
    seen["first"] = retrain(root, build, Sources(files=[str(first_file)]), Gate(), log=lambda _: None)
    seen["first_current"] = os.readlink(root / "current")
    teacher_id = json.loads((root / "current" / "config.json").read_text())["teacher"]
    seen["teacher_id"] = teacher_id
    reloader = ModelReloader(root / "current", lambda p: Classifier.from_dir(p, cache_size=0), interval_s=1)

    # 2. The CLI, with Kafka topics and a cluster.
    logs, escalate, feedback = fresh("logs", "logs.escalate", "logs.feedback")
    create_topics(kafka, logs, escalate, feedback)
    produce(kafka, logs, [REFUSED.encode(), REFUSED.replace("10.0.3.7", "10.0.9.1").encode(), HDFS_LINE.encode(),
                          json.dumps({"log": PROBE, "kubernetes": {"pod_name": "web-1", "namespace_name": "shop",
                                                                   "container_name": "web"}}).encode(),
                          b"\xff not utf-8"])
    produce(kafka, escalate, [json.dumps({"line": X509, "line_truncated": False,
                                          "template": {"id": "x", "key": key(X509)},
                                          "student": {"label": "normal", "confidence": 0.2, "probs": {}},
                                          "model_version": "v1", "source": {}}).encode()])
    produce(kafka, feedback, [json.dumps({"line": BACKOFF, "label": "crash", "teacher_id": teacher_id}).encode(),
                              json.dumps({"line": OOM, "label": "resource", "teacher_id": "gpt-test"}).encode(),
                              json.dumps({"line": OOM, "label": "not-a-label", "teacher_id": "gpt-test"}).encode()])
    cluster = FakeApiServer(token="t").start()
    cluster.add_pod("shop", "api-1", {"app": "api"}, {"api": POD_LINE + "\n" + REFUSED + "\n", "init": None})
    cluster.add_pod("shop", "db-0", {"app": "db"}, {"db": "should not be collected\n"})
    cluster.write_kubeconfig(tmp / "kubeconfig")
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LOGDISTILL_BOOTSTRAP_SERVERS", kafka.bootstrap)  # as serve reads it
            seen["second_code"], seen["second_outcome"] = run_cli([
                "--root", str(root), "--teacher", "recorded", "--loghub-dir", str(loghub), "--no-seed-corpus", "--no-k8s-labels",
                "--dim", "32", "--layers", "1", "--heads", "2", "--epochs", "5", "--augment-variants", "1",
                "--threads", "1", "--quiet", "--gate-max-drop", "1.0",
                "--kafka-topics", f"{logs},{escalate},{feedback}", "--kafka-timeout-s", "60",
                "--k8s-namespace", "shop", "--k8s-selector", "app=api", "--k8s-kubeconfig", str(tmp / "kubeconfig")])
    finally:
        cluster.stop()
    seen["second"] = latest_report(root)
    seen["reloaded"] = reloader.check_now()

    # 3. A crippled candidate: learning rate 0, so the student stays as initialised.
    crippled = BuildConfig(loghub_dir=str(loghub), **{**TINY, "train": {"epochs": 1, "lr": 0.0}})
    before = os.readlink(root / "current")
    seen["third"] = retrain(root, crippled, Sources(), Gate("accuracy", 0.0), log=lambda _: None)
    seen["third_current_before"], seen["third_current_after"] = before, os.readlink(root / "current")
    seen["reloaded_after_refusal"] = reloader.check_now()
    return seen


def latest_report(root: Path) -> dict:
    return json.loads(sorted((root / "reports").glob("retrain-*.json"))[-1].read_text())


def test_the_first_run_promotes_and_lays_out_the_root(runs):
    first, root = runs["first"], runs["root"]
    assert first["promoted"] and first["previous"] is None and first["gate"]["reason"] == "first model of this root"
    assert runs["first_current"] == f"versions/{first['candidate']}"
    assert (root.versions / first["candidate"] / HELDOUT_FILE).is_file()
    corpus = (root.corpus / first["corpus"]["file"]).read_text().splitlines()
    assert [json.loads(line)["line"] for line in corpus] == FIRST_FILE_LINES[:1]  # one line per new template
    # The recorded teacher labels every Loghub template, not the file's new one.
    assert (first["labelling"]["labelled"], first["labelling"]["failed"]) == (first["labelling"]["asked"] - 1, 1)


def test_a_second_run_from_kafka_and_pods_labels_only_the_new_templates(runs):
    code, outcome, second, first = runs["second_code"], runs["second_outcome"], runs["second"], runs["first"]
    assert code == 0 and outcome["promoted"] and outcome["current"] == outcome["candidate"] == second["candidate"]
    assert outcome["previous"] == first["candidate"]

    new_keys = {key(line) for line in (REFUSED, PROBE, X509, BACKOFF, OOM, POD_LINE)}
    assert second["corpus"]["templates"] == len(new_keys)
    kafka = second["collected"]["kafka"]
    assert (kafka["log_lines"], kafka["escalations"], kafka["answers"]) == (4, 1, 2)
    assert kafka["bad"] == {"invalid_utf8": 1, "bad_feedback": 1}
    pods = second["collected"]["kubernetes"]
    assert (pods["pods"], pods["lines"], len(pods["skipped"])) == (1, 2, 1)  # db-0 not selected; init waiting

    # Only templates the store lacked went to the teacher; BACKOFF's answer came from the feedback topic.
    labelling, stored_before = second["labelling"], first["labelling"]["labelled"]
    assert labelling["asked"] == first["labelling"]["asked"] + len(new_keys)
    assert labelling["from_store"] == stored_before + 1
    lacking = labelling["asked"] - labelling["from_store"]
    assert lacking == len(new_keys)  # the 5 new templates without an answer + the first run's unlabelled one
    assert (labelling["labelled"], labelling["failed"]) == (0, lacking)
    store = LabelStore(runs["root"].label_store)
    try:
        assert store.count(runs["teacher_id"]) == stored_before + 1
        assert store.count("gpt-test") == 1
        labels = Classifier.from_dir(runs["root"].current, cache_size=0).labels
        backoff = store.get_many(runs["teacher_id"], [key(BACKOFF)], labels)[key(BACKOFF)]
        assert labels[int(np.argmax(backoff))] == "crash" and backoff.max() == pytest.approx(1.0)
    finally:
        store.close()


def test_the_two_models_are_scored_on_the_same_unseen_held_out_templates(runs):
    root, first, second = runs["root"], runs["first"], runs["second"]
    old = json.loads((root.versions / first["candidate"] / HELDOUT_FILE).read_text())
    new = json.loads((root.versions / second["candidate"] / HELDOUT_FILE).read_text())
    assert set(old["held_out_groups"]) <= set(new["held_out_groups"])  # held out once, held out for good
    comparison = second["comparison"]
    assert comparison["left_out_seen_by_current"] == 0
    assert comparison["templates"] == len(new["keys"]) > 0
    for model in ("candidate", "current"):
        assert set(comparison[model]["templates"]) == {"accuracy", "macro_f1"}
    assert second["gate"]["candidate"] == comparison["candidate"]["templates"]["accuracy"]
    difference = comparison["accuracy_difference"]
    assert difference["templates"] == pytest.approx(comparison["candidate"]["templates"]["accuracy"]
                                                    - comparison["current"]["templates"]["accuracy"], abs=1e-3)
    assert difference["ci_low"] <= difference["templates"] <= difference["ci_high"]


def test_a_promotion_is_picked_up_by_serves_reload_watcher(runs):
    reloaded = runs["reloaded"]
    assert reloaded is not None and reloaded.model_version == runs["second"]["candidate"]
    assert runs["reloaded_after_refusal"] is None


def test_the_gate_refuses_a_worse_candidate_and_current_is_untouched(runs):
    third = runs["third"]
    assert not third["promoted"]
    assert third["gate"]["candidate"] < third["gate"]["current"]  # really worse, on the same templates
    assert runs["third_current_after"] == runs["third_current_before"] == f"versions/{runs['second']['candidate']}"
    assert (runs["root"].versions / third["candidate"]).is_dir()  # kept next to the others, for inspection
    assert third["labelling"]["from_store"] == runs["second"]["labelling"]["from_store"]  # nothing new to label


# ---- without a build ---------------------------------------------------------------------------

def test_gate_decisions():
    comparison = {"candidate": {"templates": {"accuracy": 0.70, "macro_f1": 0.5}},
                  "current": {"templates": {"accuracy": 0.72, "macro_f1": 0.4}}}
    assert not decide(comparison, Gate("accuracy", 0.0), "v2", "v1")["promoted"]
    assert decide(comparison, Gate("accuracy", 0.05), "v2", "v1")["promoted"]
    assert decide(comparison, Gate("macro_f1", 0.0), "v2", "v1")["promoted"]
    assert not decide(comparison, Gate("macro_f1", -0.2), "v2", "v1")["promoted"]
    assert not decide(comparison, Gate(), "v1", "v1")["promoted"]  # the same model again
    assert decide({}, Gate(), "v1", None)["promoted"]  # first model
    with pytest.raises(ValueError):
        Gate("recall")


def test_promotion_swaps_the_symlink_and_a_directory_is_refused(tmp_path):
    root = ModelRoot(tmp_path)
    for version in ("v1", "v2"):
        (root.versions / version).mkdir(parents=True)
    root.promote("v1")
    root.promote("v2")
    assert os.readlink(root.current) == "versions/v2" and root.current_version() == "v2"
    assert not (tmp_path / "current.next").exists()
    root.current.unlink()
    shutil.copytree(root.versions / "v1", root.current)
    with pytest.raises(RetrainError, match="symlink"):
        root.current_version()


def test_pruning_keeps_the_newest_the_served_and_the_previous_version(tmp_path):
    root = ModelRoot(tmp_path)
    root.versions.mkdir()
    for age, name in enumerate(["v6", "v5", "v4", "v3", "v2", "v1"]):  # v6 newest
        (root.versions / name).mkdir()
        (root.versions / name / "model.onnx").write_bytes(b"x")
        os.utime(root.versions / name, (1_000_000 - age * 60, 1_000_000 - age * 60))
    (root.versions / ".building-20261130T000000Z").mkdir()  # a build in progress is not a version
    root.promote("v1")  # e.g. the gate refused everything since v1
    # The two newest (v6, v5) and the protected ones (served v1, the one before it v4) stay.
    assert root.prune(2, protect={"v1", "v4"}) == ["v2", "v3"]
    assert sorted(p.name for p in root.versions.iterdir()) == [".building-20261130T000000Z", "v1", "v4", "v5", "v6"]
    assert (root.current / "model.onnx").is_file()
    with pytest.raises(ValueError, match="at least 1"):
        root.prune(0, protect=set())


def test_the_corpus_keeps_one_line_per_template_it_lacks(tmp_path):
    from training.corpus.readers import LogRecord

    root = ModelRoot(tmp_path)
    root.corpus.mkdir()
    bare = BuildConfig(loghub_dir=None, use_seed_corpus=False)
    records = [LogRecord(line, "test", key(line)) for line in (REFUSED, REFUSED.replace("7", "8"), OOM)]
    assert append_to_corpus(root, bare, records, "t1")["templates"] == 2
    again = append_to_corpus(root, bare, records + [LogRecord(PROBE, "test", key(PROBE))], "t2")
    assert again["templates"] == 1 and again["file"] == "t2.jsonl"
    assert append_to_corpus(root, bare, records, "t3") == {"records": 3, "templates": 0, "file": None}
    assert len(root.corpus_files()) == 2


def test_an_unreachable_kafka_is_an_error_before_any_build(tmp_path, capsys):
    from training.loop.retrain_cli import register

    parser = argparse.ArgumentParser(prog="logdistill")
    register(parser.add_subparsers())
    args = parser.parse_args(["retrain", "--root", str(tmp_path / "root"), "--kafka-topics", "logs.feedback",
                              "--bootstrap-servers", "127.0.0.1:9", "--quiet"])
    assert args.handler(args) == 1
    assert "logdistill retrain:" in capsys.readouterr().err
    assert list((tmp_path / "root" / "versions").iterdir()) == []
    assert not os.path.lexists(tmp_path / "root" / "current")


def test_the_stable_split_keeps_old_held_out_groups_and_places_new_ones_by_name():
    from service.taxonomy import load_taxonomy
    from training.corpus.readers import Template
    from training.pipeline import split_stable
    from training.teachers.recorded import RecordedTeacher

    def templates(groups):
        return [Template(key=f"{g} key", group=g, count=1, examples=[""], meta={"gold": "normal"}) for g in groups] + \
            [Template(key="no gold", group="G-unlabelled", count=1, examples=[""], meta={})]

    gold = RecordedTeacher(load_taxonomy(None), [])
    old = [f"G{i}" for i in range(40)]
    _, test = split_stable(templates(old), gold, [], 0.25, seed=0)
    held = {t.group for t in test}
    assert 0 < len(held) < 40 and "G-unlabelled" not in held  # a hash share of the gold groups, none without gold

    # More data later: the same groups keep their side; a group held out before stays held out even if the
    # rule changed (another fraction); new groups are placed by their name alone.
    grown = old + [f"N{i}" for i in range(40)]
    _, test_again = split_stable(templates(grown), gold, sorted(held), 0.05, seed=0)
    assert held <= {t.group for t in test_again}
    _, same_rule = split_stable(templates(grown), gold, sorted(held), 0.25, seed=0)
    assert {t.group for t in same_rule} & set(old) == held
    _, alone = split_stable(templates([f"N{i}" for i in range(40)]), gold, [], 0.25, seed=0)
    assert {t.group for t in same_rule} - set(old) == {t.group for t in alone}
