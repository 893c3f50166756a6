"""Does masking generalise? Distinct template keys per template, merges, and masking cost.

    .venv/bin/python bench/keys.py --tag after     # → bench/results/keys.json (runs[tag]) and keys.md
    .venv/bin/python bench/keys.py --tag before --parser-rev REV --masker-rev REV --reference-masker-rev REV

1. k8s_labels.csv: each row's `line` and K more renderings of it with its variables resampled.
   The variables are found WITHOUT the masker (that would be circular): the row's `template`
   (variables as `<*>`) is turned into a regex of its literal pieces and searched in the raw line
   (structured fields the template appends, "msg k=<*>", and containerd's "X [error: Y]", are found
   one by one, anywhere in the line). Rows whose template does not align are counted and listed, not
   silently dropped: they keep their one original line, which gives them one key.
   Each captured value gets a fresh value of the same shape: digits by digits, hex by hex, an IP an
   IP, a UUID a UUID, a date a valid date, a device a device, a user agent another one, a duration or
   size keeps its unit, a k8s pod suffix draws from Kubernetes' alphabet. A single-token value's
   lower-case words become other names ("orders-api" -> "billing-edge") unless they are all words the
   templates themselves use as literal text two times or more (then it is taken for an enumeration:
   "state is offline", "Backend type: vxlan"); in free text (a value with spaces, a nested error)
   only numbers and hex ids change. HTTP status codes in their context are kept (the masker keeps
   them on purpose). Numbers and dates in the envelope around the aligned parts (timestamps, pids,
   ages, counts) are redrawn too; `k8s_values_only` in the JSON is the same without that.
   Key = template_key(parse_line(line)); one template should give one key.
2. Loghub: the nine `<System>_2k.log` files joined by LineId to their structured CSV (EventId):
   distinct keys per EventId.
3. Merges: keys that hold lines of two or more templates (k8s `id`, Loghub (system, EventId)),
   over both corpora together; "conflicting" when the templates' labels differ (k8s `label`,
   Loghub loghub_labels.csv), split by cause: the data holds the same template text twice (no
   masker can part them), the parser hands the masker the same message for both, or the masker.
   The masker's must be 0.
4. mask_message cost: µs per call over the parsed messages of all k8s lines, best of 3; with
   --reference-masker-rev, that masker is timed too, in turns, in the same process (the machine is
   shared, so only side-by-side figures compare).

The rendered lines depend only on the data and the seed (never on the parser or the masker), so runs
before and after a change to either measure the same lines.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import re
import subprocess
import sys
import time
import types
import uuid
from collections import Counter, defaultdict
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))

SHARED = REPO.parent / "shared" / "data"
OUT_JSON = BENCH_DIR / "results" / "keys.json"
TARGET = 1.1
csv.field_size_limit(1 << 24)
# The renderer keeps HTTP status codes (the masker keeps them on purpose). A frozen copy of
# service.masking.HTTP_STATUS_RE as of this bench's writing, so the rendered lines never depend on the
# masker under test.
STATUS_RE = re.compile(r"(?i)\b(status(?:[ _]?code)?|code|returned|response|http/\d(?:\.\d)?\"?)([\s=:]+)([1-5]\d\d)\b")


def load_module(name: str, path: str, rev: str | None) -> types.ModuleType:
    """service/<path> from the working tree (rev None) or from `git show rev:path`, checking nothing out."""
    if rev is None:
        module = __import__(name, fromlist=["_"])
        return module
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(f"{name}@{rev}")
    module.__file__ = f"<{rev}:{path}>"
    sys.modules[module.__name__] = module  # dataclasses look their module up while building the class
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module

# ---------------------------------------------------------------------------------------------
# Aligning a template to its line

_WS = r"(?:\s|\\[tn])+"
_OPT_QUOTE = r"(?:\\*[\"'])?"
# A value that starts the template: one token, not a quote/brace/equals (else it would swallow the envelope).
_LEAD = r"([^\s\"'={}]+?)"
_MID = r"(.*?)"
# A value that ends the template: up to a closing quote (JSON / logfmt / quoted message) or else to
# the end of the line (tab-separated fields after it: zap console).
_TAIL_QUOTED = r"(.+?)(?=\\*\"(?:[\s,}\]]|$))"
_TAIL_LINE = r"(.+?)(?=\t|\s*$)"


def _literal(piece: str) -> str:
    out = []
    for chunk in re.split(r"(\s+)", piece):
        if not chunk:
            continue
        if chunk.isspace():
            out.append(r"\\*[\"']?" + _WS + r"\\*[\"']?")
        else:
            out.append("".join(r'\\*"' if c == '"' else re.escape(c) for c in chunk))
    return "".join(out)


def template_regexes(template: str) -> list[re.Pattern]:
    """Candidate regexes for a template, most specific first; each group is one `<*>`."""
    pieces = template.strip().split("<*>")
    if len(pieces) == 1:
        return []
    variants = []
    for tail in (_TAIL_QUOTED, _TAIL_LINE):
        parts = []
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            if piece:
                parts.append(_literal(piece))
            if i < last:
                if i == 0 and not piece:
                    group = _LEAD
                elif i == last - 1 and not pieces[last].strip():
                    group = tail
                else:
                    group = _MID
                parts.append(_OPT_QUOTE + group + _OPT_QUOTE)
        variants.append("".join(parts))
    return [re.compile(v, re.DOTALL) for v in dict.fromkeys(variants)]


_ERROR_SUFFIX_RE = re.compile(r"^(.*?),? (?:error )?\[error: (.*)\]$", re.DOTALL)
_FIELDS_RE = re.compile(r"((?:\s+[\w.-]+=(?:\"[^\"]*\"|\S+))+)\s*$")
_FIELD_RE = re.compile(r"([\w.-]+)=(\"[^\"]*\"|\S+)")


def split_template(template: str) -> list[str]:
    """A template as independently aligned parts: the message, then structured fields the template
    writer appended (containerd's "X failed [error: Y]" for msg="X failed" error="Y"; trailing
    key=<*> pairs, which the line may carry in any order, as logfmt or JSON)."""
    parts = []
    m = _ERROR_SUFFIX_RE.match(template.strip())
    if m:
        template, error = m.groups()
        parts.append(error)
    fields = _FIELDS_RE.search(template)
    if fields and fields.start() > 0:
        parts = [*(f"{k}={v}" for k, v in _FIELD_RE.findall(fields.group(1))), *parts]
        template = template[:fields.start()]
    return [template, *parts]


def _field_regex(field: str) -> re.Pattern | None:
    name, value = field.split("=", 1)
    if value != "<*>":
        return None
    # key=value / key="value" (logfmt, hclog), "key": value (JSON), \"key\":\"value\" (JSON in a string).
    return re.compile(r'(?<![\w.-])(?:"|\\")?' + re.escape(name) + r'(?:"|\\")?\s*([=:])\s*'
                      r'(?:"((?:[^"\\]|\\.)*)"|\\"((?:[^"\\]|\\[^"])*)\\"|([^\s,}\]"]+))')


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < e and s < span[1] for s, e in taken)


Span = tuple[int, int]


def _align_one(part: str, line: str, taken: list[Span]) -> tuple[list[Span], Span] | None:
    """(value spans, whole span) of one template part in the line, clear of the parts already aligned."""
    rx = _field_regex(part) if re.fullmatch(r"[\w.-]+=<\*>", part) else None
    if rx is not None:
        found = [m for m in rx.finditer(line) if not _overlaps(m.span(), taken)]
        if not found:
            return None
        m = min(found, key=lambda m: m.group(1) != "=")  # key=value before key: value
        group = next(i for i in (2, 3, 4) if m.group(i) is not None)
        return [m.span(group)], m.span()
    if "<*>" not in part:
        found = [m for m in re.finditer(_literal(part.strip()), line) if not _overlaps(m.span(), taken)]
        return ([], found[0].span()) if found else None
    for rx in template_regexes(part):
        for m in rx.finditer(line):
            if not _overlaps(m.span(), taken):
                return [m.span(i) for i in range(1, rx.groups + 1)], m.span()
    return None


def align(template: str, line: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """(spans of the template's `<*>` values in the line, the spans of the aligned parts), or None when
    the template does not align."""
    spans, taken = [], []
    for part in split_template(template):
        if not part.strip():
            continue
        got = _align_one(part, line, taken)
        if got is None:
            return None
        values, whole = got
        taken.append(whole)
        spans += values
    if not taken:
        return None
    return spans, taken


# ---------------------------------------------------------------------------------------------
# Fresh values of the same shape

NAME_WORDS = ("orders", "payments", "cart", "auth", "search", "billing", "ledger", "web", "api", "worker",
              "frontend", "backend", "gateway", "inventory", "checkout", "reports", "analytics", "shop",
              "alpha", "beta", "gamma", "delta", "edge", "core", "batch", "etl", "mailer", "profile")
USER_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
               "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/17.4 Safari/605.1.15",
               "curl/8.5.0", "kube-probe/1.29", "Go-http-client/1.1", "python-requests/2.31.0",
               "Prometheus/2.51.2", "okhttp/4.12.0", "Wget/1.21.4", "Apache-HttpClient/4.5.14 (Java/17.0.10)")
KEEP_WORDS = {"true", "false", "null", "nil", "none", "yes", "no", "on", "off", "enabled", "disabled",
              "tcp", "udp", "http", "https", "grpc", "get", "post", "put", "delete", "patch", "head", "inbound",
              "outbound", "info", "debug", "warn", "warning", "error", "fatal", "trace", "stdout", "stderr"}
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
IPV4_RE = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?")
UA_RE = re.compile(r"(?:Mozilla|curl|Wget|kube-probe|Go-http-client|python-requests|okhttp|Prometheus|"
                   r"Apache-HttpClient|Blackbox Exporter|ELB-HealthChecker|GoogleHC|axios|node-fetch)/\d")
RUN_RE = re.compile(r"[A-Za-z0-9]+")
# Words with digits that are not variables.
KEEP_RUNS = {"sha1", "sha256", "sha512", "md5", "k8s", "k3s", "x509", "utf8", "utf16", "ipv4", "ipv6", "int32",
             "int64", "uint32", "uint64", "float64", "http2", "h2", "h2c", "s3", "ec2", "e2e", "base64", "oauth2",
             "x86", "x64", "amd64", "arm64", "aarch64", "i386", "i686", "p2p", "2fa", "mp4", "ext4", "ext3", "l4",
             "l7", "p99", "p95", "p50", "5xx", "4xx", "2xx", "3xx", "1xx", "iso8601", "rfc3339", "gzip2", "bz2",
             "go1", "tcp4", "tcp6", "udp4", "udp6", "accept4", "dup2", "dup3", "pipe2", "wait4", "gp2", "gp3",
             "io1", "io2", "st1", "sc1", "v1", "v2", "v3", "v1beta1", "v1beta2", "v1alpha1", "v2beta2",
             "resize2fs", "mkfs", "ec2imds", "log4j", "slf4j", "w3c", "b64", "sha1sum", "k8sio"}
EMBEDDED_RE = re.compile(UUID_RE.pattern + r"|(?<![\d.])" + IPV4_RE.pattern + r"(?![\d.])")
HEX_LOWER = "0123456789abcdef"


_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# Date and time shapes, redrawn as valid dates and times (a stricter parser may check them).
TIME_SHAPES_RE = re.compile(
    r"(?P<y>\d{4})(?P<s1>[-/])(?P<mo>\d{2})(?P=s1)(?P<d>\d{2})"
    r"|(?<!\d)(?P<h>\d{2}):(?P<mi>\d{2}):(?P<se>\d{2})(?!\d)"
    r"|\b(?P<klog>[IWEF])(?P<kmo>\d{2})(?P<kd>\d{2})(?= \d{2}:)"
    rf"|(?P<dd>\d{{2}})(?P<s2>[-/])(?P<mon>{_MONTHS})(?P=s2)(?P<yy>\d{{4}})"
    rf"|\b(?P<mon2>{_MONTHS})(?P<sp> +)(?P<d2>\d{{1,2}})\b")


def _valid_time(m: re.Match, rng: random.Random) -> str:
    g = m.groupdict()
    day = lambda: f"{rng.randint(1, 28):02d}"  # noqa: E731
    if g["y"]:
        return f"{rng.randint(2019, 2026)}{g['s1']}{rng.randint(1, 12):02d}{g['s1']}{day()}"
    if g["h"]:
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    if g["klog"]:
        return f"{g['klog']}{rng.randint(1, 12):02d}{day()}"
    if g["dd"]:
        return f"{day()}{g['s2']}{g['mon']}{g['s2']}{rng.randint(2019, 2026)}"
    new = rng.randint(1, 9) if len(g["d2"]) == 1 else rng.randint(10, 28)
    return f"{g['mon2']}{g['sp']}{new}"


def redraw_digits(text: str, rng: random.Random, keep=lambda start, end: False) -> str:
    """Dates and times redrawn as valid ones, numbers and hex ids as random ones of their length (runs
    where keep(start, end) is true stay)."""
    out, pos = [], 0
    for m in TIME_SHAPES_RE.finditer(text):
        out.append(_other_digits(text, pos, m.start(), rng, keep))
        out.append(_valid_time(m, rng))
        pos = m.end()
    out.append(_other_digits(text, pos, len(text), rng, keep))
    return "".join(out)


_ENVELOPE_NUMBER_RE = re.compile(r"x?\d+(?:ms|s|m|h|d)?(?:\d+(?:ms|s|m|h))*|[0-9a-f]{6,}|[0-9A-F]{6,}")


def _other_digits(text: str, start: int, end: int, rng: random.Random, keep) -> str:
    """Numbers (counts, pids, ages "5m12s", "(x3 over") and hex ids redrawn; digits inside words
    ("linkerd2_proxy", "PM2", "ip6tables", "HY000") are part of the word and stay."""
    def one(m):
        run = m.group()
        if run.lower() in KEEP_RUNS or keep(start + m.start(), start + m.end()):
            return run
        if not _ENVELOPE_NUMBER_RE.fullmatch(run):
            return run
        if re.fullmatch(r"[0-9a-fA-F]{6,}", run) and not run.isdigit():
            return "".join(rng.choice(HEX_LOWER.upper() if run.isupper() else HEX_LOWER) for _ in run)
        return _digits(run, rng)
    return re.sub(r"[A-Za-z]*\d[A-Za-z0-9]*", one, text[start:end])


def _digits(run: str, rng: random.Random) -> str:
    out = []
    for i, c in enumerate(run):
        if c == "0" and run[i + 1:i + 2] in ("x", "X"):  # 0x prefix
            out.append(c)
        elif c.isdigit():
            # A number keeps a non-zero lead (so it keeps its length's meaning: "05" stays 0-led).
            lo = 1 if i == 0 and c != "0" and len(run) > 1 and run[:2].isdigit() else 0
            out.append(str(rng.randint(lo, 9)))
        else:
            out.append(c)
    return "".join(out)


K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes draws pod-name suffixes from


def _shape_run(run: str, rng: random.Random, names: bool, free: bool, prev: str, nxt: str) -> str:
    """A fresh alphanumeric run of the same kind; lower-case words become other names when `names`.
    In free text only numbers and hex ids change: "EDNS0", "linkerd2_proxy", "HY000" are words there."""
    has_digit = any(c.isdigit() for c in run)
    if run.lower() in KEEP_RUNS:
        return run
    if has_digit and prev == "-" and len(run) == 5 and all(c in K8S_ALPHABET for c in run):
        return "".join(rng.choice(K8S_ALPHABET) for _ in run)
    if has_digit and free and not run.isdigit() and not (
            len(run) >= 6 and re.fullmatch(r"[0-9a-fA-F]+", run) and re.search("[a-fA-F]", run)):
        return run
    if has_digit:
        if len(run) >= 6 and re.fullmatch(r"[0-9a-f]+", run) and re.search("[a-f]", run):
            return "".join(rng.choice(HEX_LOWER) for _ in run)
        if len(run) >= 6 and re.fullmatch(r"[0-9A-F]+", run) and re.search("[A-F]", run):
            return "".join(rng.choice(HEX_LOWER.upper()) for _ in run)
        return _digits(run, rng)  # letters (units, device and pod-name parts) stay
    if not names or not run.islower() or run in KEEP_WORDS or prev == "." or nxt.startswith("://"):
        return run
    if len(run) <= 2:
        return run
    return rng.choice(NAME_WORDS)


_VOCAB: set[str] | None = None


def vocabulary() -> set[str]:
    """Lower-case words of the templates' literal text (outside `<*>`) found in two templates or more.
    A value made only of such words is taken for an enumeration ("state is offline", "Backend type:
    vxlan") and kept: redrawing it would make a different message, not a different variable."""
    global _VOCAB
    if _VOCAB is None:
        counts = Counter()
        for row in load_k8s():
            literal = " ".join(row["template"].split("<*>")).lower()
            counts.update(set(re.findall(r"[a-z]+", literal)))
        _VOCAB = {w for w, n in counts.items() if n >= 2}
    return _VOCAB


def _name_like(token: str) -> bool:
    """A token with a lower-case word that the templates never use as literal text: a name."""
    return any(len(m.group()) > 2 and m.group() not in vocabulary() and m.group() not in KEEP_WORDS
               for m in re.finditer(r"(?<![.a-zA-Z])[a-z]+(?![a-zA-Z]|://)", token))


def _shape(token: str, rng: random.Random, free: bool = False) -> str:
    """A token redrawn run by run: a value of its own (names too), or a word of free text (free)."""
    names = not free and _name_like(token)
    out, pos = [], 0
    for m in EMBEDDED_RE.finditer(token):
        out.append(_shape_runs(token[pos:m.start()], rng, names, free))
        out.append(fresh_value(m.group(), rng))
        pos = m.end()
    out.append(_shape_runs(token[pos:], rng, names, free))
    return "".join(out)


def _shape_runs(token: str, rng: random.Random, names: bool, free: bool) -> str:
    out, pos = [], 0
    for m in RUN_RE.finditer(token):
        out.append(token[pos:m.start()])
        out.append(_shape_run(m.group(), rng, names, free, token[m.start() - 1:m.start()],
                              token[m.end():m.end() + 3]))
        pos = m.end()
    out.append(token[pos:])
    return "".join(out)


def fresh_value(value: str, rng: random.Random) -> str:
    """A new value of the same shape as `value` (a captured `<*>`)."""
    if not value or not value.strip():
        return value
    if UUID_RE.fullmatch(value):
        new = str(uuid.UUID(int=rng.getrandbits(128)))
        return new.upper() if value.isupper() else new
    if IPV4_RE.fullmatch(value):
        ip = ".".join(str(rng.randint(1, 254)) for _ in range(4))
        return f"{ip}:{rng.randint(1024, 65535)}" if ":" in value else ip
    if UA_RE.match(value):
        return rng.choice(USER_AGENTS)
    device = re.fullmatch(r"(sd|vd|xvd|hd)([a-z])(\d*)", value)
    if device:
        return device.group(1) + rng.choice("abcdefgh") + _digits(device.group(3), rng)
    if TIME_SHAPES_RE.search(value):
        out, pos = [], 0
        for m in TIME_SHAPES_RE.finditer(value):
            out += [fresh_value(value[pos:m.start()], rng), _valid_time(m, rng)]
            pos = m.end()
        return "".join(out) + fresh_value(value[pos:], rng)
    if re.search(r"\s", value):
        # Free text (a nested error message): words stay, numbers and ids inside it are redrawn.
        return re.sub(r"\S+", lambda m: _shape(m.group(), rng, free=True) if re.search(r"\d", m.group())
                      else m.group(), value)
    return _shape(value, rng)


def _is_status(line: str, start: int, end: int) -> bool:
    """An HTTP status code in its context (the masker keeps those on purpose): not a variable to redraw."""
    if not re.fullmatch(r"[1-5]\d\d", line[start:end]):
        return False
    m = STATUS_RE.search(line[max(0, start - 40):end])
    return bool(m) and m.end() == end - max(0, start - 40)


def render(line: str, spans: list[tuple[int, int]], rng: random.Random, envelope: bool = True,
           aligned: list[tuple[int, int]] = ()) -> str:
    """The line with each value span redrawn and, with envelope, the digit runs outside the aligned
    parts (timestamps, pids, ages in the envelope) too; the template's literal text stays as it is."""
    values = dict(spans)
    # HTTP status codes in their context stay, inside values too ("after status: 404 Not Found").
    status = [m.span(3) for m in STATUS_RE.finditer(line)]
    cuts = sorted({0, len(line), *(p for sp in spans for p in sp), *(p for sp in aligned for p in sp)})
    out = []
    for a, b in zip(cuts, cuts[1:]):
        text = line[a:b]
        if values.get(a) == b:
            pos = a
            for s, e in status:
                if a <= s and e <= b:
                    out += [fresh_value(line[pos:s], rng), line[s:e]]
                    pos = e
            out.append(fresh_value(line[pos:b], rng))
        elif envelope and not any(s <= a and b <= e for s, e in aligned):
            out.append(redraw_digits(text, rng, lambda s, e, a=a: _is_status(line, a + s, a + e)))
        else:
            out.append(text)
    return "".join(out)


def render_row(row: dict, k: int, rng: random.Random, envelope: bool) -> tuple[list[str], bool]:
    """(k renderings of the row's line, whether its template aligned)."""
    got = align(row["template"], row["line"])
    if got is None:
        return [], False
    spans, aligned = got
    return [render(row["line"], spans, rng, envelope, aligned) for _ in range(k)], True


# ---------------------------------------------------------------------------------------------
# Corpora

def load_k8s() -> list[dict]:
    with open(SHARED / "k8s_labels.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def load_loghub() -> list[tuple[str, str, str]]:
    """(system, event_id, raw line) for every Loghub line, joined by LineId as training's
    read_loghub_structured does."""
    rows = []
    for csv_path in sorted((SHARED / "loghub").glob("*/*_2k.log_structured.csv")):
        system = csv_path.name.split("_")[0]
        with open(csv_path.with_name(csv_path.name.replace("_structured.csv", "")), encoding="utf-8",
                  errors="replace") as f:
            raw = [line.rstrip("\n") for line in f]
        with open(csv_path, encoding="utf-8", errors="replace", newline="") as f:
            for r in csv.DictReader(f):
                rows.append((system, r["EventId"], raw[int(r["LineId"]) - 1]))
    return rows


def load_loghub_labels() -> dict[tuple[str, str], str]:
    with open(SHARED / "loghub_labels.csv", encoding="utf-8", newline="") as f:
        return {(r["system"], r["event_id"]): r["label"] for r in csv.DictReader(f)}


def load_loghub_templates() -> dict[tuple[str, str], str]:
    with open(SHARED / "loghub_labels.csv", encoding="utf-8", newline="") as f:
        return {(r["system"], r["event_id"]): r["template"] for r in csv.DictReader(f)}


class Keyer:
    """template_key(parse_line(line)) with the parser and the masker each from the working tree or a rev."""

    def __init__(self, parser_rev: str | None = None, masker_rev: str | None = None):
        self.parsing = load_module("service.parsing", "service/parsing.py", parser_rev)
        self.masking = load_module("service.masking", "service/masking.py", masker_rev)
        self.parse_line = self.parsing.parse_line
        self.template_key = self.masking.template_key

    def __call__(self, line: str) -> str:
        return self.template_key(self.parse_line(line))


# ---------------------------------------------------------------------------------------------
# Measurements

def k8s_lines(rows: list[dict], k: int, seed: int, envelope: bool) -> tuple[dict[str, list[str]], list[str]]:
    """{row id: [original line, k renderings]} and the ids of rows whose template did not align."""
    rng = random.Random(seed)
    lines, unaligned = {}, []
    for row in rows:
        rendered, ok = render_row(row, k, rng, envelope)
        lines[row["id"]] = [row["line"], *rendered]
        if not ok:
            unaligned.append(row["id"])
    return lines, unaligned


def keys_per_template(groups: dict) -> dict:
    """groups: {template: [keys]} → mean distinct keys, share with more than one, worst examples."""
    counts = {t: len(set(ks)) for t, ks in groups.items()}
    n = len(counts)
    return {"templates": n, "mean_keys": round(sum(counts.values()) / n, 4) if n else None,
            "share_multi": round(sum(c > 1 for c in counts.values()) / n, 4) if n else None,
            "max_keys": max(counts.values(), default=0)}


def measure(k: int, seed: int, examples: int, key: Keyer, reference: types.ModuleType | None = None) -> dict:
    rows = load_k8s()
    by_id = {r["id"]: r for r in rows}
    out: dict = {"k": k, "seed": seed}

    # 1. k8s rendered
    for envelope in (True, False):
        lines, unaligned = k8s_lines(rows, k, seed, envelope)
        keys = {rid: [key(x) for x in ls] for rid, ls in lines.items()}
        summary = keys_per_template(keys)
        by_format = defaultdict(dict)
        for rid, ks in keys.items():
            by_format[by_id[rid]["format"]][rid] = ks
        summary["by_format"] = {f: keys_per_template(g) for f, g in sorted(by_format.items())}
        aligned = {rid: ks for rid, ks in keys.items() if rid not in set(unaligned)}
        summary["aligned_only"] = keys_per_template(aligned)
        summary["unaligned"] = len(unaligned)
        if envelope:
            out["k8s"] = summary
            out["k8s"]["unaligned_ids"] = unaligned
            worst = sorted(((len(set(ks)), rid) for rid, ks in keys.items() if len(set(ks)) > 1), reverse=True)
            out["k8s"]["multi_key_examples"] = [
                {"id": rid, "format": by_id[rid]["format"], "template": by_id[rid]["template"],
                 "keys": sorted(set(keys[rid]))[:4]} for _, rid in worst[:examples]]
            k8s_keys = keys
        else:
            out["k8s_values_only"] = {x: summary[x] for x in ("templates", "mean_keys", "share_multi", "max_keys",
                                                                 "aligned_only", "by_format")}

    # 2. Loghub
    loghub = load_loghub()
    lh_keys = defaultdict(list)
    for system, eid, line in loghub:
        lh_keys[(system, eid)].append(key(line))
    systems = sorted({s for s, _ in lh_keys})
    out["loghub"] = keys_per_template({f"{s}:{e}": ks for (s, e), ks in lh_keys.items()})
    out["loghub"]["lines"] = len(loghub)
    out["loghub"]["by_system"] = {s: keys_per_template({e: ks for (s2, e), ks in lh_keys.items() if s2 == s})
                                  for s in systems}
    worst = sorted(((len(set(ks)), f"{s}:{e}") for (s, e), ks in lh_keys.items() if len(set(ks)) > 1), reverse=True)
    out["loghub"]["multi_key_examples"] = [
        {"event": ev, "keys": n, "sample": sorted(set(lh_keys[tuple(ev.split(":", 1))]))[:4]}
        for n, ev in worst[:examples]]

    # 3. Merges, over both corpora
    labels = {("k8s", rid): by_id[rid]["label"] for rid in by_id}
    labels.update({("loghub", f"{s}:{e}"): lab for (s, e), lab in load_loghub_labels().items()})
    holders: dict[str, set] = defaultdict(set)
    for rid, ks in k8s_keys.items():
        for kk in ks:
            holders[kk].add(("k8s", rid))
    for (s, e), ks in lh_keys.items():
        for kk in ks:
            holders[kk].add(("loghub", f"{s}:{e}"))
    merged = {kk: ts for kk, ts in holders.items() if len(ts) > 1}
    conflicting = {kk: ts for kk, ts in merged.items() if len({labels.get(t) for t in ts}) > 1}
    # Why two templates share a key: the data holds the same template text twice (no masker can part
    # them), or the parser hands the masker the same message for both; anything else is the masker's.
    template_text = {("k8s", rid): " ".join(r["template"].split()) for rid, r in by_id.items()}
    template_text.update({("loghub", f"{s}:{e}"): " ".join(t.split()) for (s, e), t in load_loghub_templates().items()})
    first_message = {("k8s", rid): key.parse_line(r["line"]).message for rid, r in by_id.items()}

    def cause(ts):
        if len({template_text.get(t) for t in ts}) == 1:
            return "identical_template"
        if all(c == "k8s" for c, _ in ts) and len({first_message[t] for t in ts}) == 1:
            return "same_parsed_message"
        return "masker"

    causes = Counter(cause(ts) for ts in conflicting.values())
    out["merges"] = {
        "keys_with_several_templates": len(merged),
        "templates_in_merged_keys": len(set().union(*merged.values())) if merged else 0,
        "same_label": len(merged) - len(conflicting),
        "conflicting": len(conflicting),
        "conflicting_by_cause": {c: causes.get(c, 0) for c in ("masker", "identical_template", "same_parsed_message")},
        "conflicting_list": [{"key": kk, "cause": cause(ts),
                              "templates": [f"{c}:{t}={labels.get((c, t))}" for c, t in sorted(ts)]}
                             for kk, ts in sorted(conflicting.items())],
        "same_label_examples": [{"key": kk, "templates": [f"{c}:{t}" for c, t in sorted(ts)]}
                                for kk, ts in sorted(merged.items()) if kk not in conflicting][:examples],
    }

    # 4. mask_message cost
    # (with a reference masker, both are timed in turns on the same messages: the machine is shared,
    # so only figures taken side by side compare)
    maskers = [key.masking.mask_message] + ([reference.mask_message] if reference else [])
    messages = [key.parse_line(r["line"]).message for r in rows]
    for mask_message in maskers:
        for m in messages[:200]:
            mask_message(m)
    best = [float("inf")] * len(maskers)
    for _ in range(3):
        for i, mask_message in enumerate(maskers):
            best[i] = min(best[i], _time(mask_message, messages))
    out["mask_us_per_line"] = round(best[0] / len(messages) * 1e6, 2)
    if reference:
        out["mask_us_per_line_reference"] = round(best[1] / len(messages) * 1e6, 2)
    out["mask_lines"] = len(messages)
    return out


def _time(mask_message, messages: list[str]) -> float:
    t0 = time.perf_counter()
    for m in messages:
        mask_message(m)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Report

def write_md(runs: dict) -> str:
    tags = list(runs)
    lines = ["# Template keys per template (bench/keys.py)", "",
             f"Target: mean distinct keys per template ≤ {TARGET}; conflicting merges = 0. "
             "k8s: each k8s_labels.csv row's line plus K renderings with resampled variables "
             "(values aligned from the template, never found by the masker; envelope digits redrawn too). "
             "Loghub: keys per EventId over the 18,000 raw lines.", "",
             "| figure | " + " | ".join(tags) + " |", "|---|" + "---|" * len(tags)]

    def row(name, get):
        vals = []
        for t in tags:
            try:
                v = get(runs[t])
            except (KeyError, TypeError):
                v = None
            vals.append("" if v is None else str(v))
        lines.append(f"| {name} | " + " | ".join(vals) + " |")

    row("service/parsing.py", lambda r: r.get("parser"))
    row("service/masking.py", lambda r: r.get("masker"))
    row("k8s mean keys/template", lambda r: r["k8s"]["mean_keys"])
    row("k8s share of templates with >1 key", lambda r: r["k8s"]["share_multi"])
    row("k8s mean keys, values only (envelope kept)", lambda r: r["k8s_values_only"]["mean_keys"])
    row("k8s rows not aligned (counted, 1 key)", lambda r: r["k8s"]["unaligned"])
    row("k8s mean keys, aligned rows only", lambda r: r["k8s"]["aligned_only"]["mean_keys"])
    formats = sorted({f for t in tags for f in runs[t]["k8s"]["by_format"]})
    for f in formats:
        row(f"k8s {f}", lambda r, f=f: r["k8s"]["by_format"][f]["mean_keys"])
    row("Loghub mean keys/EventId", lambda r: r["loghub"]["mean_keys"])
    row("Loghub share of EventIds with >1 key", lambda r: r["loghub"]["share_multi"])
    systems = sorted({s for t in tags for s in runs[t]["loghub"]["by_system"]})
    for s in systems:
        row(f"Loghub {s}", lambda r, s=s: r["loghub"]["by_system"][s]["mean_keys"])
    row("merged keys (≥2 templates)", lambda r: r["merges"]["keys_with_several_templates"])
    row("  of which same label", lambda r: r["merges"]["same_label"])
    row("  of which conflicting labels", lambda r: r["merges"]["conflicting"])
    row("    caused by the masker (target 0)", lambda r: r["merges"]["conflicting_by_cause"]["masker"])
    row("    same template text twice in the data", lambda r: r["merges"]["conflicting_by_cause"]["identical_template"])
    row("    parser gives the same message", lambda r: r["merges"]["conflicting_by_cause"]["same_parsed_message"])
    row("mask_message µs/line (best of 3)", lambda r: r["mask_us_per_line"])
    row("  the reference masker, timed alongside", lambda r: r.get("mask_us_per_line_reference"))
    row("  (reference masker)", lambda r: r.get("reference_masker"))
    lines += ["", "Why a template still has several keys: bench/keys.json lists the worst ones per run "
              "(`multi_key_examples`). What remains after the masker's rules is mostly names that nothing "
              "around them marks as names (`Container elasticsearch failed`, `deleted in shop`), enumerations "
              "the renderer could not tell from names, and Loghub templates whose `<*>` covers text "
              "(Java classes, call stacks, an optional `(1.2 KB)`).", ""]
    for t in tags:
        lst = runs[t]["merges"]["conflicting_list"]
        if lst:
            lines.append(f"Conflicting merges, {t}:")
            lines += [f"- `{m['key'][:160]}` ({m.get('cause', '?')}): {', '.join(m['templates'])}" for m in lst]
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="latest", help="name of this run in keys.json (other runs are kept)")
    ap.add_argument("--k", type=int, default=5, help="renderings per k8s row (besides its own line)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", type=int, default=40, help="worst templates listed in the JSON")
    ap.add_argument("--out", default=str(OUT_JSON))
    ap.add_argument("--parser-rev", help="take service/parsing.py from this git revision (default: working tree)")
    ap.add_argument("--masker-rev", help="take service/masking.py from this git revision (default: working tree)")
    ap.add_argument("--reference-masker-rev", help="also time service/masking.py of this revision, side by side")
    args = ap.parse_args(argv)

    reference = (load_module("service.masking", "service/masking.py", args.reference_masker_rev)
                 if args.reference_masker_rev else None)
    result = measure(args.k, args.seed, args.examples, Keyer(args.parser_rev, args.masker_rev), reference)
    if reference:
        result["reference_masker"] = args.reference_masker_rev
    result["parser"] = args.parser_rev or "working tree"
    result["masker"] = args.masker_rev or "working tree"
    result["when"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc.setdefault("runs", {})[args.tag] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    out.with_suffix(".md").write_text(write_md(doc["runs"]))
    k8s, lh, mg = result["k8s"], result["loghub"], result["merges"]
    print(f"[{args.tag}] k8s keys/template {k8s['mean_keys']} (>1: {k8s['share_multi']:.1%}, unaligned "
          f"{k8s['unaligned']}), values only {result['k8s_values_only']['mean_keys']}; Loghub keys/EventId "
          f"{lh['mean_keys']} (>1: {lh['share_multi']:.1%}); merges {mg['keys_with_several_templates']} "
          f"(conflicting {mg['conflicting']}: {mg['conflicting_by_cause']}); mask {result['mask_us_per_line']} µs/line"
          + (f" (reference {result['mask_us_per_line_reference']})" if reference else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
