"""Knowledge distillation: the loss, and a training loop you can read top to bottom.

    loss = λ · T² · KL(teacher_T ‖ student_T) + (1 − λ) · CE(student, hard label)

teacher_T is the teacher's distribution softened at temperature T, student_T = softmax(z / T).
T² keeps the soft term's gradient scale independent of T (Hinton et al., 2015). The hard
label is the teacher's top class (we have no other truth at training time).

Optionally (hidden_beta > 0) an intermediate-layer term pulls the student's block outputs towards
a teacher-assistant's layers (training/distill/assistant.py):

    loss += β · mean over mapped layers of d(proj_i(pool(student block i)), TA layer j)

d is 1 − cosine (default) or MSE; pool is the masked mean over tokens; proj_i is a linear map
from the student's width to the assistant's. The projections live in `HiddenProjection`, outside
the Student, so they are trained here and never exported (the ONNX graph stays logits-only).
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

from training.distill.student import Student
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
    hidden_beta: float = 0.0       # weight of the intermediate-layer term; 0 = off (the default path)
    hidden_loss: str = "cosine"    # cosine | mse, between projected student and assistant layers
    hidden_layers: list | None = None  # [[student block, assistant layer], ...] (1-based); None: evenly spaced

    def to_dict(self) -> dict:
        settings = asdict(self)
        if not self.hidden_beta:  # off: config.json reads as before the option existed
            for key in ("hidden_beta", "hidden_loss", "hidden_layers"):
                settings.pop(key)
        return settings


def distillation_loss(student_logits: torch.Tensor, teacher_probs_t: torch.Tensor, hard_labels: torch.Tensor,
                      temperature: float, lam: float) -> torch.Tensor:
    """λ·T²·KL(teacher_T ‖ student_T) + (1−λ)·CE(hard). teacher_probs_t is already at temperature T."""
    log_student_t = F.log_softmax(student_logits / temperature, dim=-1)
    kl = F.kl_div(log_student_t, teacher_probs_t, reduction="batchmean")  # Σ p_t (log p_t − log p_s)
    ce = F.cross_entropy(student_logits, hard_labels)
    return lam * temperature ** 2 * kl + (1.0 - lam) * ce


def hidden_distance(student_pooled: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-row distance between projected student states and assistant states, both (batch, width)."""
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(student_pooled, target, dim=-1)
    if kind == "mse":
        return ((student_pooled - target) ** 2).mean(dim=-1)
    raise ValueError(f"unknown hidden_loss {kind!r} (cosine | mse)")


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq, width) → (batch, width): mean over real tokens (the student's own pooling)."""
    mask = mask.to(states.dtype).unsqueeze(-1)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def layer_map(student_layers: int, assistant_layers: int, pairs: list | None) -> list[tuple[int, int]]:
    """Which assistant layer each student block learns from; default evenly spaced (2 of 6: 1↔3, 2↔6)."""
    if pairs is None:
        pairs = [(i, round(i * assistant_layers / student_layers)) for i in range(1, student_layers + 1)]
    pairs = [(int(s), int(a)) for s, a in pairs]
    for s, a in pairs:
        if not (1 <= s <= student_layers and 1 <= a <= assistant_layers):
            raise ValueError(f"hidden layer pair ({s}, {a}) out of range: student blocks 1..{student_layers}, "
                             f"assistant layers 1..{assistant_layers}")
    return pairs


class HiddenProjection(torch.nn.Module):
    """Training-only linear maps from student blocks to assistant layers (never exported)."""

    def __init__(self, student_dim: int, target_dims: dict[int, int], seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)  # its own RNG: the student's stream is untouched
        self.maps = torch.nn.ModuleDict()
        for layer, width in target_dims.items():
            linear = torch.nn.Linear(student_dim, width)
            with torch.no_grad():
                linear.weight.normal_(0.0, student_dim ** -0.5, generator=generator)
                linear.bias.zero_()
            self.maps[str(layer)] = linear

    def loss(self, hidden: list[torch.Tensor], mask: torch.Tensor, targets: dict[int, torch.Tensor],
             kind: str) -> torch.Tensor:
        """Mean over mapped blocks of the batch-mean distance; hidden[i - 1] is block i's output,
        targets[i] its rows. A NaN target row (a text without a target) adds 0 to its batch's mean."""
        terms = []
        for layer, target in targets.items():
            has_target = ~torch.isnan(target).any(dim=-1)
            pooled = self.maps[str(layer)](masked_mean(hidden[layer - 1], mask))
            distance = hidden_distance(pooled, torch.nan_to_num(target), kind)
            terms.append(torch.where(has_target, distance, torch.zeros_like(distance)).mean())
        return torch.stack(terms).mean()


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
                  cfg: TrainConfig, progress: bool = True,
                  hidden_targets: dict[int, np.ndarray] | None = None) -> list[float]:
    """Train in place on (text, teacher distribution at T=1) pairs; returns mean loss per epoch.

    hidden_targets (needed when cfg.hidden_beta > 0): student block (1-based) → one assistant state
    per text, (len(texts), width), for the clean text (token dropout only changes the student's side).
    """
    projection, targets_t = _hidden_setup(model, texts, cfg, hidden_targets)
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
    trained = [p for p in model.parameters() if p.requires_grad]
    if projection is not None:
        trained += list(projection.parameters())
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
            if projection is None:
                loss = distillation_loss(model(ids, mask), soft_t[rows], hard_t[rows], cfg.temperature, cfg.lam)
            else:
                logits, hidden = model(ids, mask, return_hidden=True)
                loss = (distillation_loss(logits, soft_t[rows], hard_t[rows], cfg.temperature, cfg.lam)
                        + cfg.hidden_beta * projection.loss(hidden, mask, {layer: t[rows] for layer, t in
                                                                           targets_t.items()}, cfg.hidden_loss))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters() if projection is None else trained, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history


