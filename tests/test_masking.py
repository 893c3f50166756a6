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


# ---- generalising rules (bench/keys.py measures them: keys per template, merges, cost) ------------

@pytest.mark.parametrize("message, expected", [
    # key=value whose key names a thing: logfmt, klog, quoted or not, JSON, dotted/underscored keys.
    ("user=postgres database=billing", "user=<VAL> database=<VAL>"),
    ('connection authorized: user="app" database="orders"', "connection authorized: user=<VAL> database=<VAL>"),
    ('"Failed to update lock" err="x" lock="kube-system/kube-scheduler"', '"Failed to update lock" err="x" lock=<VAL>'),
    ('{"namespace": "billing", "name": "invoice-worker-so"}', '{"namespace": <VAL>, "name": <VAL>}'),
    ("k8s_pod_name=etl-7d9f8b6c5-x2kqz k8s_ns_name=batch", "k8s_pod_name=<VAL> k8s_ns_name=<VAL>"),
    ("HPA.Namespace=web HPA.Name=frontend volumeID=vol-0abc", "HPA.Namespace=<VAL> HPA.Name=<VAL> volumeID=<VAL>"),
    ("&PodSandboxMetadata{Name:web-0,Namespace:shop,Attempt:1,}",
     "&PodSandboxMetadata{Name:<VAL>,Namespace:<VAL>,Attempt:<NUM>,}"),
    ("command=shred -u /data/x.sql terminal=34816", "command=<VAL> terminal=<NUM>"),
    ('http.request.useragent="docker/26.1.4 go/go1.21.11"', "http.request.useragent=<UA>"),
    # ... but not keys whose value means something, nor prose.
    ("database error", "database error"),
    ("reason=Evicted status=Running", "reason=Evicted status=Running"),
    ("Name: foo", "Name: foo"),
    ('msg="Reconciling" controller="deployment"', 'msg="Reconciling" controller="deployment"'),
    # Quoted names after the noun that says what they name.
    ('volume "data" not found', 'volume "<VAL>" not found'),
    ('secrets "db-creds" is forbidden: User "system:anonymous" cannot get resource "secrets"',
     'secrets "<VAL>" is forbidden: User "<VAL>" cannot get resource "secrets"'),
    ("ERROR: relation 'users' does not exist", "ERROR: relation '<VAL>' does not exist"),
    ('failed to parse "true" as bool', 'failed to parse "true" as bool'),
    # Unquoted names after such a noun, when they cannot be English: namespace/name or hyphenated.
    ("Started container orders-api", "Started container <VAL>"),
    ("Successfully assigned payments/web-7d9f8b6c5-x2kqz to node-1", "Successfully assigned <VAL> to <POD>"),
    ("didn't match pod anti-affinity rules", "didn't match pod anti-affinity rules"),
    ("pod sandbox changed, it will be killed", "pod sandbox changed, it will be killed"),
    ("pod web-7d9f8b6c5-x2kqz failed", "pod <POD> failed"),
    # sshd / su / pam user names.
    ("session closed for user root", "session closed for user <VAL>"),
    ("Invalid user admin from 10.0.0.1 port 22", "Invalid user <VAL> from <IP> port <NUM>"),
    ("user not found", "user not found"),
    # Block and network devices; /dev/... stays a path.
    ("Buffer I/O error on dev nvme0n1, logical block 52428800", "Buffer I/O error on dev <DEV>, logical block <NUM>"),
    ("EXT4-fs (sda1): error", "EXT4-fs (<DEV>): error"),
    ("XFS (dm-0): Metadata corruption", "XFS (<DEV>): Metadata corruption"),
    ("eth0: link up", "<DEV>: link up"),
    ("mount /dev/sda1 on /mnt/data failed", "mount <PATH> on <PATH> failed"),
    ("sdk version mismatch, md5 checksum mismatch", "sdk version mismatch, md5 checksum mismatch"),
    # User agents.
    ('"GET /wp-login.php HTTP/1.1" 404 153 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 '
     '(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"', '"GET /wp-login.php HTTP/<NUM>" <404> <NUM> "-" "<UA>"'),
    ('GET /healthz 200 "kube-probe/1.29"', 'GET /healthz <NUM> "<UA>"'),
    # Durations and sizes are numbers, however many units and digits.
    ("backoff 1h30m then 350ms", "backoff <NUM> then <NUM>"),
    ("Reconciliation finished in 2.318504127s, next run in 10m0s",
     "Reconciliation finished in <NUM>, next run in <NUM>"),
    ("available: 2897340Ki of 3.5GiB, wrote 512MB (1.23 KB)", "available: <NUM> of <NUM>, wrote <NUM> (<NUM>)"),
    ("Back-off pulling image (x18 over 7m)", "Back-off pulling image (x<NUM> over <NUM>)"),
    # IPv6 the 3-groups rule misses; C++/ObjC scopes are not addresses.
    ("listen on [::1]:8080", "listen on [<IP>]:<NUM>"),
    ("fe80::1%eth0 up, from 2001:db8::1 and ::ffff:10.0.0.1", "<IP> up, from <IP> and <IP>"),
    ("std::string in CCFile::copyFile", "std::string in CCFile::copyFile"),
    # MAC addresses and longer colon-hex hardware ids.
    ("BSSID changed to 5c:50:15:4c:18:13", "BSSID changed to <MAC>"),
    ("chip FF:F2:9F:16:BF:6C:00:0D:60:E9:40:93 inserted", "chip <MAC> inserted"),
    # A path with a UUID inside is one path.
    ("volume /var/lib/kubelet/pods/0f1e2d3c-4b5a-4978-8a1b-0c9d8e7f6a5b/volumes/kubernetes.io~csi/mount",
     "volume <PATH>"),
    # Container images.
    ('Pulling image "registry.internal.acme.io/payments/api:v2.14.3"', 'Pulling image "<IMAGE>"'),
    ('Failed to pull image "nginx:1.25.3": not found', 'Failed to pull image "<IMAGE>": not found'),
    ("image pull failed for harbor.corp.local/ml/trainer:0.9.4 because", "image pull failed for <IMAGE> because"),
    ("k8s.io/client-go/tools/cache/reflector.go:229: watch failed",
     "<HOST>/client-go/tools/cache/reflector.<ID> watch failed"),
    # Envelope pieces inside a message: a klog header (its level letter kept), a syslog host.
    ("kubelet[2345]: E1203 10:14:07.551203 pod_workers.go:1298] x", "kubelet[<NUM>]: E<TS> pod_workers.<ID>] x"),
    ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: session opened",
     "<TS> <HOST> sshd(pam_unix)[<NUM>]: session opened"),
    # Numbered names (StatefulSet pods, nodes), namespaced pods, Erlang pids, Windows programs.
    ("pod postgres-0 restarted on worker-a12", "pod <POD> restarted on <POD>"),
    ("invalid utf-8 sequence", "invalid utf-<NUM> sequence"),
    ("flow payments/web-7d9f8b6c5-x2kqz:8080 -> 10.0.0.1:53", "flow <POD>:<NUM> -> <IP>"),
    ("<0.1234.0> exited", "<ID> exited"),
    ("chrome.exe *64 - proxy.example.com:5070 close", "<VAL> - <HOST> close"),
    # A list of values of one kind is one variable.
    ("Supported channels 1 6 11 36 40", "Supported channels <NUM>"),
    # HTTP status codes are still kept.
    ("after status: 404 Not Found", "after status: <404> Not Found"),
])
def test_generalising_rules(message, expected):
    assert mask_message(message) == expected


