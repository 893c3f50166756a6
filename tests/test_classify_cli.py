"""`logdistill classify` end to end (the installed console script) and the Classifier's template cache."""

from __future__ import annotations

import functools

import json
import subprocess

import numpy as np
import pytest

from service.classifier import Classification, Classifier, LineError

VALID = {
    "cri": "2024-06-12T10:01:02.123456789Z stderr F dial tcp 10.0.0.7:5432: connect: connection refused",
    "docker": json.dumps({"log": "OOMKilled: container web exceeded its memory limit\n", "stream": "stderr",
                          "time": "2024-06-12T10:01:02.5Z"}),
    "json": json.dumps({"level": "error", "ts": "2024-06-12T10:01:02Z", "msg": "failed to mount volume",
                        "error": "permission denied"}),
    "klog": "E0612 10:01:02.123456       1 schedule_one.go:345] 0/3 nodes are available: 3 Insufficient cpu.",
    "plain": "Started container nginx in pod web-7d9f8b6c5-x2kqz",
    "plain_unicode": "Zugriff verweigert für Benutzer «jörg» ✗ 拒否",
}


def input_lines() -> list[tuple[bytes, str | None]]:
    """(raw line with its newline, expected error reason or None for a classifiable line), in order."""
    return [
        ((VALID["cri"] + "\n").encode(), None),
        (b"\xff\xfe bad\n", "invalid_utf8"),
        ((VALID["docker"] + "\r\n").encode(), None),
        (b"\n", "empty"),
        ((VALID["json"] + "\n").encode(), None),
        (b"a" * 1_000_000 + b"\n", "too_long"),
        ((VALID["klog"] + "\n").encode(), None),
        (b"   \t \n", "empty"),
        ((VALID["plain_unicode"] + "\n").encode(), None),
        (b"x" * 2_000_000 + b"\n", "too_long"),
        (VALID["plain"].encode(), None),  # last line without a newline
    ]


def run_cli(exe, args, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *map(str, args)], input=stdin, capture_output=True, timeout=120)


def records(stdout: bytes) -> list[dict]:
    assert stdout.endswith(b"\n")
    return [json.loads(line) for line in stdout.split(b"\n")[:-1]]


def check_output(result: subprocess.CompletedProcess, lines, labels: set[str]) -> None:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    out = records(result.stdout)
    assert len(out) == len(lines)
    for record, (raw, reason) in zip(out, lines):
        if reason is None:
            check_classification(record, raw.decode().rstrip("\r\n"), labels)
        else:
            assert record["reason"] == reason, record
            assert isinstance(record["error"], str) and record["error"]
            assert "label" not in record and "probs" not in record
            assert len(record["line"]) <= 4 * 200  # a preview, never the megabyte
    n_errors = sum(reason is not None for _, reason in lines)
    assert f"{n_errors} line(s) could not be classified" in result.stderr.decode()


def check_classification(record: dict, text: str, labels: set[str]) -> None:
    assert record["line"] == text
    probs = record["probs"]
    assert set(probs) == labels
    assert sum(probs.values()) == pytest.approx(1.0, abs=2e-3)
    assert record["label"] in labels
    assert probs[record["label"]] == max(probs.values())
    assert record["confidence"] == pytest.approx(max(probs.values()), abs=2e-4)
    assert isinstance(record["template"], str) and record["template"]


@pytest.fixture(scope="module")
def model_labels(tiny_model) -> set[str]:
    return set(json.loads((tiny_model[0] / "labels.json").read_text())["labels"])


def test_stdin_one_record_per_line_in_order(tiny_model, logdistill_exe, model_labels):
    lines = input_lines()
    result = run_cli(logdistill_exe, ["classify", "--model", tiny_model[0]], b"".join(raw for raw, _ in lines))
    check_output(result, lines, model_labels)
    out = records(result.stdout)
    assert "\\xff" in out[1]["line"]  # undecodable bytes are shown escaped
    # Envelopes were parsed: the template is the masked message, not the raw envelope.
    assert out[0]["template"] == "dial tcp <IP>: connect: connection refused"
    assert out[4]["template"].startswith("[error] failed to mount volume: permission denied")


