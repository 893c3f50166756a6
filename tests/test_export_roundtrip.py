"""torch student → ONNX artifact → torch-free runtime: same numbers; tampering refused; build outputs."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from service.artifact import CHECKSUM_FILE, ArtifactError, load_artifact, read_checksums, sha256_file
from service.classifier import Classifier
from service.inference import OnnxStudent, softmax
from service.masking import template_key
from service.parsing import parse_line
from service.taxonomy import load_taxonomy
from training.corpus import k8s_corpus
from training.distill.loop import TrainConfig, predict_logits, train_student
from training.distill.export import write_artifact
from training.distill.student import Student, StudentConfig
from training.distill.tokenizer import train_wordpiece

MAX_LENGTH = 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small student trained briefly on the seed templates, exported as fp32 and as int8."""
    taxonomy = load_taxonomy()
    templates, slots = k8s_corpus.load_seed_templates()
    keys, labels = [], []
    for raw, _template_id, label in k8s_corpus.generate_lines(templates, slots, 1, seed=0):
        keys.append(template_key(parse_line(raw)))
        labels.append(taxonomy.index(label))
    teacher = np.full((len(keys), len(taxonomy.labels)), 0.02)
    teacher[np.arange(len(keys)), labels] = 1.0
    teacher /= teacher.sum(axis=1, keepdims=True)
    torch.manual_seed(0)
    tokenizer = train_wordpiece(keys)
    model = Student(StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=len(taxonomy.labels),
                                  max_length=MAX_LENGTH, dim=32, layers=2, heads=2))
    train_student(model, tokenizer, keys, teacher, TrainConfig(epochs=6, batch_size=32, lr=3e-3), progress=False)
    root = tmp_path_factory.mktemp("export")
    config = {"model_version": "roundtrip-test", "max_length": MAX_LENGTH}
    fp32 = write_artifact(root / "fp32", model, tokenizer, taxonomy, config, quantize=False)
    int8 = write_artifact(root / "int8", model, tokenizer, taxonomy, config, quantize=True)
    return model, tokenizer, keys, fp32, int8


def probe_texts(keys: list[str]) -> list[str]:
    """Training keys plus unseen lines of very different lengths (one far past max_length)."""
    unseen = ["[error] dial tcp <IP>: connect: connection refused",
              "ok",
              "[warning] volume <PATH> is <NUM>% full, eviction threshold reached on node <HOST>",
              " ".join(["container", "restarted", "after", "probe", "failure"] * 30),
              "Ünïcödé smörgåsbord ✓ 日本語 ログ"]
    return keys[::3] + unseen


def test_fp32_runtime_matches_torch(exported):
    model, tokenizer, keys, fp32, _ = exported
    texts = probe_texts(keys)
    expected = predict_logits(model, tokenizer, texts)
    # A batch size unlike torch's, so rows are padded differently: padding must not change a row.
    runtime = OnnxStudent(load_artifact(fp32), threads=1, batch_size=7)
    got = runtime.logits(texts)
    assert got.shape == expected.shape == (len(texts), len(runtime.labels))
    assert np.abs(got - expected).max() < 1e-4
    # The model is not degenerate (logits of real scale, rows differ): the 1e-4 above means something.
    assert np.ptp(expected) > 1.0
    assert np.ptp(expected.argmax(axis=1)) > 0


def test_fp32_runtime_matches_torch_with_projected_embeddings(exported, tmp_path):
    """A student with narrow (pretrained-width) embeddings + projection exports with the projection folded in."""
    if "embed_dim" not in StudentConfig.__dataclass_fields__:
        pytest.skip("this Student has no embed_dim option")
    _, tokenizer, keys, _, _ = exported
    torch.manual_seed(1)
    model = Student(StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=13, max_length=MAX_LENGTH,
                                  dim=32, layers=1, heads=2, embed_dim=24))
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3)  # far from init, so every part of the graph shows in the logits
    model.eval()
    artifact = write_artifact(tmp_path / "projected", model, tokenizer, load_taxonomy(),
                              {"model_version": "projected-test", "max_length": MAX_LENGTH}, quantize=False)
    texts = probe_texts(keys)
    expected = predict_logits(model, tokenizer, texts)
    got = OnnxStudent(load_artifact(artifact), threads=1, batch_size=5).logits(texts)
    assert np.ptp(expected) > 1.0
    assert np.abs(got - expected).max() < 1e-4


