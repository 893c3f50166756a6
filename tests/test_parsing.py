"""Envelope parsing: every supported format, nesting, and the fall-backs."""

from __future__ import annotations

import json
import random
import time

import pytest

from service import parsing
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


# =============================================================================================
# Envelopes of real cloud-native programs (logfmt, syslog, kubectl events, zap console, Java,
# Python, nginx, postgres, dmesg, ...). Lines are shaped after ../shared/data/k8s_labels.csv and
# k8s_dev_lines.csv.
# =============================================================================================


# --- logfmt (logrus, go-kit, slog) -----------------------------------------------------------

def test_logfmt_logrus():
    p = parse_line('time="2026-12-03T10:20:07.371Z" level=warning msg="Engine Monitor: Failed to update engine status" '
                   'func="controller.(*EngineMonitor).sync" file="engine_controller.go:1354" engine=pvc-3f1c')
    assert p.format == "logfmt"
    assert p.level == "warning"
    assert p.message == "Engine Monitor: Failed to update engine status"
    assert p.timestamp == "2026-12-03T10:20:07.371Z"
    assert p.fields == {"func": "controller.(*EngineMonitor).sync", "file": "engine_controller.go:1354",
                        "engine": "pvc-3f1c"}


def test_logfmt_error_appended_like_json():
    p = parse_line('time="2026-11-21T06:02:35Z" level=error msg="StartContainer for \\"f3af0b\\" failed" '
                   'error="rpc error: code = Unknown desc = failed to create task"')
    assert p.message == 'StartContainer for "f3af0b" failed: rpc error: code = Unknown desc = failed to create task'
    assert p.level == "error"


