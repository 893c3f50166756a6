"""Log-line parsing: find the human message (and its level) inside the usual envelopes.

Formats (ParsedLine.format), chosen by the line's first character, then by cheap pre-checks, before
any regex runs (parse_line is on the serving hot path):

  cri            2024-06-12T10:01:02.123456789Z stdout F <message>            (containerd/CRI-O files)
  docker         {"log": "<message>\\n", "stream": "stdout", "time": "..."}   (docker json-file)
  json           {"level": "error", "msg": "<message>", ...}                   (zap, logr, slog JSON, .NET
                                                                               "LogLevel", MongoDB "s")
  klog           E0612 10:01:02.123456       1 file.go:12] <message>          (also after a grep "157:")
  logfmt         time="..." level=info msg="<message>" k=v                     (logrus, go-kit, slog text)
  logrus         ERRO[0001] <message>                                          (logrus on a terminal)
  zap-console    2026-11-22T01:14:55.341Z<TAB>info<TAB>caller.go:44<TAB><message><TAB>{...}
  syslog         Aug  6 19:02:55 host prog[pid]: <message>                    (RFC 3164, RFC 3339 stamps,
                 <34>1 2003-10-11T22:14:15.003Z host app - - - <message>        RFC 5424)
  kubectl-event  Warning  FailedScheduling  61s (x5 over 3m1s)  default-scheduler  <message>
                 55s  Warning  Failed  pod/web-1  <message>                    (kubectl get events [-w])
  java           Spring Boot "... INFO 1 --- [main] o.s.Logger : <message>", logback/log4j
                 "... ERROR [thread] com.x.Y - <message>", Tomcat/JUL "03-Dec-2026 ... WARNING [main] ..."
  python         "2026-12-03 13:46:20,009 ERROR [name] <message>", "ERROR:root:<message>",
                 celery "[2026-12-03 09:59:58,004: ERROR/MainProcess] <message>", django "WARNING <ts> ..."
  nginx          2026/12/03 10:05:19 [error] 31#31: *3120 <message>          (error log)
  apache         [Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] <message> (error log; 2.4 "[core:error]")
  postgres       [<ts> UTC [pid] [user@db ]]FATAL:  <message>                 (also pgbouncer)
  mysql          2026-12-03T10:00:04.611093Z 0 [Warning] [MY-010068] [Server] <message>
  redis          1:M 14 Nov 2026 08:12:44.903 # <message>
  falco          13:20:01.123456789: Warning <message>
  ceph           [debug ]2026-12-03T10:12:40.775+0000 7f3c2a1ff640 -1 <message>  (priority, or "log [WRN] :")
  dotnet         fail: Microsoft.AspNetCore.Server.Kestrel[13] <message>       (.NET console logger)
  dmesg          [ 2210.775001] <message>                                   (uptime stripped)
  leveled        any other "<timestamp> <level> <message>" shape: "[INFO] msg", "ERROR: msg", hclog
                 "<ts> [WARN]  core: msg", capnslog "<ts> W | pkg: msg", zerolog "<ts> WRN msg",
                 fluent-bit, envoy, rabbitmq, calico felix, gunicorn, elasticsearch, linkerd...
  plain          anything else: the whole line is the message

Envelopes nest: a CRI or docker line whose payload is itself another envelope is unwrapped once more
("cri+klog", "docker+json", "cri+leveled"); so is a syslog line ("syslog+klog", "syslog+logfmt").
Nginx/apache access logs stay plain on purpose: they have no level, and the whole line (request,
status) is the message; masking already turns the client address and the time into placeholders.

Never raises: a parser that does not recognise its envelope returns None and the next one is tried;
the last resort is plain. Header regexes only look at the first HEADER_MAX characters, so a huge or
hostile line costs at most a bounded amount of regex work before its message is sliced out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CRI_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\S+) (stdout|stderr) ([FP]) ?(.*)$", re.DOTALL)
KLOG_RE = re.compile(r"^([IWEF])(\d{4}) (\d{2}:\d{2}:\d{2}\.\d+)\s+(\d+) ([^\s\]]+:\d+)\] ?(.*)$", re.DOTALL)

KLOG_LEVELS = {"I": "info", "W": "warning", "E": "error", "F": "fatal"}
MESSAGE_KEYS = ("msg", "message", "log", "text", "MESSAGE", "Message")
LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level", "Level", "Severity", "LogLevel")
TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "Timestamp")
# zap/logr put the cause beside the message ("msg":"Reconciler error","error":"..."): keep it. The
# dotted keys: ECS "error.message", the docker registry's logrus err.message.
ERROR_KEYS = ("error", "err", "exception", "error.message", "err.message")

# Many spellings of the same severity; the model sees the normalised one.
LEVEL_ALIASES = {
    "trace": "debug", "debug": "debug", "dbg": "debug",
    "info": "info", "information": "info", "informational": "info", "notice": "info",
    "warn": "warning", "warning": "warning",
    "err": "error", "error": "error", "severe": "error",
    "crit": "fatal", "critical": "fatal", "fatal": "fatal", "panic": "fatal",
    "alert": "fatal", "emerg": "fatal", "emergency": "fatal",
    # zerolog console (TRC DBG INF WRN ERR FTL PNC), logrus on a terminal (DEBU INFO WARN ERRO FATA
    # PANI TRAC), java.util.logging (FINE FINER FINEST), .NET console (dbug trce).
    "trc": "debug", "inf": "info", "wrn": "warning", "ftl": "fatal", "pnc": "fatal",
    "debu": "debug", "trac": "debug", "erro": "error", "fata": "fatal", "pani": "fatal",
    "fine": "debug", "finer": "debug", "finest": "debug", "dbug": "debug", "trce": "debug",
}
MAX_UNWRAP_DEPTH = 2
HEADER_MAX = 400  # no envelope header is longer; header regexes never look further

# Syslog severities (RFC 5424 PRI & 7), also the kernel's printk levels.
SYSLOG_SEVERITIES = ("fatal", "fatal", "fatal", "error", "warning", "info", "info", "debug")
# Single-letter and product-specific spellings, only where the envelope makes them unambiguous.
CAPNSLOG_LEVELS = {"C": "fatal", "E": "error", "W": "warning", "N": "info", "I": "info", "D": "debug", "T": "debug"}
REDIS_LEVELS = {"#": "warning", "*": "info", "-": "debug", ".": "debug"}
MYSQL_LEVELS = {"System": "info", "Note": "info", "Warning": "warning", "Error": "error", "ERROR": "error",
                "Warn": "warning"}
CEPH_CLUSTER_LEVELS = {"DBG": "debug", "INF": "info", "SEC": "info", "WRN": "warning", "ERR": "error"}
DOTNET_LEVELS = {"fail": "error", "crit": "fatal"}  # the rest are in LEVEL_ALIASES
EVENT_LEVELS = {"Normal": "info", "Warning": "warning"}
POSTGRES_LEVELS = {"LOG": "info", "DETAIL": None, "HINT": None, "STATEMENT": None, "CONTEXT": None,
                   "LOCATION": None, "NOISE": "debug"}  # DETAIL etc. continue the line before
# MongoDB's JSON log: {"t": {"$date": ...}, "s": "W", "c": "REPL", "msg": ...}
MONGO_LEVELS = {"F": "fatal", "E": "error", "W": "warning", "I": "info",
                **{f"D{n}": "debug" for n in range(1, 6)}}
# Words a line opens with when it opens with its level (one set lookup spares plain text the regexes).
FIRST_WORDS = frozenset(_w.upper() for _w in (
    *"EMERGENCY EMERG ALERT CRITICAL CRIT FATAL PANIC SEVERE ERROR ERR WARNING WARN NOTICE INFO DEBUG TRACE".split(),
    *"ERRO FATA DEBU PANI TRAC LOG DETAIL HINT STATEMENT CONTEXT LOCATION FAIL DBUG TRCE".split(),
    *(f"DEBUG{n}" for n in range(1, 6))))
MONTHS = frozenset(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))

# --- regex pieces ----------------------------------------------------------------------------
_LEVEL_NAMES = "EMERGENCY|EMERG|ALERT|CRITICAL|CRIT|FATAL|PANIC|SEVERE|ERROR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE"
_LV_UPPER = f"(?:{_LEVEL_NAMES})"
_LV_BARE = f"(?:{_LEVEL_NAMES}|{_LEVEL_NAMES.lower()})"  # all upper or all lower: not "Error"
_LV_ANY = f"(?i:{_LEVEL_NAMES})"  # inside brackets any case: "[Warning]", "[ info]"
_TS = r"\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|\s?[+-]\d{2}:?\d{2}(?!\d))?"
_AGE = r"(?:\d+[smhdy])+|<unknown>|<invalid>"
_POSTGRES_LEVELS = r"DEBUG[1-5]?|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT|LOCATION"

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|#033\[[0-9;]*m")  # colours (rsyslog writes ESC as #033)
TS_RE = re.compile(_TS)
CLOCK_RE = re.compile(r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?= )")  # logback's default pattern, Elixir

# After a leading timestamp (matched at the timestamp's end):
NGINX_RE = re.compile(r" \[(debug|info|notice|warn|error|crit|alert|emerg)\] (\d+)#(\d+): (?:\*(\d+) )?")
POSTGRES_TS_RE = re.compile(rf"(?: [A-Z]{{2,5}})? \[(\d+)\](?:-\d+)? (?:(\S*@\S*) )?({_POSTGRES_LEVELS}|NOISE):?\s+")
SPRING_RE = re.compile(rf"\s+({_LV_UPPER})\s+(?:\[[^\]]*\]\s+)?(\d+) --- (?:\[([^\]]*)\] )?\[\s*([^\]]*)\]\s+(\S+)\s*:\s")
LOGBACK_RE = re.compile(rf"\s+(?:\[([^\]]*)\]\s+)?({_LV_UPPER})\s+(?:\[([^\]]*)\]\s+)?([\w.$]+)\s+-\s")
# Python's cookbook format "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
PYTHON_DASH_RE = re.compile(rf" - ([\w.\-]+) - ({_LV_UPPER}) - ")
MYSQL_RE = re.compile(r" (\d+) \[(System|Warning|Warn|Error|ERROR|Note)\] (?:\[(MY-\d+)\] )?(?:\[(\w+)\] )?")
# ceph daemons: "<ts> <thread id> <priority> [log_channel(cluster) log [WRN] : ]msg" (containers prefix "debug ")
CEPH_RE = re.compile(r" ([0-9a-f]{8,16}) +(-?\d+) (?:log_channel\((\w+)\) log \[(DBG|INF|SEC|WRN|ERR)\] : )?")
CAPNSLOG_RE = re.compile(r" ([CEWNIDT]) \| ")
ZEROLOG_RE = re.compile(r" (TRC|DBG|INF|WRN|ERR|FTL|PNC) (?:(\S+:\d+) > )?")
LEVELED_RE = re.compile(  # "[pid]"? then "[LEVEL]" (apache 2.4: "[module:level]") or a bare LEVEL
    rf"\s*(?:\[\d+\]\s*)?(?:\[\s*(?:[\w-]+:)?({_LV_ANY})\s*\]|({_LV_BARE})(?=[\s:]))(?:\[\d+\])?:?\s*")
RFC3339_SYSLOG_RE = re.compile(r" ([\w.\-]+) ([^\s\[\]:]+)(?:\[(\d+)\])?: ?")
# What a generic leveled line often puts before its message: [logger] [context], "file.go 123:",
# a process id "(8) :", an Erlang pid "<0.526.0>", a Rust thread "ThreadId(01)".
LEVELED_REST_RE = re.compile(
    r"(?:\[([^\]\n]{0,200})\]:?\s*)?(?:\[([^\]\n]{0,200})\]:?\s*)?"
    r"(?:([\w./-]+\.\w+(?::|\s)\d+):\s+|\(\d+\)\s*:\s*|<\d+\.\d+\.\d+>\s+|ThreadId\(\d+\)\s+)?")

# Whole-header regexes, by first character.
GREP_KLOG_RE = re.compile(r"(\d{1,9}):(?=[IWEF]\d{4} )")
REDIS_RE = re.compile(r"(\d+):([XCSM]) (\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?) ([.\-*#]) ")
TOMCAT_RE = re.compile(r"(\d{2}-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?) "
                       r"(SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST) \[([^\]]*)\] (\S+) ")
FALCO_RE = re.compile(r"(\d{2}:\d{2}:\d{2}\.\d+): (Emergency|Alert|Critical|Error|Warning|Notice|Informational|Debug) ")
EVENT_GET_RE = re.compile(rf"({_AGE}|\d{{1,2}}:\d{{2}}(?::\d{{2}})?(?:\s?[AP]M)?)"
                          rf"\s+(Normal|Warning)\s+([A-Za-z]\w*)\s+(?:([a-z][\w.-]*/\S+)\s+)?")
EVENT_DESCRIBE_RE = re.compile(rf"(Normal|Warning)\s+([A-Za-z]\w*)\s+({_AGE})(?: \(x(\d+) over (?:\d+[smhdy])+\))?"
                               r"\s+([^\s,]+(?:, [^\s,]+)?)\s+")
SYSLOG_RE = re.compile(r"(?:<(\d{1,3})>)?((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                       r"\d{2}:\d{2}:\d{2}) (?:(\S+) )?([^\s\[\]:]+)(?:\[(\d+)\])?: ?")
RFC5424_RE = re.compile(r"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\"]|\"(?:[^\"\\]|\\.)*\")*\])+) ?")
DMESG_RE = re.compile(r"(?:<([0-7])>)?\[\s*(\d+\.\d+)(s?)\]\s*")
CELERY_RE = re.compile(rf"\[({_TS}): ({_LV_UPPER})/([^\]]+)\]\s*")
BRACKET_TS_RE = re.compile(r"\[(\d{4}[-/]\d{2}[-/]\d{2}[T ][^\]]{5,40}|\d{2}-[A-Z][a-z]{2}-\d{4} [^\]]{5,30})\]")
APACHE_TS_RE = re.compile(r"\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\]")
BRACKET_LEVEL_RE = re.compile(rf"\[\s*({_LV_ANY})(?:\s+([^\]]{{0,100}}))?\s*\]:?\s*")
LOGRUS_TEXT_RE = re.compile(r"(TRAC|DEBU|INFO|WARN|ERRO|FATA|PANI)\[([^\]]{1,40})\]\s*")
PYTHON_DEFAULT_RE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL):([\w.\-]+):")
DOTNET_RE = re.compile(r"(info|warn|fail|crit|dbug|trce): ([\w.`+]+)\[(\d+)\]\s*")
LEVEL_TS_RE = re.compile(rf"({_LV_UPPER}|ERRO|FATA|DEBU|PANI|TRAC):?\s+(?:\[([^\]]*)\]\s+)?({_TS})\s+")
POSTGRES_RE = re.compile(rf"({_POSTGRES_LEVELS}):  (?=\S)")
LEVEL_PREFIX_RE = re.compile(rf"(?:({_LV_UPPER})(?=[\s:])|((?i:error|warning|warn|info|fatal|critical|debug|notice))(?=:))"
                             r"(?::\s*|\s+)")
SOURCE_LINE_RE = re.compile(r"^(\S+:\d+) - ")  # cassandra "BatchStatement.java:323 - msg"
CALLER_RE = re.compile(r"\.\w+:\d+$")
# A quoted value may be unterminated (a truncated line): it then runs to the end. Unrolled-loop form
# for the quoted string: four times faster than (?:[^"\\]|\\.)* on CPython's engine.
LOGFMT_PAIR_RE = re.compile(r'(?<!\S)([A-Za-z_][\w.\-/@]*)=("[^"\\]*(?:\\.[^"\\]*)*"?|[^\s"]*)')
LOGFMT_KEY_RE = re.compile(r"[A-Za-z_][\w.\-/@]*=")
LOGFMT_MESSAGE_KEYS = ("msg", "message")
LOGFMT_LEVEL_KEYS = ("level", "lvl", "severity")
LOGFMT_TIME_KEYS = ("time", "ts", "t", "timestamp")
ESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
PYTHON_TS_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}$")  # logging's default asctime

# Envelopes that say where a message comes from themselves: a syslog line around one of them is
# unwrapped to the inner message (program kept in fields). Around anything else (plain text, a bare
# "ERROR:" prefix, dmesg) the program name stays in the message: it carries meaning there.
SELF_DESCRIBING = frozenset(("klog", "json", "logfmt", "logrus", "zap-console", "java", "python", "docker"))
_JSON_DECODER = json.JSONDecoder(strict=False)


@dataclass
class ParsedLine:
    message: str
    level: str | None = None
    timestamp: str | None = None
    format: str = "plain"
    fields: dict = field(default_factory=dict)


def normalise_level(value) -> str | None:
    if value is None:
        return None
    return LEVEL_ALIASES.get(str(value).strip().lower())


def parse_line(line: str) -> ParsedLine:
    """Parse one decoded log line (without its trailing newline). Never raises."""
    line = line.rstrip("\r\n")
    if "\x1b" in line or "#033[" in line:
        line = ANSI_RE.sub("", line)
    try:
        return _parse(line, depth=0)
    except Exception:  # noqa: BLE001 - a parser bug must cost one line its envelope, never the service
        return ParsedLine(message=line.strip())


def _parse(text: str, depth: int) -> ParsedLine:
    stripped = text.strip()
    parsed = (_parse_envelope(text, stripped) if stripped else None) or ParsedLine(message=stripped)
    fmt = parsed.format
    if fmt in ("cri", "docker"):
        if depth < MAX_UNWRAP_DEPTH:
            inner = _parse(parsed.message, depth + 1)
            if inner.format != "plain":
                # Keep the outer envelope's format name; take the inner message and level.
                inner.timestamp = inner.timestamp or parsed.timestamp
                inner.fields = {**parsed.fields, **inner.fields}
                inner.format = f"{parsed.format}+{inner.format}"
                return inner
    elif fmt == "syslog":
        return _unwrap_syslog(parsed, depth)
    return parsed


def _parse_envelope(text: str, s: str) -> ParsedLine | None:
    """The outermost envelope of text (s: text stripped, not empty), dispatched on the first
    character; None when none is recognised."""
    c = s[0]
    if c == "{":
        return _parse_json(text)
    if c.isdigit():
        return _parse_cri(text) or _parse_digit(s)
    if c == "[":
        return _parse_bracket(s)
    if c == "<":
        return _parse_angle(s)
    if c.isalpha():
        return _parse_klog(text) or _parse_alpha(s)
    return None


# --- CRI, JSON, klog (the original three) ------------------------------------------------------

def _parse_cri(text: str) -> ParsedLine | None:
    m = CRI_RE.match(text)
    if not m:
        return None
    ts, stream, tag, message = m.groups()
    return ParsedLine(message=message.strip(), timestamp=ts, format="cri",
                      fields={"stream": stream, "partial": tag == "P"})


def _parse_json(text: str) -> ParsedLine | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    if "log" in obj and "stream" in obj:  # docker json-file driver
        return ParsedLine(message=str(obj["log"]).strip(), timestamp=obj.get("time"), format="docker",
                          fields={"stream": obj.get("stream")})
    message_key = next((k for k in MESSAGE_KEYS if k in obj), None)
    level_key = next((k for k in LEVEL_KEYS if k in obj), None)
    if level_key is not None:
        level = normalise_level(obj[level_key])
    elif isinstance(obj.get("s"), str) and obj["s"] in MONGO_LEVELS and "c" in obj and "t" in obj:
        level_key, level = "s", MONGO_LEVELS[obj["s"]]
    else:
        level = None
    if message_key is None:
        # Structured but with no message field: classify the whole object as text (its level still read).
        return ParsedLine(message=stripped, level=level, format="json", fields={})
    time_key = next((k for k in TIME_KEYS if k in obj), None)
    rest = {k: v for k, v in obj.items() if k not in (message_key, level_key, time_key)}
    message = obj[message_key] if isinstance(obj[message_key], str) else json.dumps(obj[message_key])
    error_key = next((k for k in ERROR_KEYS if isinstance(obj.get(k), str) and obj[k]), None)
    if error_key:
        message = f"{message.strip()}: {obj[error_key]}"
    return ParsedLine(message=message.strip(), level=level,
                      timestamp=str(obj[time_key]) if time_key else None, format="json", fields=rest)


def _parse_klog(text: str) -> ParsedLine | None:
    m = KLOG_RE.match(text)
    if not m:
        return None
    severity, mmdd, clock, _thread, source, message = m.groups()
    return ParsedLine(message=message.strip(), level=KLOG_LEVELS[severity], timestamp=f"{mmdd} {clock}",
                      format="klog", fields={"source": source})


# --- lines that start with a digit -------------------------------------------------------------

def _parse_digit(s: str) -> ParsedLine | None:
    if s[4:5] in ("-", "/") and s[:4].isdigit():
        return _parse_timestamped(s)
    head = s[:12]
    if ":" in head:
        m = GREP_KLOG_RE.match(s)  # grep -n output: "157:I1103 14:17:19.868380 ..."
        if m:
            inner = _parse_klog(s[m.end():])
            if inner:
                inner.fields["line_number"] = m.group(1)
                return inner
        if ":" in s[1:8]:
            m = REDIS_RE.match(s, 0, HEADER_MAX)
            if m:
                pid, role, ts, mark = m.groups()
                return ParsedLine(message=s[m.end():].strip(), level=REDIS_LEVELS[mark], timestamp=ts,
                                  format="redis", fields={"pid": pid, "role": role})
        m = FALCO_RE.match(s, 0, HEADER_MAX)
        if m:
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(m.group(2)),
                              timestamp=m.group(1), format="falco")
    if s[2:3] == ":" and s[5:6] == ":":
        m = CLOCK_RE.match(s, 0, 40)
        if m:  # "10:01:02.123 [main] INFO  c.x.Y - msg" (logback's default), "10:41:07.622 [error] msg"
            parsed = _after_timestamp(s, m.end(), m.group())
            if parsed:
                return parsed
    if s[2:3] == "-" and s[3:4].isalpha():
        m = TOMCAT_RE.match(s, 0, HEADER_MAX)
        if m:
            ts, level, thread, logger = m.groups()
            return ParsedLine(message=s[m.end():].strip(), level="info" if level == "CONFIG" else normalise_level(level),
                              timestamp=ts, format="java", fields={"thread": thread, "logger": logger})
    if "Normal" in s[:40] or "Warning" in s[:40]:
        return _parse_event_get(s)
    return None


def _parse_timestamped(s: str) -> ParsedLine | None:
    """Lines that open with an ISO-like timestamp: most text loggers."""
    m = TS_RE.match(s)
    if not m:
        return None
    ts, pos = m.group(), m.end()
    nxt = s[pos:pos + 1]
    if nxt == "\t":
        return _parse_zap_console(s, pos, ts)
    if nxt == ":":
        return None  # "2024-12-03T10:12:44: PM2 log: ..." and friends: no level to find
    parsed = _after_timestamp(s, pos, ts)
    if parsed:
        if parsed.format == "leveled" and PYTHON_TS_RE.match(ts):
            parsed.format = "python"
        return parsed
    if "T" in ts and (ts.endswith("Z") or ts[-6:-5] in ("+", "-")):
        m = RFC3339_SYSLOG_RE.match(s, pos, pos + HEADER_MAX)  # rsyslog's high-precision template
        if m:
            host, prog, _pid = m.groups()
            return _syslog_line(s[m.end():], None, ts, host, prog)
    return None


def _after_timestamp(s: str, pos: int, ts: str) -> ParsedLine | None:
    """The level and the message of a text line whose timestamp ends at pos."""
    end = pos + HEADER_MAX
    if s[pos:pos + 2] == " [" and "#" in s[pos:pos + 30]:
        m = NGINX_RE.match(s, pos, end)
        if m:
            level, pid, tid, conn = m.groups()
            fields = {"pid": pid, "tid": tid}
            if conn:
                fields["connection"] = conn
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                              format="nginx", fields=fields)
    if "[" in s[pos:pos + 8]:
        m = POSTGRES_TS_RE.match(s, pos, end)
        if m:
            pid, who, level = m.groups()
            fields = {"pid": pid, **({"user": who} if who else {})}
            return ParsedLine(message=s[m.end():].strip(), level=_postgres_level(level), timestamp=ts,
                              format="postgres", fields=fields)
    if "---" in s[pos:pos + 80]:
        m = SPRING_RE.match(s, pos, end)
        if m:
            level, pid, app, thread, logger = m.groups()
            fields = {"pid": pid, "thread": thread.strip(), "logger": logger}
            if app:
                fields["application"] = app
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                              format="java", fields=fields)
    if " - " in s[pos:end]:
        m = LOGBACK_RE.match(s, pos, end)
        # "<ts> ERROR [name] Failed - retrying" is Python's "[name] msg" with a dash in msg, not
        # logback's "<ts> ERROR [thread] com.x.Y - msg": after "LEVEL [x]" the logger must be dotted.
        if m and not (m.group(3) and "." not in m.group(4)):
            thread, level, thread2, logger = m.groups()
            fields = {"logger": logger}
            if thread or thread2:
                fields["thread"] = thread or thread2
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                              format="java", fields=fields)
        m = PYTHON_DASH_RE.match(s, pos, end)
        if m:
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(m.group(2)), timestamp=ts,
                              format="python", fields={"logger": m.group(1)})
    m = MYSQL_RE.match(s, pos, end)
    if m:
        thread, level, code, subsystem = m.groups()
        fields = {"thread": thread, **({"code": code} if code else {}), **({"subsystem": subsystem} if subsystem else {})}
        return ParsedLine(message=s[m.end():].strip(), level=MYSQL_LEVELS[level], timestamp=ts,
                          format="mysql", fields=fields)
    m = CAPNSLOG_RE.match(s, pos, end)
    if m:
        return ParsedLine(message=s[m.end():].strip(), level=CAPNSLOG_LEVELS[m.group(1)], timestamp=ts,
                          format="leveled")
    m = ZEROLOG_RE.match(s, pos, end)
    if m:
        level, caller = m.groups()
        return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                          format="leveled", fields={"source": caller} if caller else {})
    m = CEPH_RE.match(s, pos, end)
    if m:
        thread, priority, channel, cluster_level = m.groups()
        if cluster_level:
            level = CEPH_CLUSTER_LEVELS[cluster_level]
        else:  # derr is -1, dout(0) is what a daemon always says, higher numbers are debug output
            level = "error" if priority.startswith("-") else "info" if priority == "0" else "debug"
        fields = {"thread": thread, **({"channel": channel} if channel else {})}
        return ParsedLine(message=s[m.end():].strip(), level=level, timestamp=ts, format="ceph", fields=fields)
    return _parse_leveled(s, pos, ts)


def _parse_leveled(s: str, pos: int, ts: str | None) -> ParsedLine | None:
    """'<level> <message>' at pos, the level bare or in brackets (after a timestamp, usually)."""
    m = LEVELED_RE.match(s, pos, pos + HEADER_MAX)
    if not m:
        return None
    level = normalise_level(m.group(1) or m.group(2))
    return _leveled_rest(s, m.end(), level, ts, "leveled")


def _leveled_rest(s: str, pos: int, level: str | None, ts: str | None, fmt: str, fields: dict | None = None,
                  brackets: bool = True) -> ParsedLine:
    """The message after a level at pos, with what loggers typically put before it moved to fields.
    brackets=False: a leading "[...]" is part of the message ("ERROR:    [Errno 98] ...")."""
    fields = dict(fields or {})
    m = None if not brackets and s.startswith("[", pos) else LEVELED_REST_RE.match(s, pos, pos + HEADER_MAX)
    if m and pos < m.end() < len(s):  # never strip the whole message away
        logger, context, source = m.groups()
        if logger is not None:
            fields.setdefault("logger", logger.strip())
        if context is not None:
            fields.setdefault("context", context.strip())
        if source:
            fields.setdefault("source", source)
        pos = m.end()
    return ParsedLine(message=s[pos:].strip(), level=level, timestamp=ts, format=fmt, fields=fields)


def _parse_zap_console(s: str, pos: int, ts: str) -> ParsedLine | None:
    """zap's console encoder: timestamp, level, [logger], [caller], message, [JSON fields], tab-separated."""
    cols = s[pos + 1:].split("\t")
    level = normalise_level(cols[0])
    if level is None or len(cols) < 2:
        return None
    cols = cols[1:]
    fields: dict = {}
    last = cols[-1].strip()
    if len(cols) > 1 and last.startswith("{") and last.endswith("}"):
        try:
            obj = json.loads(last)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict):
            fields.update(obj)
            cols = cols[:-1]
    meta: dict = {}
    while len(cols) > 1 and cols[0] and " " not in cols[0]:  # [logger] [caller], in that order
        key = "source" if CALLER_RE.search(cols[0]) else "logger"
        if key in meta or "source" in meta:
            break
        meta[key] = cols[0]
        cols = cols[1:]
    fields.update(meta)
    message = "\t".join(cols).strip()
    error = next((fields[k] for k in ERROR_KEYS if isinstance(fields.get(k), str) and fields[k]), None)
    if error:
        message = f"{message}: {error}"
    return ParsedLine(message=message, level=level, timestamp=ts, format="zap-console", fields=fields)


def _parse_event_get(s: str) -> ParsedLine | None:
    """`kubectl get events` (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE) and its -w / UI clock form."""
    m = EVENT_GET_RE.match(s, 0, HEADER_MAX)
    if not m:
        return None
    age, kind, reason, obj = m.groups()
    fields = {"age": age, **({"object": obj} if obj else {})}
    return _event(s[m.end():], kind, reason, fields)


def _event(message: str, kind: str, reason: str, fields: dict) -> ParsedLine:
    # "<Reason> <message>": the Reason word is the most informative token of an event. The source
    # component ("kubelet", "default-scheduler") and the object go to fields, not into the message:
    # `kubectl get events` prints the object but not the source, `kubectl describe` the source but not
    # the object, so keeping either would give the same event two template keys; the Reason already
    # implies the component (FailedScheduling: scheduler), and the source column often names a node.
    return ParsedLine(message=f"{reason} {message.strip()}".strip(), level=EVENT_LEVELS[kind],
                      format="kubectl-event", fields=fields)


# --- lines that start with "[" or "<" ----------------------------------------------------------

def _parse_bracket(s: str) -> ParsedLine | None:
    c = s[1:2]
    if c == " " or c.isdigit():
        m = DMESG_RE.match(s, 0, HEADER_MAX)
        if m:
            _pri, uptime, seconds = m.groups()
            if seconds:  # Rust tracing's uptime "[  1.2s]  INFO ThreadId(01) target: msg" (linkerd)
                return _parse_leveled(s, m.end(), None)
            return ParsedLine(message=s[m.end():].strip(), format="dmesg", fields={"uptime": uptime})
        if c.isdigit():
            m = CELERY_RE.match(s, 0, HEADER_MAX)
            if m:
                ts, level, process = m.groups()
                return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                                  format="python", fields={"process": process})
            m = BRACKET_TS_RE.match(s, 0, HEADER_MAX)
            if m:  # kafka/log4j, gunicorn, elasticsearch, fluent-bit, envoy, php-fpm...
                return _parse_leveled(s, m.end(), m.group(1))
        return None
    if s[4:5] == " " and s[8:9] == " ":
        m = APACHE_TS_RE.match(s, 0, HEADER_MAX)
        if m:  # apache httpd's error log: "[Sun Dec 04 04:47:44 2005] [error] [client 1.2.3.4] msg"
            parsed = _parse_leveled(s, m.end(), m.group(1))
            if parsed:
                parsed.format = "apache"
            return parsed
    m = BRACKET_LEVEL_RE.match(s, 0, HEADER_MAX)
    if m:  # "[INFO] msg", "[WARNING]  (8) : msg", "[ERROR NumCPU]: msg", "[INFO  tini (1)] msg"
        level, extra = m.groups()
        return _leveled_rest(s, m.end(), normalise_level(level), None, "leveled",
                             {"logger": extra.strip()} if extra and extra.strip() else None)
    close = s.find("] ", 1, 120)
    if close > 0 and "=" in s[close:close + 40]:  # longhorn "[pvc-...-e-0] time=... level=error msg=..."
        parsed = _parse_logfmt(s[close + 2:].lstrip())
        if parsed:
            parsed.fields["prefix"] = s[1:close]
            return parsed
    return None


def _parse_angle(s: str) -> ParsedLine | None:
    """A syslog PRI ("<34>"): RFC 5424, RFC 3164 with PRI, or a kernel "<3>[ 12.3] msg"."""
    if s[1:2].isdigit():
        m = DMESG_RE.match(s, 0, HEADER_MAX)
        if m:
            pri, uptime, _s = m.groups()
            return ParsedLine(message=s[m.end():].strip(), level=SYSLOG_SEVERITIES[int(pri) & 7] if pri else None,
                              format="dmesg", fields={"uptime": uptime})
        m = RFC5424_RE.match(s, 0, HEADER_MAX)
        if m:
            pri, ts, host, app, _procid, _msgid, _sd = m.groups()
            message = s[m.end():].lstrip("\ufeff")
            return _syslog_line(message, int(pri), None if ts == "-" else ts,
                                None if host == "-" else host, None if app == "-" else app)
        return _parse_syslog(s)
    return None


# --- lines that start with a letter ------------------------------------------------------------

def _parse_alpha(s: str) -> ParsedLine | None:
    if s[3:4] == " " and s[:3] in MONTHS:
        return _parse_syslog(s)
    if s.startswith(("Normal ", "Warning ")):
        m = EVENT_DESCRIBE_RE.match(s, 0, HEADER_MAX)
        if m:
            kind, reason, age, count, source = m.groups()
            fields = {"age": age, "source": source, **({"count": int(count)} if count else {})}
            return _event(s[m.end():], kind, reason, fields)
    if s.startswith("debug ") and s[6:7].isdigit():  # ceph containers put "debug " before every line
        parsed = _parse_timestamped(s[6:])
        if parsed and parsed.format == "ceph":
            return parsed
    eq = s.find("=", 0, 64)
    if eq > 0 and ("level=" in s or "msg=" in s or "lvl=" in s):
        parsed = _parse_logfmt(s)
        if parsed:
            return parsed
    if s[4:5] == "[":
        m = LOGRUS_TEXT_RE.match(s, 0, HEADER_MAX)
        if m:
            level, ts = m.groups()
            return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), timestamp=ts,
                              format="logrus")
    first = s[:12].split(None, 1)[0].split(":", 1)[0]
    if first.upper() not in FIRST_WORDS or not (first.isupper() or first[:1].isupper() or s[len(first):len(first) + 1] == ":"):
        return None  # the rest all open with a level word: upper case, or followed by ":"
    m = PYTHON_DEFAULT_RE.match(s, 0, HEADER_MAX)
    if m:
        level, logger = m.groups()
        return ParsedLine(message=s[m.end():].strip(), level=normalise_level(level), format="python",
                          fields={"logger": logger})
    m = DOTNET_RE.match(s, 0, HEADER_MAX)
    if m:
        level, category, event_id = m.groups()
        return ParsedLine(message=s[m.end():].strip(), level=DOTNET_LEVELS.get(level) or normalise_level(level),
                          format="dotnet", fields={"logger": category, "event_id": event_id})
    m = LEVEL_TS_RE.match(s, 0, HEADER_MAX)
    if m:  # django "WARNING <ts> module msg", sidekiq, cassandra "WARN  [thread] <ts> File.java:323 - msg"
        level, thread, ts = m.groups()
        fields = {"thread": thread} if thread else {}
        rest = s[m.end():]
        src = SOURCE_LINE_RE.match(rest)
        if src:
            fields["source"] = src.group(1)
            rest = rest[src.end():]
        fmt = "java" if thread else "python" if PYTHON_TS_RE.match(ts) else "leveled"
        return ParsedLine(message=rest.strip(), level=normalise_level(level), timestamp=ts, format=fmt, fields=fields)
    m = POSTGRES_RE.match(s, 0, HEADER_MAX)
    if m:  # "FATAL:  msg", "LOG:  msg" (two spaces: postgres' own separator)
        return ParsedLine(message=s[m.end():].strip(), level=_postgres_level(m.group(1)), format="postgres")
    m = LEVEL_PREFIX_RE.match(s, 0, HEADER_MAX)
    if m:  # "ERROR: msg", "INFO:     msg" (uvicorn), "error: msg" (kubectl, helm), "WARN msg"
        return _leveled_rest(s, m.end(), normalise_level(m.group(1) or m.group(2)), None, "leveled", brackets=False)
    return None


