"""Variable masking: turn a log message into a template key.

Lines that differ only in their variables (IPs, numbers, pod names, ids, timestamps) get the
same key, so the model sees the template, and the template cache answers repeats with a
dictionary lookup. Rules are ordered: values known by their context (`user=postgres`,
`volume "data"`) go first, whatever their shape, so one slot always gets one placeholder; then the
specific shapes (UUID, IP, timestamp) before the generic number rule, which would otherwise eat
them piecemeal.

We mask with a fixed regex list rather than Drain3's online miner on purpose: a key must be a
pure function of the line, the same in training and serving, whatever order lines arrive in.
bench/keys.py measures how well it generalises (distinct keys per template, merges of templates
that the teacher labelled differently, cost per line).
"""

from __future__ import annotations

import re

from service.parsing import ParsedLine

MAX_TEMPLATE_CHARS = 512


class ValueRule:
    """A rule that knows a value is a variable from the text around it (`pod=<value>`,
    `volume "<value>"`). Its regex finds candidates, and sub() replaces only the group named "v" (or
    "v1", "v2"... in alternatives: whichever took part; the whole match without one). With `before`,
    a candidate counts only where that regex matches the text right before it (searched within
    `window` characters, anchored at the candidate by its trailing \\Z), or, when `before` is a
    function of the candidate match -> context start or -1, where it says so; with take_before,
    the value starts where the context does ("postgres" + "-0"). Finding the rare part of a context
    first (an "=", a quote, "-7") and checking the rest only there is much cheaper than one regex that
    starts with the context at every position.

    It quacks like the re.Pattern of the other rules for what users of MASK_RULES call:
    sub(repl, string), repl a string or a function of a match whose group(0) is the value."""

    __slots__ = ("regex", "pattern", "groups", "before", "window", "take_before")

    def __init__(self, pattern: str, before=None, window: int = 64, take_before: bool = False):
        self.regex = re.compile(pattern)
        self.pattern = self.regex.pattern
        self.groups = tuple(g for g in self.regex.groupindex if re.fullmatch(r"v\d*", g)) or (0,)
        if isinstance(before, str):
            before_re = re.compile(before)
            window_ = window

            def before(m: re.Match) -> int:
                start = m.start()
                b = before_re.search(m.string, max(0, start - window_), start)
                return -1 if b is None else b.start()
        self.before = before
        self.window = window
        self.take_before = take_before

    def sub(self, repl, string: str, count: int = 0) -> str:
        search = self.regex.search
        m = search(string)
        if m is None:
            return string
        groups, before, take_before = self.groups, self.before, self.take_before
        out, pos, n = [], 0, 0
        while m is not None:
            for group in groups:
                start, end = m.span(group)
                if start >= 0:
                    break
            context = before(m) if before is not None else 0
            if context < 0:  # not this context: look again just after its start (it may hold one)
                m = search(string, m.start() + 1)
                continue
            if take_before:
                start = context
            if start >= pos:
                out.append(string[pos:start])
                out.append(repl(_Value(string, start, end)) if callable(repl) else repl)
                pos = end
                n += 1
                if n == count:
                    break
            m = search(string, m.end() if m.end() > m.start() else m.end() + 1)
        if not out:
            return string
        out.append(string[pos:])
        return "".join(out)

    def __repr__(self) -> str:
        return f"ValueRule({self.pattern!r})"


class _Value:
    """The value a ValueRule replaces, as a match object: group(0) is the value."""

    __slots__ = ("string", "_start", "_end")

    def __init__(self, string: str, start: int, end: int):
        self.string, self._start, self._end = string, start, end

    def group(self, *groups):
        if groups not in ((), (0,)):
            raise IndexError("a ValueRule match has only group 0")
        return self.string[self._start:self._end]

    def span(self, group=0):
        return self._start, self._end

    def start(self, group=0):
        return self._start

    def end(self, group=0):
        return self._end


