"""Variable masking: what is replaced, what is kept, and that variables collapse into one key."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.masking import MAX_TEMPLATE_CHARS, mask_message, template_key
from service.parsing import ParsedLine, parse_line

SHARED_LOGHUB = Path(__file__).resolve().parents[2] / "shared/data/loghub"
UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize("message, expected", [
    # IPv4, with and without a port, and at the end of a sentence.
    ("connect to 10.0.0.12 failed", "connect to <IP> failed"),
    ("connect to 10.0.0.12:8080 failed", "connect to <IP> failed"),
    ("dial tcp 10.96.0.1:443: connect: connection refused", "dial tcp <IP>: connect: connection refused"),
    ("Failed password for root from 192.168.1.77 port 22 ssh2",
     "Failed password for root from <IP> port <NUM> ssh2"),
    ("could not reach 10.0.0.1.", "could not reach <IP>."),
    ("could not reach 10.0.0.1:5432.", "could not reach <IP>."),
    # UUID
    (f"request {UUID} done", "request <UUID> done"),
    (f"request {UUID.upper()} done", "request <UUID> done"),
    # Timestamps: ISO, BGL, clock time.
    ("at 2024-06-12T10:01:02.123456789Z started", "at <TS> started"),
    ("at 2024-06-12T10:01:02+02:00 started", "at <TS> started"),
    ("at 2024-06-12 10:01:02,123 started", "at <TS> started"),
    ("2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO", "<TS> <ID> RAS KERNEL INFO"),
    ("sync at 10:01:02 done", "sync at <TS> done"),
    ("sync at 10:01:02.517 done", "sync at <TS> done"),
    # Hex: 0x-prefixed and long hex ids (which need at least one digit and one letter).
    ("fault at address 0xdeadbeef", "fault at address <HEX>"),
    ("fault at address 0x7FFF0000", "fault at address <HEX>"),
    ("trace 5f2a9c1b7e4d3a60 sampled", "trace <HEX> sampled"),
    ("container 3f4e1a2b9c8d7e6f5a4b3c2d1e0f9a8b created", "container <HEX> created"),
    # Kubernetes pod names.
    ("pod web-7d9f8b6c5-x2kqz failed", "pod <POD> failed"),
    ("pod nginx-deployment-66b6c48dd5-4jw2r ready", "pod <POD> ready"),
    ("pod fluentd-x2kqz restarted", "pod <POD> restarted"),
    ("job backup-28190400-abcde complete", "job <POD> complete"),
    (f"Killing web-7d9f8b6c5-x2kqz_default({UUID})", "Killing <POD>_default(<UUID>)"),
    (f"Killing fluentd-x2kqz_kube-system({UUID})", "Killing <POD>_kube-system(<UUID>)"),
    # Paths.
    ("open /var/log/app/server.log: permission denied", "open <PATH>: permission denied"),
    ("mount /dev/sda1 on /mnt/data/ failed", "mount <PATH> on <PATH> failed"),
    # Numbers, with units.
    ("memory limit 512Mi exceeded", "memory limit <NUM> exceeded"),
    ("request took 12ms", "request took <NUM>"),
    ("backoff 3.5s then retry 3 times", "backoff <NUM> then retry <NUM> times"),
    ("disk 97% full", "disk <NUM>% full"),
    ("pid=1234 uid=0 delta=-5", "pid=<NUM> uid=<NUM> delta=<NUM>"),
    # HTTP status codes are kept, marked.
    ("upstream returned 500", "upstream returned <500>"),
    ("request denied status=403", "request denied status=<403>"),
    ("status code 200", "status code <200>"),
    ("response: 503 from backend", "response: <503> from backend"),
    ('"GET /api/v1/pods HTTP/1.1" 404 512', '"GET <PATH> HTTP/<NUM>" <404> <NUM>'),
    # Words are left alone.
    ("the service is down", "the service is down"),
    ("EXT4-fs error on ext4 filesystem", "EXT4-fs error on ext4 filesystem"),
    ("kube-proxy and node-exporter started in kube-system", "kube-proxy and node-exporter started in kube-system"),
    ("cafebabe is a word here", "cafebabe is a word here"),
    ("CrashLoopBackOff: back-off restarting failed container",
     "CrashLoopBackOff: back-off restarting failed container"),
    # Whitespace collapsed and trimmed.
    ("  a   b\t\tc \n d  ", "a b c d"),
    ("", ""),
])
def test_mask_message(message, expected):
    assert mask_message(message) == expected


@pytest.mark.parametrize("message", ["<NUM> literal", "a <b> c", "<IP> <UUID> <POD>"])
def test_placeholders_are_stable(message):
    assert mask_message(message) == message
    assert mask_message(mask_message(message)) == mask_message(message)


@pytest.mark.parametrize("message", [
    "x" * (MAX_TEMPLATE_CHARS * 10),
    "word " * 1000,
    "10.0.0.1 " * 500,
])
def test_key_length_is_capped(message):
    masked = mask_message(message)
    assert len(masked) <= MAX_TEMPLATE_CHARS
    assert masked == masked.strip()


def test_cap_keeps_the_start():
    masked = mask_message("FATAL disk failure " + "y" * 5000)
    assert masked.startswith("FATAL disk failure y")
    assert len(masked) == MAX_TEMPLATE_CHARS


@pytest.mark.parametrize("a, b", [
    ("Connection to 10.0.0.1:5432 timed out after 30s (attempt 3)",
     "Connection to 192.168.100.200:6543 timed out after 5s (attempt 12)"),
    (f"Killing container app in pod web-7d9f8b6c5-x2kqz_default({UUID}) with exit code 1",
     "Killing container app in pod api-66b6c48dd5-4jw2r_default(00000000-1111-2222-3333-444444444444) "
     "with exit code 2"),
    ("2005-06-03-15.42.50.675872 instruction cache parity error corrected",
     "2005-07-11-01.02.03.000001 instruction cache parity error corrected"),
    ("pod fluentd-x2kqz: readiness probe failed at 10:01:02",
     "pod fluentd-9z7mq: readiness probe failed at 23:59:59"),
    ("segfault at 0x7f3a2b1c ip 00007f3a2b1c4d5e sp 00007ffd1234abcd error 4",
     "segfault at 0x0 ip 00005555deadbeef sp 00007ffc9876fedc error 6"),
    ("write /var/lib/docker/overlay2/abc/merged/tmp/x.log: no space left on device (512Mi)",
     "write /data/postgres/base/16384/2619: no space left on device (1.5Gi)"),
    ("upstream returned 503 for trace 5f2a9c1b7e4d3a60",
     "upstream returned 503 for trace 0a1b2c3d4e5f6789"),
])
def test_variables_collapse_to_one_key(a, b):
    assert template_key(parse_line(a)) == template_key(parse_line(b))


@pytest.mark.parametrize("a, b", [
    ("upstream returned 500", "upstream returned 403"),
    ("connection refused", "connection reset"),
])
def test_meaningful_differences_survive(a, b):
    assert template_key(parse_line(a)) != template_key(parse_line(b))


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "fatal"])
def test_template_key_prefixes_level(level):
    p = ParsedLine(message="disk full on 10.0.0.1", level=level)
    assert template_key(p) == f"[{level}] disk full on <IP>"


def test_template_key_without_level_is_the_masked_message():
    assert template_key(ParsedLine(message="disk full on 10.0.0.1")) == "disk full on <IP>"


def test_template_key_from_envelopes():
    klog = "E0612 10:01:02.123456    1234 pod_workers.go:1298] Error syncing pod web-7d9f8b6c5-x2kqz"
    assert template_key(parse_line(klog)) == "[error] Error syncing pod <POD>"
    cri = '2024-06-12T10:01:02.1Z stdout F {"level":"WARN","msg":"retry 3 of 5"}'
    assert template_key(parse_line(cri)) == "[warning] retry <NUM> of <NUM>"


def test_level_is_part_of_the_key():
    info = template_key(ParsedLine(message="shutting down", level="info"))
    fatal = template_key(ParsedLine(message="shutting down", level="fatal"))
    assert info != fatal


@pytest.mark.parametrize("message", ["version 1.2.3.4.5 released", "build 10.0.0.12.7", "v1.2.3.4-rc1"])
def test_dotted_versions_are_not_ips(message):
    assert "<IP>" not in mask_message(message)


def test_rule_guards_never_change_a_key(monkeypatch):
    """RULE_NEEDS only skips regexes that cannot match: keys with and without it are identical."""
    from service import masking
    from training.corpus import k8s_corpus
    lines = []
    for path in sorted(SHARED_LOGHUB.glob("*/*_2k.log")):
        lines += path.read_text(encoding="utf-8", errors="replace").splitlines()[:300]
    seeds, slots = k8s_corpus.load_seed_templates()
    lines += [raw for raw, _, _ in k8s_corpus.generate_lines(seeds, slots, 3, 0)]
    messages = [parse_line(line).message for line in lines]
    guarded = [masking.mask_message(m) for m in messages]
    monkeypatch.setattr(masking, "RULE_NEEDS", {})
    assert [masking.mask_message(m) for m in messages] == guarded
    assert len(messages) > 800
