"""Envelope parsing coverage and speed: service/parsing.py at HEAD vs the working tree.

    .venv/bin/python bench/envelopes.py [--base REV] [--out bench/results/envelopes.json]

Data: ../shared/data/k8s_labels.csv (one realistic line per template; `format` names the envelope
of `line`, `level` the level as logged). For each `format` value, and for both parsers:

  recognised  share of rows whose parse_line(line).format is not "plain"
  level       share of rows whose parsed level equals the row's `level` column, normalised with
              normalise_level of the parser under test ("unknown" counts as None)

Speed: parse_line over every line of the CSV, mean µs per line, best of 3 passes (one warm-up pass
first), for each parser, in this process; and parse_line + masking.key_of (the template key serve
computes from the parsed message and level, with the working tree's masking for both parsers), since
a parser that strips more envelope leaves less text to mask.

The base parser is `git show REV:service/parsing.py` loaded as a module, so no checkout is touched.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import platform
import subprocess
import sys
import time
import types
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "k8s_labels.csv"


def load_base(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:service/parsing.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("parsing_base")
    module.__file__ = f"<{rev}:service/parsing.py>"
    sys.modules["parsing_base"] = module  # dataclasses look the module up while building the class
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def load_current() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("parsing_current", ROOT / "service" / "parsing.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["parsing_current"] = module
    spec.loader.exec_module(module)
    return module


def coverage(module: types.ModuleType, rows: list[dict]) -> dict:
    totals, recognised, level_ok = Counter(), Counter(), Counter()
    formats_seen: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        fmt = row["format"]
        parsed = module.parse_line(row["line"])
        expected = None if row["level"] == "unknown" else module.normalise_level(row["level"])
        totals[fmt] += 1
        recognised[fmt] += parsed.format != "plain"
        level_ok[fmt] += parsed.level == expected
        formats_seen[fmt][parsed.format] += 1
    out = {}
    for fmt in sorted(totals, key=lambda f: -totals[f]) + ["ALL"]:
        n = totals[fmt] if fmt != "ALL" else sum(totals.values())
        rec = recognised[fmt] if fmt != "ALL" else sum(recognised.values())
        lev = level_ok[fmt] if fmt != "ALL" else sum(level_ok.values())
        out[fmt] = {"rows": n, "recognised": round(rec / n, 4), "level": round(lev / n, 4)}
        if fmt != "ALL":
            out[fmt]["parsed_as"] = dict(formats_seen[fmt].most_common())
    return out


def timing(module: types.ModuleType, lines: list[str], passes: int = 3, with_key: bool = False) -> float:
    parse = module.parse_line
    if with_key:
        from service.masking import key_of

        def run(line):
            parsed = parse(line)
            key_of(parsed.message, parsed.level)
    else:
        run = parse
    for line in lines:  # warm-up
        run(line)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for line in lines:
            run(line)
        best = min(best, time.perf_counter() - start)
    return best / len(lines) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="HEAD", help="git revision of the 'before' parser (default HEAD)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "envelopes.json")
    args = ap.parse_args(argv)

    with args.data.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lines = [row["line"] for row in rows]
    base, current = load_base(args.base), load_current()

    before, after = coverage(base, rows), coverage(current, rows)
    # Interleave the timing runs so machine noise hits both alike.
    t_before, t_after, k_before, k_after = [], [], [], []
    for _ in range(2):
        t_before.append(timing(base, lines))
        t_after.append(timing(current, lines))
        k_before.append(timing(base, lines, with_key=True))
        k_after.append(timing(current, lines, with_key=True))
    us_before, us_after = min(t_before), min(t_after)
    key_before, key_after = min(k_before), min(k_after)

    print(f"{'format':<14} {'rows':>5}  {'recognised before':>17} {'after':>6}  {'level before':>12} {'after':>6}")
    for fmt, b in before.items():
        a = after[fmt]
        print(f"{fmt:<14} {b['rows']:>5}  {b['recognised']:>17.1%} {a['recognised']:>6.1%}  "
              f"{b['level']:>12.1%} {a['level']:>6.1%}")
    print(f"parse_line: {us_before:.2f} µs/line before, {us_after:.2f} µs/line after "
          f"({us_after / us_before - 1:+.0%}), mean over {len(lines)} lines, best of 3 passes x 2")
    print(f"parse_line + key_of: {key_before:.2f} µs/line before, {key_after:.2f} µs/line after "
          f"({key_after / key_before - 1:+.0%})")

    result = {
        "data": str(args.data.name), "lines": len(lines), "base": args.base,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
        "us_per_line": {"before": round(us_before, 3), "after": round(us_after, 3)},
        "us_per_line_with_template_key": {"before": round(key_before, 3), "after": round(key_after, 3)},
        "by_format": {fmt: {"rows": before[fmt]["rows"],
                            "recognised": {"before": before[fmt]["recognised"], "after": after[fmt]["recognised"]},
                            "level": {"before": before[fmt]["level"], "after": after[fmt]["level"]},
                            **({"parsed_as_after": after[fmt]["parsed_as"]} if fmt != "ALL" else {})}
                      for fmt in before},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
