"""Hand-labelled seed corpus of Kubernetes / cloud-native log templates.

Loghub has almost no examples of the Kubernetes-specific labels (image, probe, scheduling,
resource, database, config), so `data/k8s_templates.yaml` holds message templates written in
the wording of the real emitters (kubelet, scheduler, containerd, CoreDNS, etcd, nginx/envoy,
kernel, database clients, Java/Python/Go services). Each template's label was assigned by a
person against the taxonomy descriptions and is a GOLD label: use these lines for evaluation
(or as a labelled supplement), never as teacher output.

Placeholders in a template text: `{slot}` takes a random value from the slot's pool; the same
placeholder repeated in one text gets the same value; `{slot:2}`, `{slot:3}`... are further
independent draws from the same pool. Braces of any other shape are literal text.

    templates, slots = load_seed_templates()
    lines = generate_lines(templates, slots, per_template=20, seed=0)  # (raw_line, template_id, label)
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import yaml

from service.taxonomy import load_taxonomy

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_]\w*)(?::(\d+))?\}")
LEVELS = (None, "info", "warning", "error", "fatal")
ENVELOPES = ("plain", "cri", "json", "klog", "docker")

# Every level the parser normalises to (service.parsing.LEVEL_ALIASES) has a spelling here: augmentation
# re-wraps whatever a corpus line was logged at. klog has no debug severity: its V-levels print "I".
KLOG_SEVERITY = {None: "I", "debug": "I", "info": "I", "warning": "W", "error": "E", "fatal": "F"}
KLOG_FILES = ("kubelet.go", "pod_workers.go", "prober.go", "reflector.go", "controller.go", "server.go",
              "schedule_one.go", "event.go", "leaderelection.go", "kuberuntime_manager.go")
# Spellings real JSON loggers use (zap, logrus, structlog, GCP); all normalise to the level.
JSON_LEVEL_SPELLINGS = {"debug": ("debug", "DEBUG", "trace"), "info": ("info", "INFO"),
                        "warning": ("warn", "warning", "WARNING"), "error": ("error", "ERROR"),
                        "fatal": ("fatal", "FATAL", "CRITICAL")}
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SeedTemplate:
    template_id: str
    label: str
    level: str | None
    text: str


def _default_path():
    try:
        return resources.files("training") / "data" / "k8s_templates.yaml"
    except (TypeError, NotADirectoryError, ModuleNotFoundError):
        # training/ without an __init__.py is a namespace package, which importlib.resources
        # cannot resolve under the editable install: fall back to the file beside this module.
        return Path(__file__).resolve().parents[1] / "data" / "k8s_templates.yaml"


def load_seed_templates(path: str | Path | None = None) -> tuple[list[SeedTemplate], dict[str, list[str]]]:
    """Load and validate the seed templates; returns (templates, slot pools)."""
    source = Path(path) if path else _default_path()
    data = yaml.safe_load(source.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("slots"), dict) or not isinstance(data.get("templates"), list):
        raise ValueError(f"{source}: expected a mapping with 'slots' (mapping) and 'templates' (list)")

    slots: dict[str, list[str]] = {}
    for name, values in data["slots"].items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{source}: slot {name!r} needs a non-empty list of values")
        slots[str(name)] = [str(v) for v in values]

    labels = set(load_taxonomy().labels)
    templates, seen = [], set()
    for i, entry in enumerate(data["templates"], start=1):
        template_id = f"k8s-{i:03d}"
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise ValueError(f"{source}: template {template_id} needs a non-empty 'text'")
        text, label, level = entry["text"], entry.get("label"), entry.get("level")
        if label not in labels:
            raise ValueError(f"{source}: template {template_id} ({text[:60]!r}) has label {label!r}, "
                             f"which is not in the taxonomy {sorted(labels)}")
        if level not in LEVELS:
            raise ValueError(f"{source}: template {template_id} has level {level!r}; expected one of {LEVELS}")
        missing = sorted({m.group(1) for m in PLACEHOLDER_RE.finditer(text)} - slots.keys())
        if missing:
            raise ValueError(f"{source}: template {template_id} ({text[:60]!r}) uses undefined slot(s) {missing}")
        if text in seen:
            raise ValueError(f"{source}: template {template_id} duplicates an earlier text: {text[:60]!r}")
        seen.add(text)
        templates.append(SeedTemplate(template_id, label, level, text))
    return templates, slots


def render(template: SeedTemplate, slots: dict[str, list[str]], rng: random.Random) -> str:
    """Fill each placeholder with a random value from its pool."""
    chosen: dict[str, str] = {}

    def fill(match: re.Match) -> str:
        key = match.group(0)
        if key not in chosen:
            chosen[key] = rng.choice(slots[match.group(1)])
        return chosen[key]

    return PLACEHOLDER_RE.sub(fill, template.text)


def _random_time(rng: random.Random) -> datetime:
    return _EPOCH + timedelta(seconds=rng.randrange(366 * 86400), microseconds=rng.randrange(1_000_000))


def _rfc3339_nano(t: datetime, rng: random.Random) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}{rng.randrange(1000):03d}Z"


def wrap(message: str, level: str | None, rng: random.Random, envelope: str | None = None) -> str:
    """Put a message in one of the real log envelopes (random unless `envelope` names one)."""
    # klog always states a severity; inventing "I" for a level-less emitter (a kernel error) would lie.
    envelope = envelope or rng.choice(ENVELOPES if level else tuple(e for e in ENVELOPES if e != "klog"))
    t = _random_time(rng)
    stream = "stderr" if level in ("warning", "error", "fatal") else "stdout"
    if envelope == "plain":
        return message
    if envelope == "cri":  # containerd / CRI-O container log file
        return f"{_rfc3339_nano(t, rng)} {stream} F {message}"
    if envelope == "docker":  # docker json-file driver
        return json.dumps({"log": message + "\n", "stream": stream, "time": _rfc3339_nano(t, rng)})
    if envelope == "klog":  # Kubernetes components
        return (f"{KLOG_SEVERITY[level]}{t:%m%d %H:%M:%S}.{t.microsecond:06d} {rng.randrange(1, 100000):7d} "
                f"{rng.choice(KLOG_FILES)}:{rng.randrange(20, 1500)}] {message}")
    if envelope == "json":  # structured logger: zap style or GCP style; no level key when the emitter has none
        if rng.random() < 0.5:
            obj = {"level": rng.choice(JSON_LEVEL_SPELLINGS[level])} if level else {}
            obj["ts"] = round(t.timestamp(), 6) if rng.random() < 0.5 else t.isoformat(timespec="milliseconds")
            obj["msg"] = message
        else:
            obj = {"severity": rng.choice(JSON_LEVEL_SPELLINGS[level]).upper()} if level else {}
            obj["time"] = _rfc3339_nano(t, rng)
            obj["message"] = message
        return json.dumps(obj)
    raise ValueError(f"unknown envelope {envelope!r}; expected one of {ENVELOPES}")


def generate_lines(templates: list[SeedTemplate], slots: dict[str, list[str]], per_template: int,
                   seed: int) -> list[tuple[str, str, str]]:
    """`per_template` wrapped lines per template as (raw_line, template_id, label); deterministic for a seed."""
    rng = random.Random(seed)
    lines = []
    for template in templates:
        for _ in range(per_template):
            raw = wrap(render(template, slots, rng), template.level, rng)
            lines.append((raw, template.template_id, template.label))
    return lines