def test_files_in_argument_order(tiny_model, logdistill_exe, model_labels, tmp_path):
    lines = input_lines()
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_bytes(b"".join(raw for raw, _ in lines[:5]))
    second.write_bytes(b"".join(raw for raw, _ in lines[5:]))
    result = run_cli(logdistill_exe, ["classify", "--model", tiny_model[0], first, second])
    check_output(result, lines, model_labels)


def test_same_results_on_stdin_and_files(tiny_model, logdistill_exe, tmp_path):
    data = b"".join(raw for raw, reason in input_lines() if reason is None)
    (tmp_path / "in.log").write_bytes(data)
    from_file = run_cli(logdistill_exe, ["classify", "--model", tiny_model[0], "--cache-size", "0",
                                         tmp_path / "in.log"])
    from_stdin = run_cli(logdistill_exe, ["classify", "--model", tiny_model[0], "--cache-size", "0"], data)
    assert from_file.returncode == from_stdin.returncode == 0
    assert from_file.stdout == from_stdin.stdout
    assert from_file.stderr == from_stdin.stderr == b""  # nothing unclassifiable, nothing said


def test_max_line_bytes_option(tiny_model, logdistill_exe):
    result = run_cli(logdistill_exe, ["classify", "--model", tiny_model[0], "--max-line-bytes", "10"],
                     b"short\nthis line is longer than ten bytes\n")
    assert result.returncode == 0
    first, second = records(result.stdout)
    assert "label" in first
    assert second["reason"] == "too_long"


def test_missing_model_dir(logdistill_exe, tmp_path):
    missing = tmp_path / "no-such-model"
    result = run_cli(logdistill_exe, ["classify", "--model", missing], b"hello\n")
    assert result.returncode != 0
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert str(missing) in stderr and "not a model directory" in stderr
    assert "Traceback" not in stderr