@pytest.mark.parametrize("line, level, message", [
    # go-kit / prometheus / loki: level first, ts=, caller=, err=
    ('level=error ts=2026-11-28T23:22:04.105Z caller=main.go:146 msg="Error loading config" err="open /etc/x: no such file"',
     "error", "Error loading config: open /etc/x: no such file"),
    # slog text handler
    ('time=2026-11-22T01:13:07.159Z level=INFO source=main.go:915 msg="Starting Prometheus Server" mode=server',
     "info", "Starting Prometheus Server"),
    # blackbox exporter: level in the middle, lvl spelled out
    ('ts=2023-06-12T08:17:05.003Z caller=icmp.go:340 module=icmp target=192.0.2.77 level=warn msg="Timeout reading from socket"',
     "warning", "Timeout reading from socket"),
    ('time="2019-03-05T18:33:53Z" level=info msg="Applying filter"', "info", "Applying filter"),
    ("level=debug msg=unquoted_single_word component=x", "debug", "unquoted_single_word"),
])
def test_logfmt_shapes(line, level, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("logfmt", level, message)


def test_logfmt_unescapes_quoted_values():
    p = parse_line('level=info msg="a \\"quoted\\" path C:\\\\tmp\\ttab" k="x y"')
    assert p.message == 'a "quoted" path C:\\tmp\ttab'
    assert p.fields == {"k": "x y"}


def test_logfmt_without_msg_keeps_whole_line_and_reads_level():
    line = 'level=error ts=2026-01-01T00:00:00Z caller=main.go:1 err="context deadline exceeded"'
    p = parse_line(line)
    assert p.format == "logfmt"
    assert p.level == "error"
    assert p.message == line


@pytest.mark.parametrize("line", [
    'level=error msg="truncated in the middle of a quo',
    'level=error msg="ends with a backslash\\',
    'level=error msg=',
    'level=error msg="" err=""',
])
def test_logfmt_broken_quotes_never_raise(line):
    p = parse_line(line)
    assert p.format == "logfmt"
    assert p.level == "error"


@pytest.mark.parametrize("line", [
    "Failed to sync: level=error msg=x",  # key=value later in a sentence is not logfmt
    "a=1",  # one pair, no level or msg
    "user=bob action=login",  # pairs but no level/msg key
])
def test_not_logfmt(line):
    assert parse_line(line).format == "plain"


def test_logfmt_behind_a_bracketed_prefix():
    p = parse_line('[pvc-3f1c-e-0] time="2026-12-03T10:12:41Z" level=error msg="R/W Timeout. No response received in 8s"')
    assert p.format == "logfmt"
    assert p.level == "error"
    assert p.message == "R/W Timeout. No response received in 8s"
    assert p.fields["prefix"] == "pvc-3f1c-e-0"


def test_logrus_terminal_format():
    p = parse_line("ERRO[0001] Error while retrieving image from cache: python:3.12-slim")
    assert (p.format, p.level) == ("logrus", "error")
    assert p.message == "Error while retrieving image from cache: python:3.12-slim"


# --- syslog ----------------------------------------------------------------------------------

def test_syslog_rfc3164_keeps_program_drops_pid():
    p = parse_line("Jul 11 04:19:55 bm-worker-09 systemd-networkd[701]: eno1: Lost carrier")
    assert p.format == "syslog"
    assert p.message == "systemd-networkd: eno1: Lost carrier"
    assert p.level is None  # syslog text carries no level
    assert p.timestamp == "Jul 11 04:19:55"
    assert p.fields == {"host": "bm-worker-09", "program": "systemd-networkd"}


def test_syslog_single_digit_day_and_no_pid():
    p = parse_line("Aug  6 19:02:55 gpu-node-13 sensord: Sensor alarm: Chip coretemp-isa-0001 [ALARM]")
    assert p.format == "syslog"
    assert p.message == "sensord: Sensor alarm: Chip coretemp-isa-0001 [ALARM]"


def test_syslog_around_klog_is_unwrapped():
    p = parse_line("Jun 24 15:10:52 k8s-master-server kubelet[23084]: W0624 15:10:51.887699   23084 cni.go:171] "
                   "Unable to update cni config: No networks found in /etc/cni/net.d")
    assert p.format == "syslog+klog"
    assert p.level == "warning"
    assert p.message == "Unable to update cni config: No networks found in /etc/cni/net.d"
    assert p.fields == {"host": "k8s-master-server", "program": "kubelet", "source": "cni.go:171"}


def test_syslog_around_logfmt_is_unwrapped():
    p = parse_line('Nov 28 08:00:52 edge-node-14 crio[2192]: time="2026-11-28T08:00:52.599Z" level=info '
                   'msg="CNI plugin not ready" id=d28288ff')
    assert p.format == "syslog+logfmt"
    assert p.level == "info"
    assert p.message == "CNI plugin not ready"
    assert p.fields["program"] == "crio"
    assert p.fields["id"] == "d28288ff"


def test_syslog_around_json_is_unwrapped():
    p = parse_line('Dec  3 10:00:00 node app[1]: {"level":"error","msg":"boom","error":"EOF"}')
    assert (p.format, p.level, p.message) == ("syslog+json", "error", "boom: EOF")


def test_syslog_kernel_uptime_is_stripped_and_program_kept():
    p = parse_line("May 21 18:07:14 sangje-desktop kernel: [   40.991192] nvme nvme0: controller is down; will reset")
    assert p.format == "syslog+dmesg"
    assert p.message == "kernel: nvme nvme0: controller is down; will reset"
    assert p.level is None


def test_syslog_around_a_bare_level_prefix_keeps_program():
    # rsyslog writes ESC as "#033": the colour codes go, the level is read, the program stays.
    p = parse_line("Apr 17 15:57:31 runner01 gitlab-runner[1701482]: #033[0;33mWARNING: Job failed: exit code 137")
    assert p.format == "syslog+leveled"
    assert p.level == "warning"
    assert p.message == "gitlab-runner: Job failed: exit code 137"


def test_syslog_pri_gives_the_level():
    p = parse_line("<27>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
    assert p.format == "syslog"
    assert p.level == "error"  # 27 & 7 == 3: err
    assert p.message == "su: 'su root' failed for lonvick on /dev/pts/8"


def test_syslog_inner_level_wins_over_pri():
    p = parse_line("<30>Oct 11 22:14:15 node containerd[1]: level=error msg=failed")  # 30: daemon.info
    assert p.level == "error"


def test_syslog_rfc5424():
    p = parse_line('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 '
                   '[exampleSDID@32473 iut="3" eventSource="Application"] An application event log entry')
    assert p.format == "syslog"
    assert p.level == "info"  # 165 & 7 == 5: notice
    assert p.message == "evntslog: An application event log entry"
    assert p.timestamp == "2003-10-11T22:14:15.003Z"


def test_syslog_rfc3339_timestamps():
    p = parse_line("2026-12-03T10:01:02.123456+00:00 node1 kubelet[2345]: E1203 10:01:02.123456 2345 x.go:1] boom")
    assert (p.format, p.level, p.message) == ("syslog+klog", "error", "boom")
    p = parse_line("2026-12-03T10:01:02.123456+00:00 node1 systemd[1]: Started kubelet.")
    assert (p.format, p.message) == ("syslog", "systemd: Started kubelet.")


@pytest.mark.parametrize("line", [
    "May I have a word",
    "Dec  3 10:14:02.119: payments/api-7d9c:48122 (ID:51211) <> kube-system/coredns:53 Policy denied DROPPED",
    "Jun 24 15:10:52",
])
def test_not_syslog(line):
    assert parse_line(line).format == "plain"


# --- kubectl events --------------------------------------------------------------------------

def test_kubectl_describe_event():
    p = parse_line("Warning  FailedScheduling  61s (x5 over 3m1s)  default-scheduler  "
                   "0/2 nodes are available: 2 Insufficient cpu.")
    assert p.format == "kubectl-event"
    assert p.level == "warning"
    assert p.message == "FailedScheduling 0/2 nodes are available: 2 Insufficient cpu."
    assert p.fields == {"age": "61s", "count": 5, "source": "default-scheduler"}


@pytest.mark.parametrize("line, level, message, source", [
    ("Normal   Pulled     5m12s (x3 over 9m)  kubelet  Container image \"x:1\" already present on machine",
     "info", "Pulled Container image \"x:1\" already present on machine", "kubelet"),
    ("Normal   SuccessfulMountVolume  1m    kubelet, ip-172-31-20-7.ec2.internal  MountVolume.SetUp succeeded",
     "info", "SuccessfulMountVolume MountVolume.SetUp succeeded", "kubelet, ip-172-31-20-7.ec2.internal"),
    ("Warning  FailedScheduling  <unknown>  default-scheduler  0/3 nodes are available",
     "warning", "FailedScheduling 0/3 nodes are available", "default-scheduler"),
    ("Warning  FailedMount             4m10s                kubelet                  MountVolume.SetUp failed",
     "warning", "FailedMount MountVolume.SetUp failed", "kubelet"),
    ("  Warning  BackOff  2m  kubelet  Back-off restarting failed container",  # describe output is indented
     "warning", "BackOff Back-off restarting failed container", "kubelet"),
])
def test_kubectl_describe_event_shapes(line, level, message, source):
    p = parse_line(line)
    assert (p.format, p.level, p.message, p.fields["source"]) == ("kubectl-event", level, message, source)


@pytest.mark.parametrize("line, message", [
    ("55s         Warning   Failed   pod/legacy-app-85f6d-tq7wn   Error: container has runAsNonRoot",
     "Failed Error: container has runAsNonRoot"),
    ("58s         Normal    Pulled   pod/support-k6-7fc9fdcdd5-kp7w5   Successfully pulled image",
     "Pulled Successfully pulled image"),
    ("3:05:26 PM  Warning  Failed   Failed to pull image \"aerokube/logger:cad1da\": manifest unknown",
     "Failed Failed to pull image \"aerokube/logger:cad1da\": manifest unknown"),
    ("13:05:26  Normal  Pulling   pulling image \"x\"", "Pulling pulling image \"x\""),
])
def test_kubectl_get_events_shapes(line, message):
    p = parse_line(line)
    assert p.format == "kubectl-event"
    assert p.message == message
    assert p.level == ("info" if " Normal " in line else "warning")


def test_kubectl_event_same_key_in_describe_and_get_forms():
    msg = "0/2 nodes are available: 2 Insufficient cpu."
    described = parse_line(f"Warning  FailedScheduling  61s (x5 over 3m1s)  default-scheduler  {msg}")
    listed = parse_line(f"61s   Warning   FailedScheduling   pod/web-1   {msg}")
    assert (described.message, described.level) == (listed.message, listed.level)
    assert listed.fields["object"] == "pod/web-1"


@pytest.mark.parametrize("line", ["Normal operation resumed", "Warning signs: disk almost full", "5m Normal"])
def test_not_kubectl_event(line):
    assert parse_line(line).format != "kubectl-event"


# --- zap console -----------------------------------------------------------------------------

def test_zap_console_full():
    p = parse_line('2024-12-03T11:20:14.552Z\tERROR\tcore.scheduler\tobjects/application.go:1042\t'
                   'too many asks\t{"application ID": "spark-1", "error": "queue full"}')
    assert p.format == "zap-console"
    assert p.level == "error"
    assert p.message == "too many asks: queue full"
    assert p.timestamp == "2024-12-03T11:20:14.552Z"
    assert p.fields == {"application ID": "spark-1", "error": "queue full", "logger": "core.scheduler",
                        "source": "objects/application.go:1042"}


@pytest.mark.parametrize("line, level, message, fields", [
    ("2026-11-22T01:14:55.341Z\tinfo\tcaller.go:44\tStarting extensions...\t{\"n\": 1}",
     "info", "Starting extensions...", {"n": 1, "source": "caller.go:44"}),
    ("2026-12-03T10:09:02.100394Z\terror\tFailed to authenticate 10.42.7.3:51822",  # istio, no scope
     "error", "Failed to authenticate 10.42.7.3:51822", {}),
    ("2026-12-03T10:01:02.123456Z\twarn\tads\tADS: exceeded rate limit",  # istio scope
     "warning", "ADS: exceeded rate limit", {"logger": "ads"}),
    ("2026-12-03T10:01:02Z\tinfo\tStarting", "info", "Starting", {}),
    ("2026-12-03T10:01:02Z\tinfo\tlogger\tmsg\t{not json}", "info", "msg\t{not json}", {"logger": "logger"}),
])
def test_zap_console_shapes(line, level, message, fields):
    p = parse_line(line)
    assert (p.format, p.level, p.message, p.fields) == ("zap-console", level, message, fields)


def test_tab_separated_without_a_level_is_not_zap():
    assert parse_line("2026-12-03T10:01:02Z\tnot-a-level\tmessage").format != "zap-console"


# --- Java ------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, level, message, logger", [
    ("2026-12-03T09:58:11.387Z  INFO 1 --- [orders-api] [           main] o.s.b.SpringApplication     : Started app",
     "info", "Started app", "o.s.b.SpringApplication"),
    ("2026-12-03T14:26:10.010Z ERROR 1 --- [           main] o.s.boot.SpringApplication   : Application run failed",
     "error", "Application run failed", "o.s.boot.SpringApplication"),
    ("2018-04-12 17:03:15.005  INFO [-,,,] 1 --- [tion Controller] i.s.s.c.i.IntegrationController          : "
     "Integration i-L9k2 : Setting status to Pending", "info", "Integration i-L9k2 : Setting status to Pending",
     "i.s.s.c.i.IntegrationController"),
    ("2024-06-12 10:01:02.123 ERROR [http-nio-8080-exec-1] com.acme.Orders - Order failed", "error", "Order failed",
     "com.acme.Orders"),
    ("2024-06-12 10:01:02,123 [main] WARN  c.a.Orders - slow", "warning", "slow", "c.a.Orders"),
    ("10:01:02.123 [main] INFO  c.x.Y - started", "info", "started", "c.x.Y"),  # logback's default pattern
    ("03-Dec-2026 18:40:03.215 WARNING [main] org.apache.catalina.startup.Catalina.start Server failed",
     "warning", "Server failed", "org.apache.catalina.startup.Catalina.start"),
    ("03-Dec-2026 10:04:52.201 SEVERE [main] org.apache.catalina.util.LifecycleBase.x Failed to start component",
     "error", "Failed to start component", "org.apache.catalina.util.LifecycleBase.x"),
])
def test_java_shapes(line, level, message, logger):
    p = parse_line(line)
    assert (p.format, p.level, p.message, p.fields["logger"]) == ("java", level, message, logger)


