"""Export a trained student as a runtime artifact (see service/artifact.py for the layout).

torch → ONNX (dynamic batch and sequence axes) → dynamic int8 quantization of the weights
(onnxruntime.quantization) → tokenizer, labels, config, metrics, model card → SHA256SUMS.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer

from service.artifact import write_checksums, write_training_templates
from service.inference import NEAREST_OUTPUTS
from service.records import template_id
from service.taxonomy import Taxonomy
from training.distill.student import Student, WithNearest

ONNX_OPSET = 18


def fold_embedding_projection(model: Student) -> Student:
    """A copy whose token table already holds proj(embedding): same function, one lookup, 3x smaller."""
    if not model.cfg.embed_dim:
        return model
    folded = copy.deepcopy(model)
    with torch.no_grad():
        table = model.embed_proj(model.tokens.weight)
    folded.tokens = torch.nn.Embedding.from_pretrained(table, freeze=True)
    folded.embed_proj = torch.nn.Identity()
    return folded


def export_onnx(model: Student, path: Path, index: torch.Tensor | None = None) -> None:
    """fp32 ONNX graph: (input_ids, attention_mask) int64 [batch, seq] -> logits float [batch, labels];
    with an index (training templates' pooled vectors), also nearest_similarity float [batch] and
    nearest_row int64 [batch]: the evidence (service/confidence.py)."""
    student = fold_embedding_projection(model)
    model = student if index is None else WithNearest(student, index)
    outputs = ["logits"] if index is None else ["logits", *NEAREST_OUTPUTS]
    model.eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("seq", max=student.cfg.max_length)  # position table bounds the sequence
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision not installed" etc.: not ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # exporter chatter about axis renaming
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"], output_names=outputs,
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            opset_version=ONNX_OPSET, dynamo=True, external_data=False, verbose=False)


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic quantization: int8 weights for MatMul, activations quantized on the fly per batch."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quiet its generic "consider pre-processing" advice
    try:
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def write_artifact(out_dir: str | Path, model: Student, tokenizer: Tokenizer, taxonomy: Taxonomy, config: dict,
                   metrics: dict | None = None, extra_files: dict[str, Path] | None = None,
                   quantize: bool = True, train_templates: Iterable[str] | None = None,
                   evidence_index: torch.Tensor | None = None) -> Path:
    """Write a complete, checksummed artifact directory (replacing any previous one atomically).

    train_templates: the template keys the student was trained on; their ids go to templates.json,
    which `serve` uses to count lines of templates never seen in training (a drift signal).
    evidence_index: pooled vectors of the templates neighbours.json names, searched in the graph.
    """
    out_dir = Path(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent if out_dir.parent.exists()
                                    else None))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; a serving user other than the builder must read it
    try:
        fp32 = staging / "model.fp32.onnx"
        export_onnx(model, fp32, evidence_index)
        if quantize:
            quantize_int8(fp32, staging / "model.onnx")
            fp32.unlink()
        else:
            fp32.rename(staging / "model.onnx")
        tokenizer.save(str(staging / "tokenizer.json"))
        (staging / "labels.json").write_text(json.dumps(taxonomy.to_dict(), indent=2))
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        if metrics is not None:
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        if train_templates is not None:
            write_training_templates(staging, (template_id(key) for key in train_templates))
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / name)
        write_checksums(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir
