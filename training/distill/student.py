"""The student: a small bidirectional transformer encoder over WordPiece tokens.

Pre-norm blocks (attention + MLP), learned positions, masked mean pooling, a linear head.
Attention is written out with plain matmuls so the graph exports to ONNX and quantizes
cleanly; `forward(..., return_hidden=True)` also gives every layer's output for
intermediate-layer distillation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class StudentConfig:
    vocab_size: int
    n_labels: int
    max_length: int = 64
    dim: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    embed_dim: int | None = None   # set: token embeddings of this width (frozen, pretrained) + a learned projection

    def to_dict(self) -> dict:
        return asdict(self)


class SelfAttention(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pad_bias: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        # (batch, heads, seq, head_dim)
        q, k, v = (t.reshape(batch, seq, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(dim // self.heads) + pad_bias
        weights = self.dropout(F.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(batch, seq, dim)
        return self.proj(out)


class Block(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim), nn.Dropout(cfg.dropout))

    def forward(self, x: torch.Tensor, pad_bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pad_bias)
        return x + self.mlp(self.norm2(x))


class Student(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.embed_dim or cfg.dim)
        self.embed_proj = nn.Linear(cfg.embed_dim, cfg.dim) if cfg.embed_dim else nn.Identity()
        self.positions = nn.Embedding(cfg.max_length, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.n_labels)
        self.apply(_init_weights)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_hidden: bool = False):
        pooled, hidden = self.pool(input_ids, attention_mask)
        logits = self.head(pooled)
        return (logits, hidden) if return_hidden else logits

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, list]:
        """(the pooled sentence vector the head reads, every block's output)."""
        seq = input_ids.shape[1]
        positions = torch.arange(seq, device=input_ids.device).unsqueeze(0)
        x = self.dropout(self.embed_proj(self.tokens(input_ids)) + self.positions(positions))
        mask = attention_mask.to(x.dtype)
        pad_bias = ((1.0 - mask) * -1e4)[:, None, None, :]  # padded keys get no attention
        hidden = []
        for block in self.blocks:
            x = block(x, pad_bias)
            hidden.append(x)
        x = self.norm(x)
        pooled = (x * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        return pooled, hidden

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class WithNearest(nn.Module):
    """What the runtime runs when the artifact has an evidence index: logits, and the training template
    nearest to each line by cosine similarity of the pooled vectors (its similarity and row). Searched
    inside the graph: onnxruntime's own threads do it in int8, where a numpy search after each batch
    fought them for the 2 cores (service/confidence.py)."""

    def __init__(self, student: Student, index: torch.Tensor):
        super().__init__()
        self.student = student
        self.register_buffer("index_t", F.normalize(index, dim=-1).T.contiguous())  # (dim, templates)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        pooled, _ = self.student.pool(input_ids, attention_mask)
        similarity = F.normalize(pooled, dim=-1) @ self.index_t
        nearest = similarity.max(dim=-1)
        return self.student.head(pooled), nearest.values, nearest.indices



def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