@pytest.mark.parametrize("a, b", [
    ("user=postgres database=billing", 'user="app_rw" database=orders'),
    ("Started container orders-api", "Started container log-shipper"),
    ('volume "data" not found', 'volume "scratch-space" not found'),
    ("Buffer I/O error on dev nvme0n1", "Buffer I/O error on dev sdb"),
    ("took 350ms", "took 1h2m3.5s"),
    ('Pulling image "nginx:1.25.3"', 'Pulling image "ghcr.io/acme/checkout-worker:1.8.0"'),
    ('GET / 200 "curl/8.5.0"',
     'GET / 200 "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15"'),
    ("connect to ::1 failed", "connect to 10.0.0.1 failed"),
    ("pod postgres-0 evicted", "pod web-7d9f8b6c5-x2kqz evicted"),
    ("Jun 14 15:16:01 combo sshd[1]: x", "Dec  3 10:00:00 ip-10-0-3-17 sshd[42]: x"),
])
def test_new_variables_collapse_to_one_key(a, b):
    assert mask_message(a) == mask_message(b)


def test_value_rules_keep_the_mask_rules_interface():
    """training/corpus/augment.py calls pattern.sub(function, text) on every rule and reads m.group(0):
    a ValueRule's match is its value only, so an identity replacement changes nothing."""
    from service.masking import MASK_RULES

    text = ('pod="payments/ledger-0" volume "data" Started container orders-api for user root '
            'kubelet[1]: E1203 10:14:07.551203 x (x5 over 3m) chrome.exe')
    seen = []
    for _, pattern in MASK_RULES:
        assert pattern.sub(lambda m: m.group(0), text) == text
        pattern.sub(lambda m: seen.append(m.group(0)) or m.group(0), text)
    assert {'"payments/ledger-0"', "data", "orders-api", "root", "1203 10:14:07.551203", "5"} <= set(seen)


