"""Batched student inference with ONNX Runtime and the `tokenizers` WordPiece tokenizer.

Texts are sorted by length before batching so each batch pads to a similar length: on short
log templates padding is most of the work otherwise. Probabilities are calibrated: the logits are
divided by the artifact's fitted temperature (service/confidence.py) before the softmax.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.artifact import ModelArtifact
from service.confidence import temperature_of

# With an evidence index (training/distill/export.py), the graph also gives each line's nearest training template.
NEAREST_OUTPUTS = ("nearest_similarity", "nearest_row")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


class OnnxStudent:
    def __init__(self, artifact: ModelArtifact, threads: int = 2, batch_size: int = 32):
        self.artifact = artifact
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(artifact.file("tokenizer.json")))
        self.tokenizer.enable_truncation(max_length=artifact.max_length)
        self.tokenizer.no_padding()  # we pad per batch ourselves, to the batch's longest
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(artifact.file("model.onnx")), options,
                                            providers=["CPUExecutionProvider"])
        # Graphs without an evidence index (older artifacts, test exports) give logits only.
        self.outputs = [o.name for o in self.session.get_outputs() if o.name in ("logits", *NEAREST_OUTPUTS)]
        self.temperature = temperature_of(artifact.config)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.artifact.taxonomy.labels

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        input_ids = np.full((len(texts), width), self.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            input_ids[row, : len(encoding.ids)] = encoding.ids
            attention_mask[row, : len(encoding.ids)] = 1
        return input_ids, attention_mask

    @property
    def has_nearest(self) -> bool:
        return NEAREST_OUTPUTS[0] in self.outputs

    def run(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Every output of the graph, in input order: "logits" (raw, (len(texts), n_labels)) and, with an
        evidence index, "nearest_similarity" and "nearest_row" (len(texts),)."""
        out = {"logits": np.zeros((len(texts), len(self.labels)), dtype=np.float32)}
        if self.has_nearest:
            out.update(nearest_similarity=np.zeros(len(texts), dtype=np.float32),
                       nearest_row=np.zeros(len(texts), dtype=np.int64))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start: start + self.batch_size]
            input_ids, attention_mask = self.encode([texts[i] for i in rows])
            values = self.session.run(self.outputs, {"input_ids": input_ids, "attention_mask": attention_mask})
            for name, value in zip(self.outputs, values):
                out[name][rows] = value
        return out

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw (uncalibrated) logits, (len(texts), n_labels), in input order."""
        return self.run(texts)["logits"]

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(logits) / self.temperature)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities."""
        return self.calibrated(self.logits(texts))