# --- context: keys and nouns whose value is a name ---------------------------------------------
# key=value (logfmt, klog, falco), "key": value (JSON), key: "value": keys that name a thing. The
# last dotted/underscored segment counts ("k8s_pod_name", "HPA.Namespace", "auth.user.name"), in any
# case ("MachineSet", "Namespace"). Keys whose value carries meaning (reason, status, type, signal,
# mode, phase, level, code, resource, verb, err) are not here: their values stay in the key.
NAME_KEYS = (
    "pod", "node", "host", "hostname", "rhost", "name", "user", "username", "ruser", "login", "loginname",
    "owner", "namespace", "ns", "container", "service", "svc", "ingress", "deployment", "statefulset",
    "daemonset", "replicaset", "job", "cronjob", "volume", "volumeid", "pvc", "pv", "claim", "secret",
    "configmap", "lock", "lease", "check", "checker", "checkid", "tenant", "org", "database", "db",
    "dbname", "datname", "table", "schema", "queue", "topic", "bucket", "cluster", "machine", "machineset",
    "machinedeployment", "kubeadmconfig", "extender", "peer", "member", "client", "consumer", "app",
    "application", "instance", "process", "proc", "parent", "gparent", "ggparent", "gggparent", "comm",
    "exe", "exepath", "key", "probe", "plugin", "pool", "alertname", "rule", "task", "alloc", "server",
    "pkg", "package", "tag", "repository", "repo", "branch", "bind", "group", "account", "serviceaccount",
    "sa", "role", "scaledobject", "scaledjob", "hpa", "workload", "release", "chart", "catalog",
    "evt_type",  # falco: the syscall (openat, openat2) that tripped a rule
)
_NAME_KEYS = frozenset(NAME_KEYS)
# Context right before a candidate is read from the reversed text just before it: one anchored match,
# where a search for "...\\Z" would try every position of the window.
_REVERSED_KEY_RE = re.compile(r"[\w.-]{1,64}(?![\w.-])")
_REVERSED_WORD_RE = re.compile(r":?(\w{2,32})(?![\w.-])")


def _name_key_before(candidate: re.Match) -> int:
    """Where the key right before the candidate begins, if its last segment names a thing, else -1:
    "pod", "k8s_pod_name", "HPA.Namespace", "volumeID", "auth.user.name"."""
    start = candidate.start()
    m = _REVERSED_KEY_RE.match(candidate.string[max(0, start - 65):start][::-1])
    if m is None:
        return -1
    key = m.group()[::-1].lower()
    key_start = start - m.end()
    parts = key.replace(".", "_").split("_")
    last = parts[-1]
    if candidate.group("v2") is not None and (key_start == 0 or candidate.string[key_start - 1] not in "{,"):
        return -1  # Key:value only as a Go struct field
    if last in _NAME_KEYS or key in _NAME_KEYS:
        return key_start
    if last in ("id", "uid") and len(parts) > 1 and parts[-2] in _NAME_KEYS:
        return key_start
    for suffix in ("name", "id"):
        if last.endswith(suffix) and last[: -len(suffix)] in _NAME_KEYS:
            return key_start
    return -1


_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"'  # unrolled: four times faster than (?:[^"\\]|\\.)*
_ESC_QUOTED = r'\\"[^"\\]*(?:\\[^"][^"\\]*)*\\"'  # \"value\" inside a JSON string
_SQUOTED = r"'[^'\\\n]*'"
_BARE = r"(?![<\"'\\])[^\s,;)\]}\"'<>]+"
# key=value, key="value" / "key": "value" / key: "value" / {Key:value,: the key is checked before the
# separator.
KEY_VALUE_RULE = ValueRule(
    rf'(?:=|"\s?:\s?)(?P<v>{_QUOTED}|{_ESC_QUOTED}|{_SQUOTED}|{_BARE})'
    rf'|:(?<=\w:) (?P<v1>{_QUOTED}|{_ESC_QUOTED}|{_SQUOTED})'
    r'|:(?<=\w:)(?P<v2>(?![<"\'\\])[^\s,{}()<>"\']+)(?=[,}])',  # Go structs: &Metadata{Name:web,Namespace:shop,}
    before=_name_key_before)
