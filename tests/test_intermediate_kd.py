"""Intermediate-layer KD: the hidden loss against hand-computed values, gradients, the β=0 path
unchanged, export stays logits-only, and a tiny teacher-assistant fine-tune with its cache."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from service.artifact import load_artifact
from service.inference import OnnxStudent
from service.taxonomy import load_taxonomy
from tests.test_distill import toy_task
from training.distill import assistant, pretrained
from training.distill.loop import HiddenProjection, TrainConfig, layer_map, pad_batch, predict_logits, train_student
from training.distill.export import write_artifact
from training.distill.student import Student, StudentConfig
from training.distill.tokenizer import train_wordpiece, with_cls_sep

# One student block's output for two rows of three tokens, width 2; row 1 has one real token.
HIDDEN = [[[1.0, 2.0], [3.0, 0.0], [9.0, 9.0]],
          [[0.0, 4.0], [7.0, 7.0], [7.0, 7.0]]]
MASK = [[1, 1, 0], [1, 0, 0]]
PROJECTION = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]  # width 2 → 3, no bias
TARGET = [[2.0, 2.0, 1.0], [1.0, 0.0, 0.0]]
# pooled rows: mean of real tokens = [2, 1] and [0, 4]; projected = [2, 2, 3] and [0, 8, 4]


def projected() -> list[list[float]]:
    pooled = [[2.0, 1.0], [0.0, 4.0]]
    return [[sum(w * x for w, x in zip(row, p)) for row in PROJECTION] for p in pooled]


def hand_cosine() -> float:
    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    return sum(1 - cos(s, t) for s, t in zip(projected(), TARGET)) / 2


def hand_mse() -> float:
    return sum(sum((s - t) ** 2 for s, t in zip(a, b)) / 3 for a, b in zip(projected(), TARGET)) / 2


def projection_with_known_weights() -> HiddenProjection:
    projection = HiddenProjection(2, {1: 3})
    with torch.no_grad():
        projection.maps["1"].weight.copy_(torch.tensor(PROJECTION))
        projection.maps["1"].bias.zero_()
    return projection


def test_hand_values():
    assert projected() == [[2.0, 2.0, 3.0], [0.0, 8.0, 4.0]]
    # row 0: cos([2,2,3],[2,2,1]) = 11 / (√17·3) = 0.88929; row 1: cos([0,8,4],[1,0,0]) = 0
    assert hand_cosine() == pytest.approx((1 - 11 / (3 * math.sqrt(17)) + 1) / 2, abs=1e-12)
    # row 0: (0 + 0 + 4) / 3; row 1: (1 + 64 + 16) / 3
    assert hand_mse() == pytest.approx((4 / 3 + 81 / 3) / 2, abs=1e-12)


@pytest.mark.parametrize("kind, expected", [("cosine", hand_cosine), ("mse", hand_mse)])
def test_hidden_loss_matches_hand_computation(kind, expected):
    value = projection_with_known_weights().loss([torch.tensor(HIDDEN)], torch.tensor(MASK),
                                                 {1: torch.tensor(TARGET)}, kind)
    assert value.item() == pytest.approx(expected(), abs=1e-5)


def test_row_without_target_adds_nothing():
    target = torch.tensor(TARGET)
    target[1] = float("nan")
    value = projection_with_known_weights().loss([torch.tensor(HIDDEN)], torch.tensor(MASK), {1: target}, "mse")
    assert value.item() == pytest.approx((4 / 3) / 2, abs=1e-5)  # row 0's distance over the batch of 2


def test_unknown_hidden_loss_is_an_error():
    with pytest.raises(ValueError, match="hidden_loss"):
        projection_with_known_weights().loss([torch.tensor(HIDDEN)], torch.tensor(MASK), {1: torch.tensor(TARGET)},
                                             "l1")


def test_layer_map_defaults_and_bounds():
    assert layer_map(2, 6, None) == [(1, 3), (2, 6)]
    assert layer_map(1, 6, None) == [(1, 6)]
    assert layer_map(2, 6, [[2, 4]]) == [(2, 4)]
    with pytest.raises(ValueError, match="out of range"):
        layer_map(2, 6, [[3, 6]])
    with pytest.raises(ValueError, match="out of range"):
        layer_map(2, 6, [[1, 7]])


def tiny_student(tokenizer, layers: int = 2) -> Student:
    torch.manual_seed(0)
    return Student(StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=3, max_length=16, dim=16,
                                 layers=layers, heads=2))


def test_gradients_reach_projection_and_every_student_block():
    texts, _ = toy_task(4)
    tokenizer = train_wordpiece(texts)
    model = tiny_student(tokenizer)
    projection = HiddenProjection(16, {1: 5, 2: 5})
    ids, mask = pad_batch([e.ids for e in tokenizer.encode_batch(texts[:3])])
    _, hidden = model(ids, mask, return_hidden=True)
    targets = {1: torch.randn(3, 5), 2: torch.randn(3, 5)}
    projection.loss(hidden, mask, targets, "cosine").backward()
    for name, param in [*projection.named_parameters(), *model.blocks.named_parameters()]:
        assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient for {name}"
    assert model.head.weight.grad is None  # the hidden term does not reach past the last block


def train(texts, teacher, tokenizer, beta: float, targets=None, layers: int = 2):
    model = tiny_student(tokenizer, layers)
    cfg = TrainConfig(epochs=3, batch_size=8, hidden_beta=beta)
    return model, train_student(model, tokenizer, texts, teacher, cfg, progress=False, hidden_targets=targets)


def test_beta_zero_is_the_plain_path_bit_for_bit():
    texts, teacher = toy_task(8)
    tokenizer = train_wordpiece(texts)
    targets = {1: np.random.default_rng(0).normal(size=(len(texts), 6))}
    plain_model, plain = train(texts, teacher, tokenizer, 0.0)
    ignored_model, ignored = train(texts, teacher, tokenizer, 0.0, targets)
    assert plain == ignored  # exact: targets are not even looked at when β = 0
    for a, b in zip(plain_model.state_dict().values(), ignored_model.state_dict().values()):
        assert torch.equal(a, b)
    _, with_hidden = train(texts, teacher, tokenizer, 1.0, targets)
    assert with_hidden != plain
    assert "hidden_beta" not in TrainConfig().to_dict()  # config.json of a β=0 build reads as before
    assert TrainConfig(hidden_beta=0.5).to_dict()["hidden_beta"] == 0.5


def test_beta_without_targets_or_with_wrong_rows_is_an_error():
    texts, teacher = toy_task(4)
    tokenizer = train_wordpiece(texts)
    with pytest.raises(ValueError, match="needs hidden_targets"):
        train(texts, teacher, tokenizer, 1.0)
    with pytest.raises(ValueError, match="rows for"):
        train(texts, teacher, tokenizer, 1.0, {1: np.zeros((3, 4))})
    with pytest.raises(ValueError, match="the student has 2 blocks"):
        train(texts, teacher, tokenizer, 1.0, {3: np.zeros((len(texts), 4))})


def test_export_of_a_hidden_kd_student_is_logits_only_and_matches_torch(tmp_path):
    taxonomy = load_taxonomy()
    texts, teacher3 = toy_task(8)
    teacher = np.full((len(texts), len(taxonomy.labels)), 0.01)
    teacher[:, :3] = teacher3
    teacher /= teacher.sum(axis=1, keepdims=True)
    tokenizer = train_wordpiece(texts)
    torch.manual_seed(0)
    model = Student(StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=len(taxonomy.labels),
                                  max_length=16, dim=16, layers=2, heads=2))
    targets = {1: np.random.default_rng(1).normal(size=(len(texts), 7)),
               2: np.random.default_rng(2).normal(size=(len(texts), 7))}
    train_student(model, tokenizer, texts, teacher, TrainConfig(epochs=2, batch_size=8, hidden_beta=1.0),
                  progress=False, hidden_targets=targets)
    artifact = write_artifact(tmp_path / "hidden", model, tokenizer, taxonomy, {"model_version": "hidden-kd",
                                                                                 "max_length": 16}, quantize=False)
    session = ort.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    import onnx

    shapes = [tuple(init.dims) for init in onnx.load(str(artifact / "model.onnx")).graph.initializer]
    assert not any(7 in shape for shape in shapes), "a training-only projection (width 7) entered the graph"
    probe = texts[::3] + ["connection refused again", "disk full on <PATH>"]
    expected = predict_logits(model, tokenizer, probe)
    got = OnnxStudent(load_artifact(artifact), threads=1, batch_size=5).logits(probe)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).all()


# ---- the teacher-assistant -----------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_tokenizer():
    return with_cls_sep(pretrained.minilm_tokenizer())


def test_tiny_assistant_fine_tune_is_cached_and_gives_targets(tmp_path, minilm_tokenizer):
    texts, teacher = toy_task(8)                      # 24 texts, with <NUM>/<IP> placeholders
    cfg = assistant.AssistantConfig(epochs=1, batch_size=8, frozen_layers=5, max_length=16, train_on="all")
    first, info = assistant.load_or_fine_tune(tmp_path, minilm_tokenizer, texts, teacher, 3, cfg)
    assert not info["from_cache"] and len(info["loss_history"]) == 1
    trainable = {n for n, p in first.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("head", "encoder.encoder.layer.5")) for n in trainable)
    again, info_again = assistant.load_or_fine_tune(tmp_path, minilm_tokenizer, texts, teacher, 3, cfg)
    assert info_again["from_cache"] and info_again["path"] == info["path"]
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    other_key = assistant.cache_key(minilm_tokenizer, texts, teacher[::-1], 3, cfg)
    assert other_key != assistant.cache_key(minilm_tokenizer, texts, teacher, 3, cfg)  # other labels: retrain

    # Targets: the first 20 texts are "templates", the last 4 stand in for augmented lines (no target).
    targets, report = assistant.hidden_targets(tmp_path, minilm_tokenizer, texts, teacher, 20, 2, None, cfg)
    assert report["from_cache"]  # train_on="all": the same 24 texts, the same cached weights
    assert sorted(targets) == [1, 2] and report["layer_map"] == [[1, 3], [2, 6]]
    for rows in targets.values():
        assert rows.shape == (len(texts), 384) and rows.dtype == np.float32
        assert np.isfinite(rows[:20]).all() and np.isnan(rows[20:]).all()
    assert not np.allclose(targets[1][:20], targets[2][:20])  # different layers, different states


def test_assistant_placeholder_rows_come_from_their_pieces(minilm_tokenizer):
    model = assistant.Assistant(minilm_tokenizer, 3)
    table = model.encoder.get_input_embeddings().weight.detach().numpy()
    assert table.shape[0] == minilm_tokenizer.get_vocab_size()
    np.testing.assert_allclose(table, pretrained.token_vectors(minilm_tokenizer), atol=1e-6)


def test_assistant_refuses_a_vocabulary_that_does_not_align():
    texts, _ = toy_task(4)
    with pytest.raises(ValueError, match="MiniLM's vocabulary"):
        assistant.Assistant(train_wordpiece(texts), 3)