def test_spring_boot_fields():
    p = parse_line("2026-12-03T10:01:05.611Z  INFO 1 --- [orders-api] [           main] w.s.c.Context : Root done")
    assert p.fields == {"pid": "1", "thread": "main", "logger": "w.s.c.Context", "application": "orders-api"}
    assert p.timestamp == "2026-12-03T10:01:05.611Z"


@pytest.mark.parametrize("line, level, message", [
    # kafka / log4j
    ("[2026-12-03 10:02:32,500] ERROR [BrokerLifecycleManager id=3] Shutting down (kafka.server.BrokerLifecycleManager)",
     "error", "Shutting down (kafka.server.BrokerLifecycleManager)"),
    # elasticsearch
    ("[2026-12-03T14:20:02,117][WARN ][o.e.c.r.a.DiskThresholdMonitor] [es-master-0] flood stage disk watermark exceeded",
     "warning", "flood stage disk watermark exceeded"),
    # cassandra
    ("WARN  [Native-Transport-Requests-4] 2026-12-03 13:02:09,330 BatchStatement.java:323 - Batch is too large",
     "warning", "Batch is too large"),
])
def test_other_jvm_shapes(line, level, message):
    p = parse_line(line)
    assert (p.level, p.message) == (level, message)
    assert p.format != "plain"


