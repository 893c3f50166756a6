"""Envelope parsing: every supported format, nesting, and the fall-backs."""

from __future__ import annotations

import json

import pytest

from service.parsing import ParsedLine, normalise_level, parse_line

CRI_TS = "2024-06-12T10:01:02.123456789Z"
KUBELET_LINE = ('E0612 10:01:02.123456    1234 pod_workers.go:1298] "Error syncing pod" '
                'err="failed to \\"StartContainer\\" for \\"app\\" with CrashLoopBackOff" '
                'pod="default/web-7d9f8b6c5-x2kqz" podUID="123e4567-e89b-12d3-a456-426614174000"')


def docker(log: str, stream: str = "stdout", time: str = "2024-06-12T10:01:02.123Z") -> str:
    return json.dumps({"log": log, "stream": stream, "time": time})


# --- CRI -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("tag, partial", [("F", False), ("P", True)])
def test_cri(stream, tag, partial):
    p = parse_line(f"{CRI_TS} {stream} {tag} connection reset by peer")
    assert p.format == "cri"
    assert p.message == "connection reset by peer"
    assert p.timestamp == CRI_TS
    assert p.level is None
    assert p.fields == {"stream": stream, "partial": partial}


@pytest.mark.parametrize("line", [f"{CRI_TS} stdout F ", f"{CRI_TS} stdout F"])
def test_cri_empty_payload(line):
    p = parse_line(line)
    assert p.format == "cri"
    assert p.message == ""


def test_cri_needs_a_known_stream_and_tag():
    for line in (f"{CRI_TS} stdlog F hello", f"{CRI_TS} stdout X hello"):
        p = parse_line(line)
        assert p.format == "plain"
        assert p.message == line


# --- docker json-file ------------------------------------------------------------------------

@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_docker_json_file(stream):
    p = parse_line(docker("GET /healthz 200\n", stream=stream))
    assert p.format == "docker"
    assert p.message == "GET /healthz 200"  # docker keeps the app's newline; it is stripped
    assert p.timestamp == "2024-06-12T10:01:02.123Z"
    assert p.fields == {"stream": stream}
    assert p.level is None


# --- JSON structured logs --------------------------------------------------------------------

@pytest.mark.parametrize("message_key", ["msg", "message"])
def test_json_message_keys(message_key):
    p = parse_line(json.dumps({"level": "info", message_key: "server started", "port": 8080}))
    assert p.format == "json"
    assert p.message == "server started"
    assert p.level == "info"
    assert p.fields == {"port": 8080}


def test_json_msg_wins_over_message():
    p = parse_line(json.dumps({"message": "second", "msg": "first"}))
    assert p.message == "first"


@pytest.mark.parametrize("level_key", ["level", "severity", "lvl", "levelname"])
@pytest.mark.parametrize("raw, expected", [
    ("WARN", "warning"), ("warn", "warning"), ("Warning", "warning"), ("WARNING", "warning"),
    ("ERR", "error"), ("error", "error"), ("Error", "error"),
    ("critical", "fatal"), ("CRITICAL", "fatal"), ("fatal", "fatal"), ("panic", "fatal"),
    ("info", "info"), ("INFO", "info"), ("notice", "info"),
    ("debug", "debug"), ("trace", "debug"),
])
def test_json_level_keys_and_aliases(level_key, raw, expected):
    p = parse_line(json.dumps({level_key: raw, "msg": "m"}))
    assert p.level == expected
    assert level_key not in p.fields


@pytest.mark.parametrize("raw", ["verbose", "", 30, None])
def test_json_unknown_level_is_none(raw):
    assert parse_line(json.dumps({"level": raw, "msg": "m"})).level is None


@pytest.mark.parametrize("value, expected", [
    (" Warn ", "warning"), ("eRR", "error"), ("Critical", "fatal"), (None, None), ("nope", None),
])
def test_normalise_level(value, expected):
    assert normalise_level(value) == expected


def test_json_error_field_appended_to_message():
    line = json.dumps({"level": "error", "ts": "2024-06-12T10:01:02Z", "msg": "Reconciler error",
                       "controller": "deployment", "error": "context deadline exceeded"})
    p = parse_line(line)
    assert p.format == "json"
    assert p.message == "Reconciler error: context deadline exceeded"
    assert p.level == "error"
    assert p.timestamp == "2024-06-12T10:01:02Z"
    assert p.fields["controller"] == "deployment"


@pytest.mark.parametrize("key", ["err", "exception"])
def test_json_other_error_keys(key):
    p = parse_line(json.dumps({"msg": "request failed", key: "EOF"}))
    assert p.message == "request failed: EOF"


@pytest.mark.parametrize("error", ["", None, {"code": 1}])
def test_json_empty_or_non_string_error_not_appended(error):
    p = parse_line(json.dumps({"msg": "request failed", "error": error}))
    assert p.message == "request failed"


def test_json_numeric_timestamp_is_stringified():
    p = parse_line(json.dumps({"ts": 1718186462.5, "msg": "m"}))
    assert p.timestamp == "1718186462.5"


def test_json_non_string_message_is_serialised():
    p = parse_line(json.dumps({"msg": {"op": "sync", "n": 3}}))
    assert p.format == "json"
    assert json.loads(p.message) == {"op": "sync", "n": 3}