def _hidden_setup(model: Student, texts: list[str], cfg: TrainConfig,
                  hidden_targets: dict[int, np.ndarray] | None):
    """(projection, targets as tensors) for the intermediate-layer term, or (None, None) when it is off."""
    if cfg.hidden_beta <= 0:
        return None, None
    if not hidden_targets:
        raise ValueError("hidden_beta > 0 needs hidden_targets (assistant states per text)")
    targets = {int(layer): torch.as_tensor(np.asarray(rows), dtype=torch.float32)
               for layer, rows in hidden_targets.items()}
    for layer, rows in targets.items():
        if not 1 <= layer <= len(model.blocks):
            raise ValueError(f"hidden target for block {layer}, but the student has {len(model.blocks)} blocks")
        if rows.shape[0] != len(texts):
            raise ValueError(f"hidden targets for block {layer} have {rows.shape[0]} rows for {len(texts)} texts")
    projection = HiddenProjection(model.cfg.dim, {layer: rows.shape[1] for layer, rows in targets.items()},
                                  seed=cfg.seed)
    projection.train()
    return projection, targets


@torch.no_grad()
def predict_logits(model: Student, tokenizer: Tokenizer, texts: list[str], batch_size: int = 256) -> np.ndarray:
    model.eval()
    sequences = encode(tokenizer, texts, model.cfg.max_length)
    out = []
    for start in range(0, len(sequences), batch_size):
        ids, mask = pad_batch(sequences[start: start + batch_size])
        out.append(model(ids, mask).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.n_labels), dtype=np.float32)


@torch.no_grad()
def predict_pooled(model: Student, tokenizer: Tokenizer, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """The pooled vectors the head reads, (len(texts), dim): the evidence index's rows (export.py)."""
    model.eval()
    sequences = encode(tokenizer, texts, model.cfg.max_length)
    out = [model.pool(*pad_batch(sequences[start: start + batch_size]))[0]
           for start in range(0, len(sequences), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, model.cfg.dim))


def _warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