def test_java_exception_lines_stay_plain():
    # No envelope: the class name is the message (the model needs it).
    for line in ("java.lang.OutOfMemoryError: Java heap space", "Caused by: java.net.ConnectException: Connection refused"):
        assert parse_line(line) == ParsedLine(message=line)


# --- Python ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, level, message", [
    ("2026-12-03 13:46:20,009 ERROR [api.ratelimit] redis.exceptions.MaxConnectionsError: Too many connections",
     "error", "redis.exceptions.MaxConnectionsError: Too many connections"),
    ("WARNING 2026-12-03 10:22:47,630 log Method Not Allowed (POST): /api/v1/health/", "warning",
     "log Method Not Allowed (POST): /api/v1/health/"),
    ("2024-12-03 14:05:50,111 INFO supervisord started with pid 1", "info", "supervisord started with pid 1"),
    ("[2026-12-03 09:59:58,004: ERROR/MainProcess] consumer: Cannot connect to amqp://guest:**@rabbitmq:5672//",
     "error", "consumer: Cannot connect to amqp://guest:**@rabbitmq:5672//"),
    ("[2026-12-03 11:23:01,660: CRITICAL/MainProcess] Unrecoverable error", "fatal", "Unrecoverable error"),
    ("ERROR:root:something broke", "error", "something broke"),
    ("WARNING:urllib3.connectionpool:Retrying (Retry(total=2)) after connection broken", "warning",
     "Retrying (Retry(total=2)) after connection broken"),
    ("2026-12-03 13:46:20,009 - myapp.db - WARNING - slow query took 3s", "warning", "slow query took 3s"),
    ("2026-12-03 13:46:20,009 ERROR [app] Failed - retrying", "error", "Failed - retrying"),  # not logback
    ("[2026-12-03 10:33:12 +0000] [9] [INFO] Autorestarting worker after current request.", "info",
     "Autorestarting worker after current request."),  # gunicorn
    ("INFO:     Started parent process [1]", "info", "Started parent process [1]"),  # uvicorn
    ("ERROR:    [Errno 98] error while attempting to bind on address", "error",
     "[Errno 98] error while attempting to bind on address"),
])
def test_python_shapes(line, level, message):
    p = parse_line(line)
    assert p.format != "plain"
    assert (p.level, p.message) == (level, message)