# A command line: unquoted, spaces and all, up to the next key= (falco, auditd).
COMMAND_RULE = ValueRule(
    r"(?<![\w.-])(?i:(?:proc_|p)?cmdline|command|proc_pcmdline|pcmdline|args)="
    r"(?P<v>(?![<\"'])[^\s=]+(?: (?![\w.-]+=)[^\s]+)*)")
USER_AGENT_KEY_RULE = ValueRule(
    rf'(?<![\w.-])(?i:[\w.]*user[-_]?agent)=(?P<v>{_QUOTED}|{_BARE})'
    rf'|"(?i:[\w.]*user[-_]?agent)"\s?:\s?(?P<v1>{_QUOTED})')
# `pod "web-0"`, `volume 'data'`, `relation \"users\"`, `UniqueName: "..."`: a quoted name after the
# noun that says what it names.
NAME_NOUNS = (
    "pod", "node", "volume", "namespace", "deployment", "service", "secret", "configmap", "container",
    "persistentvolumeclaim", "persistentvolume", "pvc", "claim", "replicaset", "statefulset", "daemonset",
    "job", "cronjob", "ingress", "storageclass", "relation", "table", "schema", "constraint", "database",
    "user", "role", "rolebinding", "clusterrole", "clusterrolebinding", "serviceaccount", "index", "column",
    "queue", "topic", "bucket", "thread", "context", "plugin", "webhook", "lease", "lock", "endpoint",
    "endpoints", "cluster", "tenant", "repository", "repo", "branch", "check", "named", "label", "key",
    "network", "interface", "device", "disk", "snapshot", "instance", "release", "chart", "certificate",
    "issuer", "gateway", "route", "extension", "module", "account", "uniquename", "master", "scaledobject",
    "machine", "machineset", "priorityclass", "runtimeclass", "csidriver", "driver", "provisioner",
    "controller", "object", "host", "hostname", "app", "application", "group", "vhost", "realm",
)
_NAME_NOUNS = frozenset(NAME_NOUNS)


def _word_before(candidate: re.Match) -> tuple[str, int]:
    """The word (and where it starts) right before the candidate, a colon after it allowed: ("pod", i)."""
    start = candidate.start()
    m = _REVERSED_WORD_RE.match(candidate.string[max(0, start - 34):start][::-1])
    return ("", -1) if m is None else (m.group(1)[::-1].lower(), start - m.end())


def _name_noun_before(candidate: re.Match) -> int:
    word, start = _word_before(candidate)
    return start if word and (word in _NAME_NOUNS or (word[-1] == "s" and word[:-1] in _NAME_NOUNS)) else -1


QUOTED_NAME_RULE = ValueRule(r"\s(?P<q>\\?[\"'])(?P<v>[^\"'\s\\<>]+)(?P=q)", before=_name_noun_before)
# `container orders-api`, `Pod prod/web-0`, `assigned payments/web-7d9f8b6c5-x2kqz`: an unquoted name
# after such a noun when it cannot be an English word: namespace/name, or hyphenated ("read-only"-like
# terms excepted). A bare word after a noun is left alone: "pod sandbox", "node lifecycle".
NAME_CONTEXT = frozenset((*NAME_NOUNS, "assigned", "deleting", "evicting", "binding", "preempting", "task",
                          "group", "application", "app", "vhost", "endpointslice", "virtualservice",
                          "destinationrule", "clusterqueue", "localqueue", "applicationset", "workload"))
# Hyphenated English ("anti-affinity", "read-only", "post-stop"), not names.
_NOT_NAME_PREFIXES = ("non", "pre", "post", "anti", "cross", "out", "re", "self", "multi", "per", "in", "un",
                      "co", "sub", "inter", "intra", "over", "under", "well", "long", "short", "high", "low",
                      "auto", "semi", "read", "write", "up", "end", "built", "de", "dis", "mis", "full", "half")
_NOT_NAME_PAIRS = ("affinity/selector", "affinity/anti-affinity", "and/or", "read/write", "input/output",
                   "tcp/udp", "true/false", "yes/no", "get/set", "enable/disable", "start/stop", "client/server")


