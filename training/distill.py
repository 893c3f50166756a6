"""Knowledge distillation: the loss, and a training loop you can read top to bottom.

    loss = λ · T² · KL(teacher_T ‖ student_T) + (1 − λ) · CE(student, hard label)

teacher_T is the teacher's distribution softened at temperature T, student_T = softmax(z / T).
T² keeps the soft term's gradient scale independent of T (Hinton et al., 2015). The hard
label is the teacher's top class (we have no other truth at training time).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from training.student import Student
from training.teachers.base import apply_temperature


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    temperature: float = 2.0
    lam: float = 0.7               # weight of the soft (KL) term; 0 = hard labels only
    class_balance: float = 0.5     # sample weight ∝ (1 / class frequency) ** class_balance
    token_dropout: float = 0.1     # share of tokens replaced by [UNK] while training
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def distillation_loss(student_logits: torch.Tensor, teacher_probs_t: torch.Tensor, hard_labels: torch.Tensor,
                      temperature: float, lam: float) -> torch.Tensor:
    """λ·T²·KL(teacher_T ‖ student_T) + (1−λ)·CE(hard). teacher_probs_t is already at temperature T."""
    log_student_t = F.log_softmax(student_logits / temperature, dim=-1)
    kl = F.kl_div(log_student_t, teacher_probs_t, reduction="batchmean")  # Σ p_t (log p_t − log p_s)
    ce = F.cross_entropy(student_logits, hard_labels)
    return lam * temperature ** 2 * kl + (1.0 - lam) * ce


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    tokenizer.enable_truncation(max_length=max_length)
    return [e.ids for e in tokenizer.encode_batch(texts)]


def pad_batch(sequences: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def sample_weights(hard_labels: np.ndarray, exponent: float) -> np.ndarray:
    counts = np.bincount(hard_labels, minlength=hard_labels.max() + 1).astype(np.float64)
    weights = (1.0 / counts[hard_labels]) ** exponent
    return weights / weights.sum()


def train_student(model: Student, tokenizer: Tokenizer, texts: list[str], teacher_probs: np.ndarray,
                  cfg: TrainConfig, progress: bool = True) -> list[float]:
    """Train in place on (text, teacher distribution at T=1) pairs; returns mean loss per epoch."""
    seed_everything(cfg.seed)
    sequences = encode(tokenizer, texts, model.cfg.max_length)
    soft_t = torch.tensor(apply_temperature(teacher_probs, cfg.temperature), dtype=torch.float32)
    hard = teacher_probs.argmax(axis=1)
    hard_t = torch.tensor(hard, dtype=torch.long)
    weights = sample_weights(hard, cfg.class_balance)
    unk_id = tokenizer.token_to_id("[UNK]")
    special_ids = torch.tensor([tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")])

    steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(total_steps, cfg.warmup_fraction))
    rng = np.random.default_rng(cfg.seed)

    history = []
    model.train()
    bar = tqdm(range(cfg.epochs), desc="distil", unit="epoch", disable=not progress)
    for _epoch in bar:
        order = rng.choice(len(texts), size=len(texts), replace=True, p=weights)
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start: start + cfg.batch_size]
            ids, mask = pad_batch([sequences[i] for i in rows])
            if cfg.token_dropout > 0:
                drop = (torch.rand(ids.shape) < cfg.token_dropout) & (mask == 1) & ~torch.isin(ids, special_ids)
                ids = ids.masked_fill(drop, unk_id)
            loss = distillation_loss(model(ids, mask), soft_t[rows], hard_t[rows], cfg.temperature, cfg.lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: Student, tokenizer: Tokenizer, texts: list[str], batch_size: int = 256) -> np.ndarray:
    model.eval()
    sequences = encode(tokenizer, texts, model.cfg.max_length)
    out = []
    for start in range(0, len(sequences), batch_size):
        ids, mask = pad_batch(sequences[start: start + batch_size])
        out.append(model(ids, mask).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_labels), dtype=np.float32)


def _warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