def test_python_logger_names_go_to_fields():
    assert parse_line("2026-12-03 13:46:20,009 ERROR [api.ratelimit] x").fields == {"logger": "api.ratelimit"}
    p = parse_line("ERROR:root:x")
    assert (p.format, p.fields) == ("python", {"logger": "root"})
    p = parse_line("[2026-12-03 09:59:58,004: ERROR/MainProcess] x")
    assert (p.format, p.fields, p.timestamp) == ("python", {"process": "MainProcess"}, "2026-12-03 09:59:58,004")


# --- nginx -----------------------------------------------------------------------------------

def test_nginx_error_log():
    p = parse_line("2026/12/03 10:05:19 [error] 31#31: *3120 upstream prematurely closed connection, client: 10.244.1.1")
    assert p.format == "nginx"
    assert p.level == "error"
    assert p.message == "upstream prematurely closed connection, client: 10.244.1.1"
    assert p.timestamp == "2026/12/03 10:05:19"
    assert p.fields == {"pid": "31", "tid": "31", "connection": "3120"}


@pytest.mark.parametrize("level, expected", [("emerg", "fatal"), ("alert", "fatal"), ("crit", "fatal"),
                                             ("warn", "warning"), ("notice", "info"), ("info", "info")])
def test_nginx_levels(level, expected):
    p = parse_line(f"2026/12/03 09:58:00 [{level}] 1#1: something")
    assert (p.format, p.level, p.message, p.fields) == ("nginx", expected, "something", {"pid": "1", "tid": "1"})