def test_int8_runtime_close_to_torch(exported):
    model, tokenizer, keys, fp32, int8 = exported
    assert int8.joinpath("model.onnx").stat().st_size < 0.5 * fp32.joinpath("model.onnx").stat().st_size
    texts = probe_texts(keys)
    expected = softmax(predict_logits(model, tokenizer, texts))
    got = OnnxStudent(load_artifact(int8), threads=1, batch_size=16).predict_proba(texts)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.9
    assert np.abs(got - expected).max() < 0.1
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_runtime_keeps_input_order(exported):
    """Inference sorts by length internally; results must come back in the caller's order."""
    _, _, _, fp32, _ = exported  # fp32: int8 activations are quantized per batch, so rows shift slightly
    runtime = OnnxStudent(load_artifact(fp32), threads=1, batch_size=2)
    texts = ["a much longer line about a failed volume mount on node <HOST>", "short", "medium length line here"]
    together = runtime.logits(texts)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(together[row], runtime.logits([text])[0], atol=1e-4)
    assert np.abs(together[0] - together[1]).max() > 0.01  # distinct rows: a mix-up would show
    assert runtime.logits([]).shape == (0, len(runtime.labels))


# ---- a real artifact from the pipeline ------------------------------------------------------

def tamper_copy(model_dir, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(model_dir, copy)
    Classifier.from_dir(copy)  # the untouched copy is fine
    onnx = bytearray((copy / "model.onnx").read_bytes())
    onnx[len(onnx) // 2] ^= 0x01
    (copy / "model.onnx").write_bytes(bytes(onnx))
    return copy


def test_flipped_byte_in_real_model_is_refused(tiny_model, tmp_path):
    copy = tamper_copy(tiny_model[0], tmp_path)
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for model\.onnx"):
        Classifier.from_dir(copy)


def test_cli_refuses_tampered_model(tiny_model, tmp_path, logdistill_exe):
    copy = tamper_copy(tiny_model[0], tmp_path)
    result = subprocess.run([str(logdistill_exe), "classify", "--model", str(copy)], input=b"disk full\n",
                            capture_output=True, timeout=60)
    assert result.returncode != 0
    assert result.stdout == b""
    assert b"sha256 mismatch for model.onnx" in result.stderr
    assert b"Traceback" not in result.stderr


def test_build_writes_metrics_card_and_plot_under_checksums(tiny_model):
    model_dir, metrics = tiny_model
    written = json.loads((model_dir / "metrics.json").read_text())
    for key in ("student", "teacher", "keyword_baseline", "retention", "dedup"):
        assert key in written, key
    assert written == json.loads(json.dumps(metrics))  # what build_model returned is what it wrote
    for unit in ("templates", "lines"):
        for scores in (written["student"][unit], written["teacher"][unit], written["keyword_baseline"][unit]):
            assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["macro_f1"] <= 1.0
    dedup = written["dedup"]
    assert 0 < dedup["templates"] < dedup["lines"]
    assert dedup["teacher_call_saving"] == round(1 - dedup["templates"] / dedup["lines"], 4)
    assert written["held_out"]["templates"] == written["student"]["templates"]["n"] > 0

    card = (model_dir / "model_card.md").read_text()
    assert card.startswith("# logdistill student")
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_version"] in card
    groups = written["training_examples"]["source_groups"]  # what held-out accuracy grows with
    assert 0 < groups <= written["training_examples"]["templates"]
    assert f"from {groups} labelled source templates" in card
    assert (model_dir / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    sums = read_checksums(model_dir)
    on_disk = {p.name for p in model_dir.iterdir() if p.name != CHECKSUM_FILE}
    assert set(sums) == on_disk
    assert {"model.onnx", "tokenizer.json", "labels.json", "config.json", "metrics.json", "model_card.md",
            "confusion.png"} <= on_disk
    for name, digest in sums.items():
        assert sha256_file(model_dir / name) == digest, name
    assert Classifier.from_dir(model_dir).model_version == config["model_version"]
    assert model_dir.stat().st_mode & 0o055 == 0o055, "a serving user other than the builder must read it"
    ci = written["student_accuracy_ci"]["templates"]
    assert ci["ci_low"] <= written["student"]["templates"]["accuracy"] <= ci["ci_high"]