_NOT_A_NAME_RE = re.compile(
    # Pod-shaped names are left to the <POD> rules: "pod web-7d9f8b6c5-x2kqz" is "pod <POD>".
    r"[a-z0-9-]*-(?:[a-f0-9]{8,10}|\d{8})-[a-z0-9]{5}\Z|[a-z0-9-]*-(?=[a-z0-9]*\d)[bcdfghjklmnpqrstvwxz2-9]{5}\Z|"
    r"[a-z0-9-]*-[a-z]?\d{1,4}\Z|(?:" + "|".join(_NOT_NAME_PREFIXES) + r")-|(?:" + "|".join(_NOT_NAME_PAIRS) + r")\Z")


def _name_context_before(candidate: re.Match) -> int:
    word, start = _word_before(candidate)
    if not word or not (word in NAME_CONTEXT or (word[-1] == "s" and word[:-1] in NAME_CONTEXT)):
        return -1
    return -1 if _NOT_A_NAME_RE.match(candidate.group("v")) else start


NOUN_NAME_RULE = ValueRule(
    r"\s(?P<v>[a-z0-9][a-z0-9.-]*/[a-z0-9][a-z0-9._-]*|[a-z0-9]+(?:\.[a-z0-9]+)*(?:-[a-z0-9]+(?:\.[a-z0-9]+)*)+)"
    r"(?=[\s:,;)\]\[]|\.?$|\.\s)",
    before=_name_context_before)
# sshd, su, pam: "for user root", "Invalid user admin from".
USER_RULE = ValueRule(r"\b(?:for|[Ii]nvalid|[Ii]llegal|[Uu]nknown) user (?P<v>(?!<)[\w.$@-]+)")

# --- shapes ----------------------------------------------------------------------------------
_UA_NAMES = ("Mozilla", "curl", "Wget", "kube-probe", "Go-http-client", "python-requests", "python-urllib3",
             "okhttp", "Prometheus", "Apache-HttpClient", "axios", "node-fetch", "grpc-go", "grpc-java-netty",
             "kubectl", "ELB-HealthChecker", "GoogleHC", "PostmanRuntime", "Blackbox Exporter", "Dalvik", "Java",
             "Ruby")
_UA_NAMES_NEEDED = tuple(f"{n}/" for n in _UA_NAMES)
_UA_TOKEN = r"(?:\([^()\"\n]*\)|[A-Za-z][\w.+-]*/[\w.+-]+|like Gecko)"
USER_AGENT_RE = re.compile(
    r"\b(?:Mozilla/\d[\w.]*|(?:" + "|".join(n for n in _UA_NAMES if n != "Mozilla") + r")/v?\d[\w.+-]*)"
    rf"(?: {_UA_TOKEN})*")
# Container image references: registry/repo[:tag][@digest] anywhere, or repo:tag after "image"/"pull".
_REPO = r"[a-z0-9]+(?:(?:[_-]|__)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9-]+\.)+[a-zA-Z0-9-]+(?::\d+)?|localhost(?::\d+)?"
_TAG = r":\w(?:[\w.-]{0,126}\w)?"
_DIGEST = r"@sha256:[0-9a-f]{64}"
IMAGE_RE = re.compile(
    rf"(?<![\w./-])(?:{_REGISTRY})/{_REPO}(?:/{_REPO})*(?:{_TAG}(?:{_DIGEST})?|{_DIGEST})(?![\w/-])")
IMAGE_CONTEXT_RULE = ValueRule(
    r"\b(?:[Ii]mages?|PullImage|[Pp]ull(?:ing)?|[Pp]ush(?:ing)?|reference) \\?[\"']?"
    rf"(?P<v>(?=[\w.:/-]*[:/@])(?:(?:{_REGISTRY})/)?{_REPO}(?:/{_REPO})*(?:{_TAG})?(?:{_DIGEST})?)(?![\w/:.-])")