@pytest.mark.parametrize("line, level, message", [
    ("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties", "info",
     "workerEnv.init() ok /etc/httpd/conf/workers2.properties"),
    ("[Sun Dec 04 04:47:44.123456 2005] [core:error] [pid 123] [client 1.2.3.4:5] AH00037: Symbolic link not allowed",
     "error", "AH00037: Symbolic link not allowed"),
])
def test_apache_error_log(line, level, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("apache", level, message)


def test_access_logs_stay_plain():
    # No level, and the whole line (request, status) is the message; masking handles address and time.
    for line in ('10.244.0.1 - - [03/Dec/2026:10:06:59 +0000] "GET /api/v1/cart HTTP/1.1" 502 157 "-" "curl/8.5.0"',
                 '[2026-12-03T10:59:12.331Z] "GET /productpage HTTP/1.1" 200 - via_upstream - "-" 0 5293 38 37'):
        assert parse_line(line) == ParsedLine(message=line)


# --- postgres --------------------------------------------------------------------------------

@pytest.mark.parametrize("line, level, message", [
    ("FATAL:  remaining connection slots are reserved for non-replication superuser connections", "fatal",
     "remaining connection slots are reserved for non-replication superuser connections"),
    ("LOG:  incomplete startup packet", "info", "incomplete startup packet"),
    ("ERROR:  deadlock detected", "error", "deadlock detected"),
    ("2026-12-03 10:01:02.123 UTC [1] LOG:  database system is ready to accept connections", "info",
     "database system is ready to accept connections"),
    ("2026-12-03 10:30:41.552 UTC [5120] app@orders ERROR:  deadlock detected", "error", "deadlock detected"),
    ("2026-12-03 10:44:19.379 UTC [4133] app@orders DETAIL:  Key (id)=(1) already exists.", None,
     "Key (id)=(1) already exists."),
    ("2026-12-03 12:40:01.123 UTC [1] LOG C-0x55e8c2f5e1a0: appdb/app@10.244.2.17:41322 login attempt", "info",
     "C-0x55e8c2f5e1a0: appdb/app@10.244.2.17:41322 login attempt"),  # pgbouncer
])
def test_postgres(line, level, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("postgres", level, message)


def test_postgres_fields():
    p = parse_line("2026-12-03 10:30:41.552 UTC [5120] app@orders ERROR:  deadlock detected")
    assert p.fields == {"pid": "5120", "user": "app@orders"}
    assert p.timestamp == "2026-12-03 10:30:41.552"


# --- bracketed levels, grep-prefixed klog, dmesg ------------------------------------------------

@pytest.mark.parametrize("line, level, message", [
    ("[INFO] plugin/reload: Running configuration SHA512 = 591cf3", "info", "plugin/reload: Running configuration SHA512 = 591cf3"),
    ("[ERROR] plugin/errors: 2 api.github.com. AAAA: i/o timeout", "error", "plugin/errors: 2 api.github.com. AAAA: i/o timeout"),
    ("[WARNING] No healthchecker for transport \"grpc\"", "warning", "No healthchecker for transport \"grpc\""),
    ("[FATAL] plugin/loop: Loop detected", "fatal", "plugin/loop: Loop detected"),
    ("[WARNING]  (8) : Server be_api/api-4 is DOWN", "warning", "Server be_api/api-4 is DOWN"),  # haproxy
    ("[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2", "error",
     "the number of available CPUs 1 is less than the required 2"),  # kubeadm preflight
    ("[INFO  tini (1)] Spawned child process 'java' with pid '7'", "info", "Spawned child process 'java' with pid '7'"),
])
def test_bracketed_level(line, level, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("leveled", level, message)


def test_bracket_without_a_level_is_plain():
    for line in ("[kubelet-check] It seems like the kubelet isn't running or healthy.", "[dumb-init] Child exited"):
        assert parse_line(line).format == "plain"


def test_grep_prefixed_klog():
    p = parse_line('157:I1103 14:17:19.868380       1 factory.go:445] "Unable to schedule pod; no fit; waiting"')
    assert p.format == "klog"
    assert p.level == "info"
    assert p.message == '"Unable to schedule pod; no fit; waiting"'
    assert p.fields == {"source": "factory.go:445", "line_number": "157"}


@pytest.mark.parametrize("line, message", [
    ("[ 2210.775001] Buffer I/O error on dev nvme1n1, logical block 52428800", "Buffer I/O error on dev nvme1n1, logical block 52428800"),
    ("[11219.196524] {1}[Hardware Error]: Hardware error from APEI", "{1}[Hardware Error]: Hardware error from APEI"),
    ("[    4.457011] nvme nvme0: 15/0/0 default/read/poll queues ", "nvme nvme0: 15/0/0 default/read/poll queues"),
])
def test_dmesg_uptime_stripped(line, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("dmesg", None, message)


def test_dmesg_with_printk_level():
    p = parse_line("<3>[  12.500000] nvme nvme0: I/O 778 QID 8 timeout")
    assert (p.format, p.level, p.message) == ("dmesg", "error", "nvme nvme0: I/O 778 QID 8 timeout")


# --- other leveled text formats --------------------------------------------------------------

@pytest.mark.parametrize("line, fmt, level, message", [
    # hashicorp hclog (vault, consul)
    ("2026-12-03T12:50:01.118Z [INFO]  core: entering standby mode", "leveled", "info", "core: entering standby mode"),
    ("2019/03/12 10:01:02 [WARN] agent: Check \"service:redis-01\" is now critical", "leveled", "warning",
     "agent: Check \"service:redis-01\" is now critical"),
    # capnslog (rook, old etcd)
    ("2026-12-03 10:14:22.530871 W | op-mon: mon \"b\" not found in quorum", "leveled", "warning", "op-mon: mon \"b\" not found in quorum"),
    ("2026-12-03 10:13:31.987445 E | ceph-cluster-controller: failed to get ceph status", "leveled", "error",
     "ceph-cluster-controller: failed to get ceph status"),
    # zerolog console (kyverno, traefik)
    ("2026-12-03T12:02:13Z ERR github.com/kyverno/kyverno/pkg/webhooks/handlers.go:208 > mutation failed", "leveled",
     "error", "mutation failed"),
    ("2026-12-03T10:52:01Z WRN Health check failed. error=\"timeout\"", "leveled", "warning", "Health check failed. error=\"timeout\""),
    # calico felix
    ("2026-12-03 10:01:02.123 [WARNING][57] felix/table.go 1165: Failed to program iptables", "leveled", "warning",
     "Failed to program iptables"),
    # rabbitmq
    ("2026-12-03 10:22:41.118203+00:00 [warning] <0.526.0> memory resource limit alarm set", "leveled", "warning",
     "memory resource limit alarm set"),
    # fluent-bit
    ("[2026/11/24 14:04:13.596] [error] [input:tail:tail.0] inotify: watch limit reached", "leveled", "error",
     "inotify: watch limit reached"),
    # envoy
    ("[2026-12-03 10:35:12.448][1][warning][config] [source/grpc_stream.h:206] gRPC config stream closed", "leveled",
     "warning", "gRPC config stream closed"),
    # harbor
    ("2026-12-03T11:47:40Z [ERROR] [/controller/proxy/controller.go:295]: failed to pull blob", "leveled", "error",
     "failed to pull blob"),
    # linkerd proxy (Rust tracing with an uptime)
    ("[    3.114503s]  WARN ThreadId(01) linkerd_reconnect: Failed to connect", "leveled", "warning",
     "linkerd_reconnect: Failed to connect"),
    # Elixir
    ("10:41:07.622 [error] GenServer Billing.InvoiceWorker terminating", "leveled", "error",
     "GenServer Billing.InvoiceWorker terminating"),
    # php-fpm
    ("[03-Dec-2024 10:17:32] WARNING: [pool www] child 2841 exited on signal 11", "leveled", "warning",
     "child 2841 exited on signal 11"),
    # weave, sidekiq: level first, then a timestamp
    ("WARN: 2026/12/03 10:14:52.331902 TCP connection blocked by Weave NPC.", "leveled", "warning",
     "TCP connection blocked by Weave NPC."),
    ("INFO 2026-12-03T10:01:04.211Z pid=1 tid=2bk: Booted Rails", "leveled", "info", "pid=1 tid=2bk: Booted Rails"),
    # CLIs: kubectl, helm, node
    ("error: You must be logged in to the server (Unauthorized)", "leveled", "error",
     "You must be logged in to the server (Unauthorized)"),
    ("Warning: Immediate deletion does not wait for confirmation", "leveled", "warning",
     "Immediate deletion does not wait for confirmation"),
    ("Error: read ECONNRESET", "leveled", "error", "read ECONNRESET"),
    ("FATAL Unable to validate credentials", "leveled", "fatal", "Unable to validate credentials"),
    # product formats with their own level marks
    ("2026-12-03T10:00:04.611093Z 0 [Warning] [MY-010068] [Server] CA certificate ca.pem is self signed.", "mysql",
     "warning", "CA certificate ca.pem is self signed."),
    ("2026-12-03T10:00:02.201512Z 0 [ERROR] [MY-010119] [Server] Aborting", "mysql", "error", "Aborting"),
    ("1:M 14 Nov 2026 08:12:44.903 # WARNING Memory overcommit must be enabled!", "redis", "warning",
     "WARNING Memory overcommit must be enabled!"),
    ("1:C 03 Dec 2026 10:01:02.119 * Configuration loaded", "redis", "info", "Configuration loaded"),
    ("13:20:01.123456789: Warning Sensitive file opened for reading | file=/etc/shadow", "falco", "warning",
     "Sensitive file opened for reading | file=/etc/shadow"),
    ("debug 2026-12-03T10:12:40.775+0000 7f3c2a1ff640 -1 osd.3 2187 heartbeat_check: no reply", "ceph", "error",
     "osd.3 2187 heartbeat_check: no reply"),
    ("debug 2026-12-03T10:12:55.004+0000 7f3c2f9fe640  0 log_channel(cluster) log [WRN] : map e2190 wrongly marked me down",
     "ceph", "warning", "map e2190 wrongly marked me down"),
    ("fail: Microsoft.AspNetCore.Server.Kestrel[13] Connection id \"0HN8\": An unhandled exception was thrown", "dotnet",
     "error", "Connection id \"0HN8\": An unhandled exception was thrown"),
])
def test_leveled_text_formats(line, fmt, level, message):
    p = parse_line(line)
    assert (p.format, p.level, p.message) == (fmt, level, message)


@pytest.mark.parametrize("line", [
    "panic: runtime error: invalid memory address or nil pointer dereference",  # a Go panic is the message
    "debug mode enabled",
    "Error from server (NotFound): namespaces \"payments-stg\" not found",
    "2026/12/03 10:14:26 retrying in 2.871024 seconds",  # Go's log package: no level
    "main.go:74: error during command execution: no signatures found",
    "0/8 nodes are available: 1 Insufficient memory.",
    "Information is power",
    "WARNING",
    "ERROR",
    "2024-12-03T10:12:44: PM2 log: App [api:0] online",
    "2026-12-03 10:14:22 +0000 Rack app (\"GET /api/v1/orders\"): #<NoMethodError>",
])
def test_stays_plain(line):
    p = parse_line(line)
    assert p == ParsedLine(message=line)


# --- JSON additions --------------------------------------------------------------------------

def test_json_mongodb_severity():
    line = ('{"t":{"$date":"2026-12-03T10:31:05.017+00:00"},"s":"W","c":"REPL","id":21486,'
            '"ctx":"ReplCoord-5","msg":"Stepdown of primary failed"}')
    p = parse_line(line)
    assert (p.format, p.level, p.message) == ("json", "warning", "Stepdown of primary failed")
    assert "s" not in p.fields


def test_json_single_letter_s_is_not_a_level_elsewhere():
    assert parse_line('{"s": "E", "msg": "m"}').level is None


def test_json_dotnet_loglevel():
    p = parse_line('{"EventId":14,"LogLevel":"Information","Category":"Microsoft.Hosting.Lifetime","Message":"Now listening"}')
    assert (p.level, p.message) == ("info", "Now listening")


def test_json_without_message_field_still_reads_the_level():
    line = json.dumps({"level": "ERROR", "api": {"name": "SYSTEM.storage"}, "error": {"message": "Drive is faulty"}})
    p = parse_line(line)
    assert (p.format, p.message, p.fields, p.level) == ("json", line, {}, "error")


# --- levels ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("WRN", "warning"), ("INF", "info"), ("ERR", "error"), ("FTL", "fatal"), ("TRC", "debug"),
    ("ERRO", "error"), ("FATA", "fatal"), ("DEBU", "debug"), ("notice", "info"), ("emerg", "fatal"),
    ("FINE", "debug"), ("dbug", "debug"),
    ("E", None), ("W", None), ("I", None), ("verbose", None),  # single letters only inside their envelopes
])
def test_normalise_level_new_spellings(value, expected):
    assert normalise_level(value) == expected


# --- nesting ---------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, fmt, level, message", [
    ('time="2026-01-01T00:00:00Z" level=error msg="failed" error="EOF"', "cri+logfmt", "error", "failed: EOF"),
    ("[ERROR] plugin/errors: 2 db.svc. A: timeout", "cri+leveled", "error", "plugin/errors: 2 db.svc. A: timeout"),
    ("2026-12-03T14:26:10.010Z ERROR 1 --- [main] o.s.b.SpringApplication : Application run failed", "cri+java",
     "error", "Application run failed"),
    ("2026/12/03 10:05:19 [error] 31#31: *3120 upstream timed out", "cri+nginx", "error", "upstream timed out"),
])
def test_cri_wrapping_new_formats(payload, fmt, level, message):
    p = parse_line(f"{CRI_TS} stdout F {payload}")
    assert (p.format, p.level, p.message) == (fmt, level, message)
    assert p.fields["stream"] == "stdout"


