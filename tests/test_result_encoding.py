"""service/records.py ResultEncoder: the serve result JSON, its template part encoded once per batch,
byte for byte what encoding each line's whole record gives."""

from __future__ import annotations

import json
from types import SimpleNamespace

from service.classifier import Classifier
from service.records import ResultEncoder, result_value, source, template_id

LINES = [
    b"2024-05-01T10:00:00Z ERROR connection to 10.0.0.7:5432 refused",
    b"2024-05-01T10:00:01Z ERROR connection to 10.0.0.9:5432 refused",
    b"E0501 10:00:02.000000       1 reflector.go:138] failed to list *v1.Pod: Unauthorized",
    b'{"level":"warn","msg":"disk \\"data\\" is 91% full","ts":1714557603}',
    b"connection to 10.0.0.7:5432 refused",  # one template, no level: a second part for the same key text
    "état du pod « web-0 » : prêt".encode(),
]


def whole_record(message, result, kubernetes, model_version) -> bytes:
    """The result as one dict, encoded at once: the format ResultEncoder must reproduce."""
    top = sorted(result.probs.items(), key=lambda item: item[1], reverse=True)[:3]
    record = {"line": result.line, "label": result.label, "confidence": round(result.confidence, 4),
              "probs": dict(top), "level": result.parsed.level,
              "template": {"id": template_id(result.template), "key": result.template},
              **result.verdict_fields(), "model_version": model_version, "source": source(message)}
    if kubernetes:
        record["kubernetes"] = kubernetes
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def test_results_are_the_whole_record_byte_for_byte(tiny_model):
    model_dir, _ = tiny_model
    results = Classifier.from_dir(model_dir).classify_raw(LINES * 2)
    encoder = ResultEncoder("v-test")
    kubernetes = [None, {"pod": "web-0", "namespace": "shop"}]
    timestamps = [1714557600000, None, -1]  # None: a record without one must still encode
    for i, result in enumerate(results):
        message = SimpleNamespace(topic="logs-ü", partition=i % 2, offset=100 + i, timestamp=timestamps[i % 3])
        kube = kubernetes[i % 2]
        value = encoder.encode(message, result, kube)
        assert value == whole_record(message, result, kube, "v-test")
        assert value == result_value(message, result, kube, "v-test")
        decoded = json.loads(value)
        assert decoded["line"] == result.line and decoded["source"]["offset"] == 100 + i