# ---- over the shared corpora (skipped without ../shared/data) ---------------------------------

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _bench_keys():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_keys", Path(__file__).resolve().parents[1] / "bench" / "keys.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpora():
    if not (SHARED_DATA / "k8s_labels.csv").exists() or not (SHARED_DATA / "loghub").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    bench = _bench_keys()
    rows = bench.load_k8s()
    lines, _ = bench.k8s_lines(rows, 2, 0, envelope=True)  # each row's line and two resampled renderings
    return bench, rows, lines, bench.load_loghub()


def test_masking_is_idempotent_on_the_corpora(corpora):
    _, rows, lines, loghub = corpora
    messages = [parse_line(line).message for rendered in lines.values() for line in rendered]
    messages += [parse_line(line).message for _, _, line in loghub]
    for message in messages:
        masked = mask_message(message)
        if len(masked) < MAX_TEMPLATE_CHARS:  # a cut key may end in half a token, which masks anew
            assert mask_message(masked) == masked, message


def test_no_differently_labelled_templates_share_a_key(corpora):
    """k8s_labels.csv rows (their line and renderings with fresh values) and every Loghub line: a key holding
    templates the teacher labelled differently is allowed only where no masker could part them: the data
    has the same template text twice, or the parser hands the masker the same message for both."""
    bench, rows, lines, loghub = corpora
    by_id = {row["id"]: row for row in rows}
    labels = {("k8s", rid): row["label"] for rid, row in by_id.items()}
    labels.update({("loghub", f"{s}:{e}"): label for (s, e), label in bench.load_loghub_labels().items()})
    texts = {("k8s", rid): " ".join(row["template"].split()) for rid, row in by_id.items()}
    texts.update({("loghub", f"{s}:{e}"): " ".join(t.split())
                  for (s, e), t in bench.load_loghub_templates().items()})
    holders: dict[str, set] = {}
    for rid, rendered in lines.items():
        for line in rendered:
            holders.setdefault(template_key(parse_line(line)), set()).add(("k8s", rid))
    for system, event, line in loghub:
        holders.setdefault(template_key(parse_line(line)), set()).add(("loghub", f"{system}:{event}"))
    conflicts = []
    for key, templates in holders.items():
        if len({labels.get(t) for t in templates}) < 2 or len({texts.get(t) for t in templates}) == 1:
            continue
        if all(c == "k8s" for c, _ in templates) and len({parse_line(by_id[t]["line"]).message
                                                          for _, t in templates}) == 1:
            continue
        conflicts.append((key, sorted(templates)))
    assert conflicts == []