def test_model_dir_without_checksums(logdistill_exe, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    result = run_cli(logdistill_exe, ["classify", "--model", tmp_path], b"hello\n")
    assert result.returncode != 0
    assert "no SHA256SUMS" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


# ---- the Classifier in-process: the template cache ------------------------------------------

SAME_TEMPLATE = ["connection refused to 10.0.0.1:5432 after 3 retries",
                 "connection refused to 192.168.7.20:80 after 12 retries"]


@pytest.fixture
def counted(tiny_model):
    """A cached classifier whose model calls are recorded (each call's list of keys)."""
    classifier = Classifier.from_dir(tiny_model[0], threads=1)
    calls: list[list[str]] = []
    run = classifier.student.run  # the one model call of the classification path

    def recording(texts):
        calls.append(list(texts))
        return run(texts)

    classifier.student.run = recording
    return classifier, calls


def test_decode_reasons(tiny_model):
    classifier = Classifier.from_dir(tiny_model[0], max_line_bytes=16)
    results = classifier.classify_raw([b"ok line\n", b"\xc3\x28 broken\n", b"\r\n", b"y" * 17 + b"\n",
                                       b"y" * 16 + b"\r\n"])
    assert [type(r) for r in results] == [Classification, LineError, LineError, LineError, Classification]
    assert [r.reason for r in results if isinstance(r, LineError)] == ["invalid_utf8", "empty", "too_long"]


def test_same_template_different_variables_is_a_cache_hit(counted, tiny_model):
    classifier, calls = counted
    uncached = Classifier.from_dir(tiny_model[0], threads=1, cache_size=0)
    first = classifier.classify_texts([SAME_TEMPLATE[0]])[0]
    assert (classifier.cache.hits, classifier.cache.misses, len(calls)) == (0, 1, 1)
    second = classifier.classify_texts([SAME_TEMPLATE[1]])[0]
    assert (classifier.cache.hits, classifier.cache.misses, len(calls)) == (1, 1, 1)  # no model call
    assert first.template == second.template == "connection refused to <IP> after <NUM> retries"
    reference = uncached.classify_texts([SAME_TEMPLATE[1]])[0]
    assert second.probs == reference.probs == first.probs
    assert second.label == reference.label and second.confidence == reference.confidence
    assert second.line == SAME_TEMPLATE[1]


def test_repeated_keys_in_one_batch_are_predicted_once(counted):
    classifier, calls = counted
    batch = SAME_TEMPLATE + ["disk /dev/sda1 is full", "disk /dev/sdb2 is full", SAME_TEMPLATE[0],
                             "disk /dev/sdc3 is full"]
    results = classifier.classify_texts(batch)
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted({r.template for r in results}) and len(calls[0]) == 2
    # Per line: 2 model rows (misses); the other lines are answered by a repeat within the batch (hits).
    assert (classifier.cache.hits, classifier.cache.misses) == (len(batch) - 2, 2)
    assert [r.line for r in results] == batch
    assert results[0].probs == results[1].probs == results[4].probs
    assert results[2].probs == results[3].probs == results[5].probs
    # The same batch again: every line from the cache, no model call.
    again = classifier.classify_texts(batch)
    assert len(calls) == 1
    assert (classifier.cache.hits, classifier.cache.misses) == (2 * len(batch) - 2, 2)
    assert classifier.cache.hit_ratio == (2 * len(batch) - 2) / (2 * len(batch))
    assert [r.probs for r in again] == [r.probs for r in results]


def test_cache_disabled_gives_identical_predictions(tiny_model):
    cached = Classifier.from_dir(tiny_model[0], threads=1)
    uncached = Classifier.from_dir(tiny_model[0], threads=1, cache_size=0)
    batches = [[VALID[name] for name in VALID], [VALID[name] for name in VALID] + [VALID["cri"]]]
    for batch in batches:
        a, b = cached.classify_texts(batch), uncached.classify_texts(batch)
        assert [(r.label, r.probs, r.template) for r in a] == [(r.label, r.probs, r.template) for r in b]
    assert cached.cache.hits == len(VALID) + 1 and len(cached.cache) == len(VALID)  # 2nd batch: every line
    assert len(uncached.cache) == 0 and uncached.cache.hits == 1  # the repeat within the 2nd batch only


def test_cached_answers_are_the_models(counted):
    """A cache hit returns exactly what the model said for that key."""
    classifier, _calls = counted
    classifier.classify_texts(SAME_TEMPLATE[:1])
    key = classifier.classify_texts(SAME_TEMPLATE[1:])[0].template
    np.testing.assert_array_equal(classifier.probabilities([key])[key],
                                  classifier.student.predict_proba([key])[0])


def test_exact_message_repeats_skip_masking_but_not_the_envelope(counted, monkeypatch):
    """The (message, level) -> key memo: a repeated message is masked once, whatever its envelope."""
    classifier, _calls = counted
    masked = []
    real = classifier._memo_key_of.__wrapped__
    classifier._memo_key_of = functools.lru_cache(maxsize=8)(lambda m, lvl: masked.append(m) or real(m, lvl))
    a = "2024-06-12T10:01:02.1Z stdout F Readiness probe failed: HTTP probe failed with statuscode: 503"
    b = "2024-06-12T10:01:12.9Z stdout F Readiness probe failed: HTTP probe failed with statuscode: 503"
    c = "E0612 10:01:22.000001 1 prober.go:12] Readiness probe failed: HTTP probe failed with statuscode: 503"
    first, second, third = classifier.classify_texts([a, b, c])
    assert len(masked) == 2  # a and b share (message, level); c has another level
    assert first.template == second.template != third.template
    assert third.template.startswith("[error] ")


def test_the_key_memo_is_bounded_in_count_and_message_length(tiny_model):
    from service.classifier import MEMO_MAX_CHARS, MEMO_MAX_ENTRIES

    classifier = Classifier.from_dir(tiny_model[0], threads=1)
    long_message = "disk full " + "x" * MEMO_MAX_CHARS
    results = classifier.classify_texts([f"request {i} took too long" for i in range(50)] + [long_message])
    info = classifier._memo_key_of.cache_info()
    assert info.maxsize == MEMO_MAX_ENTRIES and info.currsize == 50  # the long message is masked, not kept
    assert results[-1].template.startswith("disk full")
    assert Classifier.from_dir(tiny_model[0], threads=1, cache_size=0)._memo is False
