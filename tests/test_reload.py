"""Hot reload (service/reload.py): a model published in the model directory is served without a
restart, only once its hashes verify; a bad one is rejected and the previous model keeps serving."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from service.artifact import CHECKSUM_FILE, write_checksums
from service.classifier import Classifier
from service.config import ServeConfig
from service.metrics import ServeMetrics
from service.reload import ModelReloader


def load(path: Path) -> Classifier:
    return Classifier.from_dir(path, cache_size=1000)


def build_version(source: Path, dest: Path, version: str, tamper: bool = False) -> Path:
    """A copy of a real artifact under another model_version, checksummed; tampered after, if asked."""
    shutil.copytree(source, dest)
    config = json.loads((dest / "config.json").read_text())
    config["model_version"] = version
    (dest / "config.json").write_text(json.dumps(config))
    write_checksums(dest)
    if tamper:  # one flipped byte in the weights, after the checksums were written
        data = bytearray((dest / "model.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01
        (dest / "model.onnx").write_bytes(bytes(data))
    return dest


def point(link: Path, target: Path) -> None:
    """Swap a symlink in one step (rename over it), as `ln -s v2 next && mv -T next current` does."""
    tmp = link.with_name(link.name + ".next")
    os.symlink(target, tmp)
    os.replace(tmp, link)


def reloads(metrics: ServeMetrics) -> dict:
    return {r: metrics.model_reloads.labels(r)._value.get() for r in ("ok", "rejected")}


@pytest.fixture
def versions(tiny_model, tmp_path):
    """models/current -> v1, a copy of the tiny model."""
    model_dir, _ = tiny_model
    v1 = build_version(model_dir, tmp_path / "v1", "v1")
    current = tmp_path / "current"
    os.symlink(v1, current)
    return tmp_path, current


def test_a_published_model_is_loaded_once_and_a_bad_one_is_rejected(versions):
    root, current = versions
    metrics = ServeMetrics()
    reloader = ModelReloader(current, load, interval_s=1, metrics=metrics)
    assert reloader.load(current).model_version == "v1"
    assert reloader.check_now() is None  # nothing new

    point(current, build_version(root / "v1", root / "v2", "v2"))
    new = reloader.check_now()
    assert new is not None and new.model_version == "v2"
    assert reloads(metrics) == {"ok": 1, "rejected": 0}
    assert reloader.check_now() is None  # loaded once, not on every check

    os.utime(root / "v2" / CHECKSUM_FILE)  # touched, same model: nothing to load
    assert reloader.check_now() is None and reloads(metrics) == {"ok": 1, "rejected": 0}

    point(current, build_version(root / "v1", root / "v3", "v3", tamper=True))
    assert reloader.check_now() is None
    assert reloads(metrics) == {"ok": 1, "rejected": 1}
    assert reloader.check_now() is None and reloads(metrics)["rejected"] == 1  # not retried until it changes

    current.unlink()  # between the two steps of a replace: no model there, which is not a bad model
    assert reloader.check_now() is None and reloads(metrics) == {"ok": 1, "rejected": 1}

    point(current, build_version(root / "v1", root / "v4", "v4"))
    assert reloader.check_now().model_version == "v4"
    assert reloads(metrics) == {"ok": 2, "rejected": 1}


def test_a_directory_renamed_over_the_old_one_is_picked_up(tiny_model, tmp_path):
    """training/distill/export.py's way of publishing: build beside, then rename over."""
    model_dir, _ = tiny_model
    live = build_version(model_dir, tmp_path / "model", "v1")
    reloader = ModelReloader(live, load, interval_s=1)
    staged = build_version(live, tmp_path / ".model-staging", "v2")
    shutil.rmtree(live)
    assert reloader.check_now() is None  # mid-replace: nothing there
    staged.rename(live)
    assert reloader.check_now().model_version == "v2"


def test_checks_at_most_once_per_interval_and_never_with_interval_0(versions):
    root, current = versions
    now = [0.0]
    reloader = ModelReloader(current, load, interval_s=10, clock=lambda: now[0])
    point(current, build_version(root / "v1", root / "v2", "v2"))
    now[0] = 9.9
    assert reloader.check() is None  # not yet time to look
    now[0] = 10.0
    assert reloader.check().model_version == "v2"

    off = ModelReloader(current, load, interval_s=0, clock=lambda: now[0])
    point(current, build_version(root / "v1", root / "v3", "v3"))
    now[0] = 1e9
    assert off.check() is None


def test_serve_switches_model_between_batches_without_a_restart(kafka, versions):
    """Real broker, one Server on a thread for the whole test: results carry v1, then v2 once it
    is published; a tampered v3 is rejected and v2 keeps answering."""
    from prometheus_client.parser import text_string_to_metric_families
    from service.kafka_io import make_consumer, make_producer
    from service.serve import Server
    from topics import SESSION_TIMEOUT_MS, ServerThread, create_topics, fresh, produce, read_topic, wait_until

    root, current = versions
    source, results, dlq, group = fresh("logs", "results", "dlq", "group")
    create_topics(kafka, source, results, dlq)
    config = ServeConfig(model=str(current), bootstrap_servers=kafka.bootstrap, input_topic=source,
                         output_topic=results, dlq_topic=dlq, group_id=group, escalation_topic="",
                         enable_idempotence=False, session_timeout_ms=SESSION_TIMEOUT_MS, poll_timeout_ms=100,
                         reload_interval_s=0.05)
    metrics = ServeMetrics()
    reloader = ModelReloader(current, load, config.reload_interval_s, metrics)
    classifier = reloader.load(current)
    metrics.set_model(classifier.model_version, classifier.labels, classifier.cache)
    server = Server(config, classifier, make_consumer(config), make_producer(config), metrics, reloader=reloader)
    lines = [f"GET /api/items/{i} returned 500 after {i} ms".encode() for i in range(10)]

    def versions_of_results(total: int) -> list[str]:
        return [json.loads(r.value)["model_version"] for r in read_topic(kafka, results, total)][total - 10:]

    def info_version() -> str:
        family = next(f for f in text_string_to_metric_families(metrics.exposition().decode())
                      if f.name == "logdistill_model_info")
        return family.samples[0].labels["version"]

    with ServerThread(server):
        produce(kafka, source, lines)
        assert set(versions_of_results(10)) == {"v1"}

        point(current, build_version(root / "v1", root / "v2", "v2"))
        wait_until(lambda: reloads(metrics)["ok"] == 1, 20, "v2 to be loaded")
        produce(kafka, source, lines)
        assert set(versions_of_results(20)) == {"v2"}
        assert info_version() == "v2"

        point(current, build_version(root / "v1", root / "v3", "v3", tamper=True))
        wait_until(lambda: reloads(metrics)["rejected"] == 1, 20, "v3 to be rejected")
        produce(kafka, source, lines)
        assert set(versions_of_results(30)) == {"v2"}
        assert info_version() == "v2" and reloads(metrics) == {"ok": 1, "rejected": 1}
