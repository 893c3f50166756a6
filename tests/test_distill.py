"""Distillation: the loss against hand-computed numbers, temperature, and the training loop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from training.distill.loop import TrainConfig, distillation_loss, predict_logits, train_student
from training.distill.student import Student, StudentConfig
from training.teachers.base import PROB_FLOOR, apply_temperature
from training.distill.tokenizer import train_wordpiece

# Two rows, three classes.
LOGITS = [[1.0, 2.0, 0.5],
          [0.2, -1.0, 3.0]]
TEACHER_T = [[0.2, 0.7, 0.1],   # the teacher's distribution, already softened at T
             [0.1, 0.1, 0.8]]
HARD = [1, 2]
T = 2.0
LAM = 0.7


def log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_sum = math.log(sum(math.exp(x - top) for x in row))
    return [x - top - log_sum for x in row]


def hand_kl() -> float:
    """KL(p_t ‖ p_s) with p_s = softmax(z / T), averaged over rows ("batchmean")."""
    total = 0.0
    for z, p in zip(LOGITS, TEACHER_T):
        log_ps = log_softmax([x / T for x in z])
        total += sum(pi * (math.log(pi) - lsi) for pi, lsi in zip(p, log_ps))
    return total / len(LOGITS)


def hand_ce() -> float:
    """Cross-entropy of softmax(z) (no temperature) against the hard label, averaged over rows."""
    return -sum(log_softmax(z)[y] for z, y in zip(LOGITS, HARD)) / len(LOGITS)


def loss(lam: float, logits=LOGITS, teacher=TEACHER_T) -> torch.Tensor:
    return distillation_loss(torch.tensor(logits), torch.tensor(teacher), torch.tensor(HARD), T, lam)


def test_hand_computed_pieces():
    # Row 0: softmax([0.5, 1.0, 0.25]) = [0.3006, 0.4956, 0.2038]; row 1: softmax([0.1, -0.5, 1.5]) =
    # [0.1800, 0.0988, 0.7212]. KL = mean(0.0720, 0.0575) = 0.06473; CE = mean(0.4644, 0.0761) = 0.27026.
    assert hand_kl() == pytest.approx(0.0647349, abs=1e-6)
    assert hand_ce() == pytest.approx(0.2702600, abs=1e-6)


def test_loss_matches_hand_computation():
    expected = LAM * T ** 2 * hand_kl() + (1 - LAM) * hand_ce()
    assert expected == pytest.approx(0.2623358, abs=1e-6)
    assert loss(LAM).item() == pytest.approx(expected, abs=1e-5)


def test_lambda_zero_is_pure_cross_entropy():
    assert loss(0.0).item() == pytest.approx(hand_ce(), abs=1e-5)


def test_lambda_one_is_t_squared_kl():
    assert loss(1.0).item() == pytest.approx(T ** 2 * hand_kl(), abs=1e-5)


def test_student_matching_teacher_has_zero_soft_loss_and_gradient():
    # softmax(z / T) == p exactly when z = T · log p.
    logits = torch.tensor([[T * math.log(p) for p in row] for row in TEACHER_T], requires_grad=True)
    value = distillation_loss(logits, torch.tensor(TEACHER_T), torch.tensor(HARD), T, 1.0)
    value.backward()
    assert abs(value.item()) < 1e-6
    assert logits.grad.abs().max().item() < 1e-6
    # ... while a student that disagrees has a clearly positive soft loss.
    assert loss(1.0).item() > 0.1


def test_apply_temperature_one_is_identity_up_to_floor():
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.1, 0.0]])
    out = apply_temperature(probs, 1.0)
    np.testing.assert_allclose(out[0], probs[0], atol=1e-7)
    assert out[1, 2] == pytest.approx(PROB_FLOOR / (1 + PROB_FLOOR), rel=1e-6)  # floored, then renormalised
    np.testing.assert_allclose(out[1, :2], probs[1, :2] / (1 + PROB_FLOOR), atol=1e-7)


def test_apply_temperature_two_is_normalised_square_root():
    probs = np.array([[0.64, 0.32, 0.04]])
    roots = np.sqrt(probs[0])
    np.testing.assert_allclose(apply_temperature(probs, 2.0)[0], roots / roots.sum(), atol=1e-7)


def test_apply_temperature_flattens_and_sharpens():
    probs = np.array([[0.7, 0.2, 0.1]])
    flat = apply_temperature(probs, 1000.0)[0]
    assert flat.max() - flat.min() < 0.01
    soft, sharp = apply_temperature(probs, 3.0)[0], apply_temperature(probs, 0.5)[0]
    assert soft.max() < 0.7 < sharp.max()
    assert soft.argmax() == sharp.argmax() == 0  # temperature never reorders the labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 7.5])
def test_apply_temperature_rows_sum_to_one(temperature):
    probs = np.random.default_rng(0).dirichlet(np.ones(13), size=20)
    out = apply_temperature(probs, temperature)
    assert out.shape == probs.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    assert (out > 0).all()


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_apply_temperature_rejects_non_positive(temperature):
    with pytest.raises(ValueError):
        apply_temperature(np.array([[0.5, 0.5]]), temperature)


def toy_task(n_per_class: int = 16) -> tuple[list[str], np.ndarray]:
    """Three classes with disjoint vocabularies, varied word order and fillers."""
    rng = random.Random(0)
    vocab = [["connection", "refused", "timeout", "socket", "peer", "unreachable"],
             ["disk", "volume", "mount", "filesystem", "inode", "partition"],
             ["login", "password", "token", "credential", "denied", "forbidden"]]
    fillers = ["the", "on", "for", "<NUM>", "<IP>", "again"]
    texts, labels = [], []
    for label, words in enumerate(vocab):
        for _ in range(n_per_class):
            tokens = rng.sample(words, 3) + rng.sample(fillers, 2)
            rng.shuffle(tokens)
            texts.append(" ".join(tokens))
            labels.append(label)
    probs = np.full((len(texts), 3), 0.05)
    probs[np.arange(len(texts)), labels] = 0.9
    return texts, probs


def test_train_student_learns_a_separable_task():
    torch.manual_seed(0)
    texts, teacher = toy_task()
    tokenizer = train_wordpiece(texts)
    model = Student(StudentConfig(vocab_size=tokenizer.get_vocab_size(), n_labels=3, max_length=16, dim=32,
                                  layers=1, heads=2))
    untrained_accuracy = (predict_logits(model, tokenizer, texts).argmax(1) == teacher.argmax(1)).mean()
    cfg = TrainConfig(epochs=12, batch_size=8, lr=3e-3, token_dropout=0.0)
    history = train_student(model, tokenizer, texts, teacher, cfg, progress=False)
    assert len(history) == cfg.epochs
    assert all(np.isfinite(history))
    assert history[-1] < 0.5 * history[0]
    assert not model.training  # left in eval mode for export
    accuracy = (predict_logits(model, tokenizer, texts).argmax(1) == teacher.argmax(1)).mean()
    assert accuracy >= 0.95 > untrained_accuracy