def test_docker_wrapping_logfmt():
    p = parse_line(docker('level=warn msg="disk almost full"\n', stream="stderr"))
    assert (p.format, p.level, p.message) == ("docker+logfmt", "warning", "disk almost full")


def test_unwrapping_stops_at_max_depth():
    # CRI > docker > syslog: the syslog line is parsed, its payload is not unwrapped any further.
    inner = docker("Jun 24 15:10:52 host kubelet[1]: E0624 15:10:51.887699 1 x.go:1] boom")
    p = parse_line(f"{CRI_TS} stdout F {inner}")
    assert p.format == "cri+docker+syslog"
    assert p.message == "kubelet: E0624 15:10:51.887699 1 x.go:1] boom"


# --- robustness ------------------------------------------------------------------------------

def test_ansi_colours_are_stripped():
    p = parse_line("\x1b[31mERRO\x1b[0m[0001] colored \x1b[1mbold\x1b[0m text")
    assert (p.format, p.level, p.message) == ("logrus", "error", "colored bold text")
    assert parse_line("\x1b[32mplain green\x1b[0m").message == "plain green"


def _samples() -> list[str]:
    return [
        'time="2026-12-03T10:20:07Z" level=warning msg="x \\"y\\"" err="e"',
        "Jun 24 15:10:52 k8s-master kubelet[23084]: W0624 15:10:51.887699   23084 cni.go:171] msg",
        "Warning  FailedScheduling  61s (x5 over 3m1s)  default-scheduler  0/2 nodes are available",
        "3:05:26 PM  Warning  Failed   Failed to pull image",
        '2026-11-22T01:14:55.341Z\tinfo\tcaller.go:44\tStarting...\t{"error": "x"}',
        "2026-12-03T09:58:11.387Z  INFO 1 --- [app] [main] o.s.Logger : msg",
        "03-Dec-2026 18:40:03.215 WARNING [main] org.apache.Class.method msg",
        "[2026-12-03 09:59:58,004: ERROR/MainProcess] msg",
        "2026/12/03 10:05:19 [error] 31#31: *3120 msg",
        "2026-12-03 10:44:19.379 UTC [4133] app@orders FATAL:  msg",
        "<165>1 2003-10-11T22:14:15.003Z host app - - [a b=\"c\"] msg",
        "[ 2210.775001] msg", "157:I1103 14:17:19.868380 1 factory.go:445] msg",
        '{"t":{"$date":"x"},"s":"W","c":"REPL","msg":"m"}',
        "1:M 14 Nov 2026 08:12:44.903 # msg", "debug 2026-12-03T10:12:40.775+0000 7f3c2a1ff640 -1 msg",
    ]