# Block and network devices (not after "/": /dev/sda1 is a path).
DEVICE_RE = re.compile(
    r"(?<![\w/.<-])(?:"  # alternatives grouped by first letter: the engine tries fewer of them per position
    r"s(?:(?!dk\b|dn\b|dp\b|ds\b)d[a-z]{1,2}\d{0,2}|r\d+)|xvd[a-z]{1,2}\d{0,2}|"
    r"v(?:d[a-z]\d{0,2}|eth[0-9a-f]{4,}|irbr\d+)|"
    r"hd[a-z]\d{1,2}|n(?:vme\d+(?:n\d+(?:p\d+)?)?|bd\d+|et\d+)|m(?:mcblk\d+(?:p\d+)?|d(?!5\b)\d+)|"
    r"d(?:m-\d+|ocker\d+)|loop\d+|rbd\d+|e(?:th\d+|ns\d+(?:f\d+)?|np\d+s\d+(?:f\d+)?|no\d+|n\d)|"
    r"w(?:lan\d+|lp\d+s\d+)|bond\d+|c(?:ali[0-9a-f]{6,}|ni\d+|br\d+|pu\d+)|tunl\d+|flannel\.\d+|ata\d+(?:\.\d+)?|"
    r"[Gg][Pp][Uu]\d+|CPU\d+)(?![\w-]|\.[\w<])")
# Numbers with a unit, "<NUM>" whatever their digits ("2.318504127s", "2897340Ki" would otherwise be <ID>
# while "350ms", "512Mi" are <NUM>), and compound durations ("5m12s", "1h30m", "3m14.5s").
_UNIT = r"(?:ns|us|µs|ms|s|m|h|d|[KMGTPE]i(?:B)?|[kKMGTP]B|[KMGT]|B)"
UNIT_NUMBER_RE = re.compile(
    rf"\d(?<![\w.<:]\d)\d*(?:\.\d+)?(?:(?:ms|us|µs|ns|h|m|s|d)(?:\d+(?:\.\d+)?(?:ms|us|µs|ns|h|m|s))+|{_UNIT})"
    r"(?![\w>:]|\.\d)")
KLOG_TS_RULE = ValueRule(r"[IWEF](?<!\w[IWEF])(?P<v>\d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?)\b")  # "E<TS>"
# kubelet's "pod_namespace(uid):container" (the namespace stays: tests hold it as meaningful).
POD_CONTAINER_RULE = ValueRule(r"\(<UUID>\):(?P<v>[a-z0-9][a-z0-9-]*)(?![\w-])")
EVENT_COUNT_RULE = ValueRule(r"\(x(?P<v>\d+) over ")  # kubectl events: "(x5 over 3m)"
# Names with an ordinal or a short id at the end: StatefulSet pods "postgres-0", nodes "worker-a12".
_NOT_NAMES = (r"utf|iso|x86|sha|rfc|tls|ssl|http|https|dns|md|crc|aes|rsa|raid|ucs|cp|windows|win|ipv|latin|big|"
              r"level|top|p|h|v")
ORDINAL_NAME_RULE = ValueRule(
    r"-[a-z]?\d{1,4}(?![\w-]|\.[\w<])",
    before=rf"(?<![\w.<>-])(?!(?:{_NOT_NAMES})\Z)[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z", window=64, take_before=True)
# Deployment pods "web-7d9f8b6c5-x2kqz", daemonset pods "fluentd-x2kqz", jobs "backup-28190400-abcde":
# found by the "-hash-suffix" end, the name before it checked (and taken) after.
POD_RULE = ValueRule(
    r"-(?:(?P<d>[a-f0-9]{8,10}|\d{8})-[a-z0-9]{5}|"
    r"(?=[a-z0-9]*\d)[bcdfghjklmnpqrstvwxz2-9]{5}(?:(?:-[a-z0-9]+)*-(?=[a-z0-9]*\d)[bcdfghjklmnpqrstvwxz2-9]{5})?)"
    r"(?![a-z0-9])",
    before=lambda m: _pod_name_start(m), take_before=True)
_POD_NAME_RE = re.compile(r"(?<!\w)[a-z0-9]+(?:-[a-z0-9]+)*\Z")
_DAEMONSET_NAME_RE = re.compile(r"(?<!\w)[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")


def _pod_name_start(m: re.Match) -> int:
    name_re = _POD_NAME_RE if m.group("d") else _DAEMONSET_NAME_RE
    name = name_re.search(m.string, max(0, m.start() - 128), m.start())
    return -1 if name is None else name.start()


