"""The offline demo: classify the shared Loghub logs and a generated Kubernetes sample with the
default student, through the same runtime the service uses, and print what it found."""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from service.classifier import Classification, Classifier
from training.corpus import k8s_corpus
from training.pipeline import SHARED_DATA


def demo_lines(seed: int = 7) -> list[bytes]:
    lines = []
    for log in sorted((SHARED_DATA / "loghub").glob("*/*_2k.log")):
        lines += log.read_bytes().splitlines()
    templates, slots = k8s_corpus.load_seed_templates()
    lines += [raw.encode() for raw, _, _ in k8s_corpus.generate_lines(templates, slots, 3, seed)]
    random.Random(seed).shuffle(lines)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/default")
    args = parser.parse_args(argv)
    console = Console()
    classifier = Classifier.from_dir(args.model)
    lines = demo_lines()
    started = time.perf_counter()
    results = []
    for start in range(0, len(lines), 512):
        results += classifier.classify_raw(lines[start: start + 512])
    elapsed = time.perf_counter() - started

    counts = Counter(r.label for r in results if isinstance(r, Classification))
    examples = defaultdict(list)
    for r in results:
        if isinstance(r, Classification) and len(examples[r.label]) < 2:
            examples[r.label].append(r)
    table = Table(title=f"{len(lines)} lines classified by {classifier.model_version}")
    for column in ("label", "lines", "example (confidence)"):
        table.add_column(column)
    for label, n in counts.most_common():
        sample = "\n".join(f"{e.line[:100]} ({e.confidence:.2f})" for e in examples[label])
        table.add_row(label, str(n), sample)
    console.print(table)
    console.print(f"{len(lines) / elapsed:,.0f} lines/s, template cache hit ratio "
                  f"{classifier.cache.hit_ratio:.1%} ({len(classifier.cache)} templates), "
                  f"errors: {sum(1 for r in results if not isinstance(r, Classification))}")
    console.print(f"model card: {Path(args.model) / 'model_card.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