def _postgres_level(level: str) -> str | None:
    if level in POSTGRES_LEVELS:
        return POSTGRES_LEVELS[level]
    return "debug" if level.startswith("DEBUG") else normalise_level(level)


# --- logfmt --------------------------------------------------------------------------------------

def _parse_logfmt(s: str) -> ParsedLine | None:
    if not LOGFMT_KEY_RE.match(s):
        return None  # must open with key=value
    pairs = LOGFMT_PAIR_RE.findall(s)
    if len(pairs) < 2:
        return None
    values = {k: v if v[:1] != '"' else _unquote(v) for k, v in pairs}  # a repeated key: the last wins
    level_key = next((k for k in LOGFMT_LEVEL_KEYS if k in values), None)
    message_key = next((k for k in LOGFMT_MESSAGE_KEYS if k in values), None)
    if level_key is None and message_key is None:
        return None
    time_key = next((k for k in LOGFMT_TIME_KEYS if k in values), None)
    level = normalise_level(values.pop(level_key)) if level_key else None
    timestamp = values.pop(time_key) if time_key else None
    if message_key is None:
        # Like JSON without a message field: the whole line is the text (level still read).
        return ParsedLine(message=s, level=level, timestamp=timestamp, format="logfmt", fields={})
    message = values.pop(message_key).strip()
    error = next((values[k] for k in ERROR_KEYS if values.get(k)), None)
    if error:
        message = f"{message}: {error}" if message else error
    return ParsedLine(message=message, level=level, timestamp=timestamp, format="logfmt", fields=values)