def test_never_raises_on_mutated_lines():
    """Truncations and single-character mutations of every supported shape, through the parsers
    themselves (parse_line's last-resort guard is bypassed, so a parser bug fails here)."""
    rng = random.Random(1234)
    alphabet = ' \t[]{}"\\=:<>|/-#*.019aZTEWIF\x1b\u00e9'
    for line in _samples():
        for cut in range(len(line) + 1):
            for text in (line[:cut], line[cut:], line[:cut] + rng.choice(alphabet) + line[cut + 1:]):
                parsed = parsing._parse(text, 0)
                assert isinstance(parsed, ParsedLine) and isinstance(parsed.message, str)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert isinstance(parsing._parse(text, 0), ParsedLine)


@pytest.mark.parametrize("filler", [" ", "\t", "[", '"', "\\", "=", "a=", "[1]", " [INFO]", '{"a":', "x"])
def test_huge_lines_are_cheap_and_never_raise(filler):
    for prefix in ("2026-12-03T10:00:00Z", "[2026-12-03 10:00:00]", "Dec  3 10:00:00 h p:", 'time="x" level=info ',
                   "Warning  X  5m  kubelet  ", "2026-12-03T10:00:00Z\tinfo\t", "<34>1 ", "[ 1.2]", "INFO ", "{"):
        line = prefix + filler * 100_000
        start = time.perf_counter()
        parsed = parse_line(line)
        assert time.perf_counter() - start < 0.5, (prefix, filler)
        assert isinstance(parsed.message, str)


def test_parse_line_guard_turns_a_parser_bug_into_plain(monkeypatch):
    def boom(*args):
        raise RuntimeError("bug")
    monkeypatch.setattr(parsing, "_parse_envelope", boom)
    assert parse_line("  level=error msg=x  \n") == ParsedLine(message="level=error msg=x")


@pytest.mark.parametrize("line", [
    'time="2026-12-03T10:11:19Z" level=error msg="response completed with error" err.code="manifest invalid" '
    'err.message="manifest invalid" go.version=go1.23.7',
    json.dumps({"level": "error", "msg": "response completed with error", "error.message": "manifest invalid"}),
])
def test_dotted_error_message_keys_are_appended(line):
    assert parse_line(line).message == "response completed with error: manifest invalid"