EXE_RE = re.compile(r"(?<![\w.<>-])[\w-]+(?:\.[\w-]+)*\.exe\b(?: \*64\b)?")  # Windows programs (Proxifier)

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_MONTH_NAMES = tuple(_MONTHS.split("|"))
# The host of a BSD syslog header ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: ..."), before the time
# in front of it becomes <TS>.
SYSLOG_HOST_RULE = ValueRule(
    rf"^(?:{_MONTHS}) +\d{{1,2}} \d{{2}}:\d{{2}}:\d{{2}} (?P<v>(?![A-Z]+ )[\w.-]*[A-Za-z][\w.-]*)"
    r"(?= [\w./()@-]+(?:\[\d+\])?(?: \(\[\d+\]\))?: )")
# "Jun 14 15:16:01", "Mon, Dec 04 04:47:44 2005": found by the month, the weekday checked before it.
TS_MONTH_RULE = ValueRule(rf"(?:{_MONTHS}) +\d{{1,2}},? \d{{2}}:\d{{2}}:\d{{2}}(?:[.,]\d+)?(?: \d{{4}})?\b",
                          before=r"(?<!\w)(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),? )?\Z", window=5, take_before=True)

# (placeholder, pattern). Patterns must not match inside an already placed "<...>" token. New shapes start
# with their first character class and check the boundary just after it ("\\b\\d" as "\\d(?<!\\w\\d)"): the
# regex engine then skips ahead to candidate characters instead of trying every position.
MASK_RULES: list[tuple[str, re.Pattern | ValueRule]] = [
    ("<UA>", USER_AGENT_KEY_RULE),
    ("<VAL>", COMMAND_RULE),
    ("<VAL>", KEY_VALUE_RULE),
    ("<VAL>", QUOTED_NAME_RULE),
    ("<VAL>", NOUN_NAME_RULE),
    ("<VAL>", USER_RULE),
    ("<UA>", USER_AGENT_RE),
    ("<IMAGE>", IMAGE_RE),
    ("<IMAGE>", IMAGE_CONTEXT_RULE),
    ("<UUID>", UUID_RE := re.compile(
        r"[0-9a-fA-F](?<!\w[0-9a-fA-F])[0-9a-fA-F]{7}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")),
    ("<VAL>", POD_CONTAINER_RULE),
    # MAC addresses, and longer colon-hex hardware ids (EUI-64, BGL's 12-byte chip ids)
    ("<MAC>", MAC_RE := re.compile(
        r"[0-9A-Fa-f](?<![\w:.-][0-9A-Fa-f])[0-9A-Fa-f]?(?::[0-9A-Fa-f]{1,2}){5,15}(?![\w:.-])")),
    ("<TS>", KLOG_TS_RULE),
    ("<HOST>", SYSLOG_HOST_RULE),
    ("<TS>", TS_MONTH_RULE),
    ("<TS>", re.compile(
        r"\d(?<!\w\d)(?:"
        r"\d{3}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\b|"
        r"\d{3}[-/.]\d{2}[-/.]\d{2}(?:-\d{2}\.\d{2}\.\d{2}(?:\.\d+)?)?\b|"
        rf"\d/(?:{_MONTHS})/\d{{4}}:\d{{2}}:\d{{2}}:\d{{2}}(?: [+-]\d{{4}})?|"  # access logs
        r"\d{7}-\d{1,2}:\d{1,2}:\d{1,2}(?::\d{1,3})?\b|"
        r"\d:\d{2}:\d{2}(?:[.,]\d+)?\b|"
        r"\d:\d{2}(?![\w:]|\.\d)(?<![:.]\d\d:\d\d))")),  # hh:mm, mm:ss
    ("<URL>", URL_RE := re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")),
    ("<EMAIL>", EMAIL_RE := re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")),
    # Host names only with a known top-level suffix, so Java packages and "obj.method()" survive.
    ("<HOST>", HOST_RE := re.compile(
        r"\b(?:[A-Za-z0-9-]+\.)+(?:com|net|org|edu|gov|io|cn|hk|jp|de|uk|ru|local|internal|svc|lan|corp|nl|br|pl|"
        r"fr|es|au|ca|ch|se|kr|tw|us|eu|cz|dk|fi|nz|za|ar|tr|gr|pt|ua|vn|sg|cc|tv|biz|xyz|dev|cloud|ai|at|it|be)"
        r"(?::\d{1,5})?\b")),
    # Compressed IPv6 ("::1", "fe80::1%eth0", "2001:db8::", "::ffff:10.0.0.1"; a digit somewhere).
    ("<IP>", IPV6_COMPRESSED_RE := re.compile(
        r"(?<![\w:])::ffff:(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)|"
        r"(?<![\w:])(?=[0-9a-fA-F:]*::)(?=[0-9a-fA-F:]*\d)(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?::"
        r"(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4})*)?(?:%[\w.-]+)?(?![\w:])")),
    ("<IP>", IPV4_RE := re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?::\d{1,5})?(?!\w|\.[\w<])")),
    ("<IP>", IPV6_RE := re.compile(
        r"[0-9a-fA-F](?<![\w:][0-9a-fA-F])[0-9a-fA-F]{0,3}:(?:[0-9a-fA-F]{1,4}:){2,6}[0-9a-fA-F]{1,4}(?![\w:])")),
    ("<DEV>", DEVICE_RE),
    ("<NUM>", UNIT_NUMBER_RE),
    ("<NUM>", EVENT_COUNT_RULE),
    # Deployment pods "web-7d9f8b6c5-x2kqz", daemonset pods "fluentd-x2kqz", jobs "backup-28190400-abcde",
    # StatefulSet pods and numbered nodes "postgres-0", "worker-a12".
    ("<POD>", POD_RULE),
    ("<POD>", ORDINAL_NAME_RULE),
    ("<POD>", NAMESPACED_POD_RE := re.compile(r"(?<![\w/.>-])[a-z0-9][a-z0-9-]*/<POD>")),  # "payments/<POD>"
    ("<VAL>", EXE_RE),
    ("<HEX>", re.compile(
        r"[0-9a-fA-F](?<!\w[0-9a-fA-F])(?:(?<=0)x[0-9a-fA-F]+\b|"
        r"(?:(?<=\d)|(?=[0-9a-fA-F]*\d))(?:(?<=[a-fA-F])|(?=[0-9a-fA-F]*[a-fA-F]))[0-9a-fA-F]{7,}\b)")),
    # (a segment may be a placeholder already: "/var/lib/kubelet/pods/<UUID>/volumes" is one path; "//"
    # is one separator)
    ("<PATH>", PATH_RE := re.compile(r"(?<![\w<>/])(?:/+(?:[\w.@%+~-]|<[A-Z]+>)+){2,}/*")),
    # Tokens that are mostly digits mixed with letters: hardware locations, ids, hashes; Erlang pids.
    ("<ID>", re.compile(r"(?<![\w<])(?=[\w:-]*\d[\w:-]*\d[\w:-]*\d)(?=[\w:-]*[A-Za-z])[\w:-]{6,}(?![\w>])")),
    ("<ID>", ERLANG_PID_RE := re.compile(r"<\d+\.\d+\.\d+>")),
    # ("<503>" is safe from it: its digits follow a "<")
    ("<NUM>", re.compile(
        r"(?<![A-Za-z0-9<])[-+]?\d+(?:\.\d+)?(?:[a-zA-Z%µ]{1,3}\b| [KMGTP]i?B\b)?(?![A-Za-z0-9])")),
]
# Literals a rule's every match contains (any one of a tuple): a line without them skips that rule's
# regex (same output, much less masking time on typical lines).
RULE_NEEDS: dict = {
    USER_AGENT_KEY_RULE: ("agent", "Agent", "AGENT"), COMMAND_RULE: "=", QUOTED_NAME_RULE: ('"', "'"),
    NOUN_NAME_RULE: ("-", "/"), USER_RULE: "user ", USER_AGENT_RE: _UA_NAMES_NEEDED, IMAGE_RE: "/",
    IMAGE_CONTEXT_RULE: ("mage", "ull", "ush", "reference"), UUID_RE: "-", POD_CONTAINER_RULE: "<UUID>):",
    MAC_RE: ":", SYSLOG_HOST_RULE: _MONTH_NAMES, TS_MONTH_RULE: _MONTH_NAMES, URL_RE: "://", EMAIL_RE: "@",
    HOST_RE: ".", IPV6_COMPRESSED_RE: "::", IPV4_RE: ".", IPV6_RE: ":", EVENT_COUNT_RULE: "(x", POD_RULE: "-",
    ORDINAL_NAME_RULE: "-", NAMESPACED_POD_RE: "/<POD>", EXE_RE: ".exe", PATH_RE: "/", ERLANG_PID_RE: "<",
}
WHITESPACE_RE = re.compile(r"\s+")
# A list of values of one kind ("blk_1 blk_2 blk_3", "channels 1 6 11 36") is one variable.
REPEATS_RE = re.compile(r"(<[A-Z]+>)(?:,? \1)+")
# HTTP status codes carry meaning (200 vs 403 vs 503): keep them, marked so the number rule skips them.
HTTP_STATUS_RE = re.compile(r"(?i)\b(status(?:[ _]?code)?|code|returned|response|http/\d(?:\.\d)?\"?)([\s=:]+)([1-5]\d\d)\b")


_plan: tuple = (None, ())


def _need_check(need):
    """A literal or a few (str.__contains__ is the fastest check), or for many one compiled search."""
    if need is None or isinstance(need, str) or len(need) <= 4:
        return need
    return re.compile("|".join(map(re.escape, need))).search


def _rules() -> tuple:
    """(placeholder, sub, needed literals or None) per rule, rebuilt when RULE_NEEDS is replaced. Looking
    a compiled pattern up in a dict hashes its whole program, so that is not done per line."""
    global _plan
    needs, rules = _plan
    if needs is not RULE_NEEDS:
        rules = tuple((placeholder, pattern.sub, _need_check(RULE_NEEDS.get(pattern)))
                      for placeholder, pattern in MASK_RULES)
        _plan = (RULE_NEEDS, rules)
    return rules


HTTP_STATUS_WORDS = ("status", "code", "returned", "response", "http/")  # what HTTP_STATUS_RE needs


def mask_message(message: str) -> str:
    """Replace variables in a message with placeholders and normalise whitespace."""
    return mask_marked(mark_http_status(message))


def mark_http_status(message: str) -> str:
    """The message cut to the length masking reads, its HTTP status codes marked ("<503>"): masking's
    first step, apart so service/shape_memo.py can take a line's shape after it."""
    text = message[: MAX_TEMPLATE_CHARS * 4]  # bound regex work on huge lines
    if text.isascii():  # (?i) also folds some non-ASCII letters ("ſ"): those lines take the regex
        lowered = text.lower()
        if not any(word in lowered for word in HTTP_STATUS_WORDS):
            return text
    return HTTP_STATUS_RE.sub(r"\1\2<\3>", text)


def mask_marked(text: str) -> str:
    """mask_message after mark_http_status."""
    for placeholder, sub, need in _rules():
        if need is not None:
            if type(need) is str:
                if need not in text:
                    continue
            elif type(need) is tuple:
                for literal in need:
                    if literal in text:
                        break
                else:
                    continue
            elif need(text) is None:
                continue
        text = sub(placeholder, text)
    text = WHITESPACE_RE.sub(" ", text).strip()
    if "> <" in text or ">, <" in text:
        text = REPEATS_RE.sub(r"\1", text)
    return text[:MAX_TEMPLATE_CHARS].rstrip()


def template_key(parsed: ParsedLine) -> str:
    """The model input and cache key: normalised level (when the envelope gave one) + masked message."""
    return key_of(parsed.message, parsed.level)


def key_of(message: str, level: str | None = None) -> str:
    """template_key from the two fields it depends on (hashable, so a caller can memoise it)."""
    return key_of_marked(mark_http_status(message), level)


def key_of_marked(text: str, level: str | None = None) -> str:
    """key_of after mark_http_status."""
    masked = mask_marked(text)
    return f"[{level}] {masked}" if level else masked
