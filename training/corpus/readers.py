"""Corpus readers and template deduplication.

A LogRecord is one log line as it would reach the service, plus where it came from. `group`
is the unit we split train/test on: the source's own template id (a Loghub EventId, a seed
template id), so a held-out score measures generalisation to templates never seen in training.

Deduplication groups records by the runtime's template key (service.masking.template_key):
the teacher labels each key once, which is where most of the teacher cost is saved.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from service.masking import template_key
from service.parsing import parse_line

JSONL_TEXT_KEYS = ("line", "message", "msg", "log", "text")


@dataclass
class LogRecord:
    text: str                  # the raw line, envelope and all
    source: str                # e.g. "loghub:HDFS", "file:app.log"
    group: str                 # split unit: the source's template id
    meta: dict = field(default_factory=dict)  # system, event_id, gold label when known


@dataclass
class Template:
    """One distinct template key with the lines that produced it."""
    key: str
    group: str
    count: int
    examples: list[str]
    meta: dict


def read_text_file(path: str | Path) -> Iterator[LogRecord]:
    """One record per non-empty line; the group is the line's own template key."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                yield LogRecord(text=line, source=f"file:{path.name}", group=template_key(parse_line(line)))


def read_jsonl(path: str | Path) -> Iterator[LogRecord]:
    """JSON Lines: the log line under line/message/msg/log/text; an optional `label` is kept as gold."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            text_key = next((k for k in JSONL_TEXT_KEYS if isinstance(obj.get(k), str)), None)
            if text_key is None:
                raise ValueError(f"{path}:{line_no}: no log text under any of {JSONL_TEXT_KEYS}")
            text = obj[text_key]
            meta = {"gold": obj["label"]} if "label" in obj else {}
            yield LogRecord(text=text, source=f"jsonl:{path.name}",
                            group=str(obj.get("template_id") or template_key(parse_line(text))), meta=meta)


def read_loghub_structured(csv_path: str | Path) -> Iterator[LogRecord]:
    """A Loghub `<System>_2k.log_structured.csv`, joined by LineId to its raw `<System>_2k.log`.

    The raw line (header and all) is what a collector would ship, so it is the record's text.
    """
    csv_path = Path(csv_path)
    system = csv_path.name.split("_")[0]
    raw_path = csv_path.with_name(csv_path.name.replace("_structured.csv", ""))
    raw_lines = None
    if raw_path.exists():
        # Line by line as a file reads (\n, \r\n, \r), not str.splitlines(): that also breaks at form
        # feeds, \x1c-\x1e, \x85, \u2028..., and one such byte inside a line would shift every later LineId.
        with open(raw_path, encoding="utf-8", errors="replace") as f:
            raw_lines = [line.rstrip("\n") for line in f]
    with open(csv_path, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            line_id = int(row["LineId"])
            text = raw_lines[line_id - 1] if raw_lines else row["Content"]
            yield LogRecord(text=text, source=f"loghub:{system}", group=f"{system}:{row['EventId']}",
                            meta={"system": system, "event_id": row["EventId"], "content": row["Content"],
                                  "level": row.get("Level") or None})


def read_loghub_dir(root: str | Path) -> Iterator[LogRecord]:
    """Every `*_structured.csv` under a Loghub-style directory tree."""
    for csv_path in sorted(Path(root).glob("*/*_structured.csv")):
        yield from read_loghub_structured(csv_path)


K8S_LABELS_SYSTEM = "k8s-labels"  # the recorded teacher's key for k8s_labels.csv rows: (this, row id)


def read_k8s_labels(csv_path: str | Path) -> Iterator[LogRecord]:
    """`k8s_labels.csv`: one record per row (one realistic line of one source-code template).

    The group is the row id, so a template is held out whole; the program that prints it
    (`component`) is kept in meta for the component split, with the repository, envelope and level.
    """
    csv_path = Path(csv_path)
    with open(csv_path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield LogRecord(text=row["line"], source=f"{K8S_LABELS_SYSTEM}:{row['component']}", group=row["id"],
                            meta={"system": K8S_LABELS_SYSTEM, "event_id": row["id"], "component": row["component"],
                                  "repository": row["source"], "format": row["format"],
                                  "level": None if row["level"] == "unknown" else row["level"],
                                  "template": row["template"]})


def dedup_templates(records: Iterable[LogRecord], max_examples: int = 5) -> list[Template]:
    """Group records by template key, keeping counts and a few example lines per key."""
    by_key: dict[str, Template] = {}
    groups: dict[str, Counter] = {}
    group_meta: dict[str, dict] = {}
    for record in records:
        key = template_key(parse_line(record.text))
        template = by_key.get(key)
        if template is None:
            template = by_key[key] = Template(key=key, group=record.group, count=0, examples=[], meta=record.meta)
            groups[key] = Counter()
        template.count += 1
        groups[key][record.group] += 1
        group_meta.setdefault(record.group, record.meta)
        if len(template.examples) < max_examples:
            template.examples.append(record.text)
    for key, template in by_key.items():
        # Rarely two source templates mask to one key; it belongs to the commoner one.
        template.group = groups[key].most_common(1)[0][0]
        template.meta = group_meta[template.group]
    return list(by_key.values())