def test_json_without_message_field_is_whole_text():
    line = json.dumps({"level": "error", "event": "payment failed", "order": 42})
    p = parse_line("  " + line + "  ")
    assert p.format == "json"
    assert p.message == line
    assert p.fields == {}


# --- klog ------------------------------------------------------------------------------------

@pytest.mark.parametrize("severity, level", [("I", "info"), ("W", "warning"), ("E", "error"), ("F", "fatal")])
def test_klog_levels(severity, level):
    p = parse_line(f"{severity}0612 10:01:02.123456       1 main.go:42] leader election lost")
    assert p.format == "klog"
    assert p.level == level
    assert p.message == "leader election lost"
    assert p.timestamp == "0612 10:01:02.123456"
    assert p.fields == {"source": "main.go:42"}


def test_klog_real_kubelet_line():
    p = parse_line(KUBELET_LINE)
    assert p.format == "klog"
    assert p.level == "error"
    assert p.fields == {"source": "pod_workers.go:1298"}
    assert p.message.startswith('"Error syncing pod" err="failed to')
    assert p.message.endswith('podUID="123e4567-e89b-12d3-a456-426614174000"')


@pytest.mark.parametrize("line", [
    "X0612 10:01:02.123456       1 main.go:42] unknown severity",
    "E0612 10:01:02       1 main.go:42] no fraction of a second",
    "Error 10:01:02.123456 something",
])
def test_not_klog(line):
    assert parse_line(line).format == "plain"


# --- plain text ------------------------------------------------------------------------------

def test_plain_text():
    p = parse_line("  kernel: Out of memory: Killed process 1234 (java)  ")
    assert p == ParsedLine(message="kernel: Out of memory: Killed process 1234 (java)", format="plain")


# --- nested envelopes ------------------------------------------------------------------------

def test_cri_wrapping_klog():
    p = parse_line(f"{CRI_TS} stderr F {KUBELET_LINE}")
    assert p.format == "cri+klog"
    assert p.level == "error"
    assert p.message.startswith('"Error syncing pod"')
    # Fields from both envelopes are kept.
    assert p.fields == {"stream": "stderr", "partial": False, "source": "pod_workers.go:1298"}


def test_cri_wrapping_json():
    inner = json.dumps({"level": "WARN", "msg": "slow query", "error": "lock timeout", "db": "orders"})
    p = parse_line(f"{CRI_TS} stdout F {inner}")
    assert p.format == "cri+json"
    assert p.level == "warning"
    assert p.message == "slow query: lock timeout"
    assert p.fields["stream"] == "stdout"
    assert p.fields["db"] == "orders"
    # The inner JSON had no timestamp: the CRI one is kept.
    assert p.timestamp == CRI_TS


def test_cri_wrapping_json_keeps_inner_timestamp():
    inner = json.dumps({"time": "inner-ts", "msg": "m"})
    assert parse_line(f"{CRI_TS} stdout F {inner}").timestamp == "inner-ts"


def test_docker_wrapping_klog():
    p = parse_line(docker("W0612 10:01:02.123456       1 reflector.go:424] watch closed\n", stream="stderr"))
    assert p.format == "docker+klog"
    assert p.level == "warning"
    assert p.message == "watch closed"
    assert p.fields == {"stream": "stderr", "source": "reflector.go:424"}


def test_docker_wrapping_json():
    p = parse_line(docker(json.dumps({"severity": "ERROR", "message": "boom"}) + "\n"))
    assert p.format == "docker+json"
    assert p.level == "error"
    assert p.message == "boom"


def test_cri_wrapping_docker_wrapping_klog():
    inner = docker("E0612 10:01:02.123456       1 main.go:1] deep")
    p = parse_line(f"{CRI_TS} stdout F {inner}")
    assert p.format == "cri+docker+klog"
    assert p.message == "deep"
    assert p.level == "error"


def test_cri_wrapping_plain_stays_cri():
    p = parse_line(f"{CRI_TS} stdout F just some text")
    assert p.format == "cri"
    assert p.message == "just some text"


# --- line endings and fall-backs -------------------------------------------------------------

@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r", "\r\n\r\n"])
@pytest.mark.parametrize("line, fmt, message", [
    ("plain text line", "plain", "plain text line"),
    (f"{CRI_TS} stdout F payload", "cri", "payload"),
    ('{"level":"error","msg":"m"}', "json", "m"),
    ("E0612 10:01:02.123456       1 main.go:1] klog text", "klog", "klog text"),
])
def test_trailing_newlines_are_stripped(line, fmt, message, ending):
    p = parse_line(line + ending)
    assert p.format == fmt
    assert p.message == message


@pytest.mark.parametrize("line", [
    '{"level": "error", "msg": "unterminated"',
    '{"level": "error", "msg": "trailing comma",}',
    "{not json at all}",
    "{'single': 'quotes'}",
])
def test_malformed_json_falls_back_to_plain(line):
    p = parse_line(line)
    assert p.format == "plain"
    assert p.message == line
    assert p.level is None


@pytest.mark.parametrize("line", ['[1, 2, 3]', '[{"msg": "in an array"}]', '"just a string"', "42"])
def test_non_object_json_is_plain(line):
    p = parse_line(line)
    assert p.format == "plain"
    assert p.message == line


def test_malformed_json_inside_cri_stays_cri():
    p = parse_line(f'{CRI_TS} stdout F {{"msg": "broken"')
    assert p.format == "cri"
    assert p.message == '{"msg": "broken"'