def _unquote(raw: str) -> str:
    if not raw.startswith('"'):
        return raw
    closed = len(raw) >= 2 and raw.endswith('"') and (len(raw) - len(raw[:-1].rstrip("\\")) - 1) % 2 == 0
    if "\\" in raw:
        if closed:
            try:
                return _JSON_DECODER.decode(raw)
            except (ValueError, RecursionError):
                pass
        return ESCAPE_RE.sub(r"\1", raw[1:-1] if closed else raw[1:])
    return raw[1:-1] if closed else raw[1:]


# --- syslog ----------------------------------------------------------------------------------------

def _parse_syslog(s: str) -> ParsedLine | None:
    m = SYSLOG_RE.match(s, 0, HEADER_MAX)
    if not m:
        return None
    pri, ts, host, prog, _pid = m.groups()
    return _syslog_line(s[m.end():], int(pri) if pri else None, ts, host, prog)


def _syslog_line(message: str, pri: int | None, ts: str | None, host: str | None, prog: str | None) -> ParsedLine:
    fields = {}
    if host:
        fields["host"] = host
    if prog:
        fields["program"] = prog
    level = SYSLOG_SEVERITIES[pri & 7] if pri is not None else None
    return ParsedLine(message=message.strip(), level=level, timestamp=ts, format="syslog", fields=fields)


def _unwrap_syslog(parsed: ParsedLine, depth: int) -> ParsedLine:
    """Unwrap the message of a syslog line; the program name stays in the message unless the inner
    envelope describes its source itself (klog, JSON, logfmt...)."""
    prog = parsed.fields.get("program")
    inner = _parse(parsed.message, depth + 1) if depth < MAX_UNWRAP_DEPTH else None
    if inner is None or inner.format == "plain":
        if prog:
            parsed.message = f"{prog}: {parsed.message}".rstrip()
        return parsed
    # The inner level is the program's own; a PRI is often just the journal's default for stdout.
    level = inner.level or parsed.level
    fields = {**parsed.fields, **inner.fields}
    message = inner.message
    if inner.format.split("+")[0] not in SELF_DESCRIBING and prog:
        message = f"{prog}: {message}"
    return ParsedLine(message=message, level=level, timestamp=inner.timestamp or parsed.timestamp,
                      format=f"syslog+{inner.format}", fields=fields)
