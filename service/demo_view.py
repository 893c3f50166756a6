"""What `logdistill demo` shows: the service's /metrics, scraped and summarised, as rich tables.

Latency, throughput, labels and cache figures come from serve's own Prometheus endpoint (what a
dashboard sees); "answered" comes from the output topics read back (what a downstream consumer
sees). rich is imported lazily: it is a demo extra, not a runtime dependency.
"""

from __future__ import annotations

import math
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

QUANTILES = (0.5, 0.99)
EXAMPLE_CHARS = 40  # fits an 80-column terminal next to the other columns


@dataclass
class Scrape:
    """One /metrics scrape: sample name → [(labels, value)]."""
    samples: dict[str, list[tuple[dict, float]]]

    def value(self, name: str, **labels) -> float:
        """Sum of the samples matching the labels given (0 when there are none)."""
        return sum(v for lbl, v in self.samples.get(name, ()) if all(lbl.get(k) == w for k, w in labels.items()))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for lbl, v in self.samples.get(name, ()):
            out[lbl.get(label, "")] = out.get(lbl.get(label, ""), 0.0) + v
        return out

    def quantile(self, q: float, histogram: str) -> float | None:
        buckets = sorted((float(le), count) for le, count in self.by_label(histogram + "_bucket", "le").items())
        return histogram_quantile(q, buckets)

    def info(self, name: str, label: str) -> str:
        return next((lbl.get(label, "") for lbl, _ in self.samples.get(name + "_info", ())), "")


def parse(text: str) -> Scrape:
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return Scrape(samples)


def scrape(url: str, timeout_s: float = 2.0) -> Scrape | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return parse(response.read().decode())
    except (OSError, ValueError):  # not up yet, or gone: the view just says so
        return None


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative (upper bound, count) buckets: linear inside
    the bucket holding the rank; in the +Inf bucket, the highest finite bound. None: no data."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return upper if count == below else lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


@dataclass
class Snapshot:
    """Everything one frame of the view shows."""
    phase: str
    bootstrap: str
    embedded: bool
    input_topic: str
    metrics_url: str
    total: int                  # lines to replay
    replayed: int               # acknowledged by the broker
    answered: int               # replayed lines with a result or a dead letter on the output topics
    results: int                # records read back from the output topic (this run's lines)
    dead_letters: int           # ... and from the dead-letter topic
    duplicates: int             # outputs beyond the first per input offset (at-least-once)
    elapsed_s: float
    rate_now: float | None      # messages/s consumed by serve, over the last few seconds
    rate_avg: float | None      # ... from its first message to its last
    scrape: Scrape | None
    examples: dict[str, list[str]] = field(default_factory=dict)


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.2f} ms"


def latency(scrape: Scrape | None, histogram: str) -> str:
    if scrape is None:
        return "–"
    return " / ".join(ms(scrape.quantile(q, histogram)) for q in QUANTILES)


def render(s: Snapshot, final: bool = False):
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    m = s.scrape
    overview = Table(title=f"logdistill demo · {s.phase}", show_header=False, title_justify="left")
    overview.add_column(style="bold")
    overview.add_column()
    where = "embedded tansu, in memory" if s.embedded else "Kafka cluster"
    overview.add_row("broker", f"{s.bootstrap} ({where}), input topic {s.input_topic}")
    overview.add_row("metrics", s.metrics_url + ("" if m or final else "  (waiting for serve)"))
    overview.add_row("replayed", f"{s.replayed:,} / {s.total:,} lines")
    overview.add_row("answered", ProgressBar(total=max(s.total, 1), completed=s.answered, width=40))
    overview.add_row("", f"{s.answered:,} / {s.replayed:,}: {s.results:,} results, {s.dead_letters:,} dead "
                         f"letters, {s.duplicates:,} duplicates")
    if m is not None:
        dlq = {r: int(n) for r, n in m.by_label("logdistill_dead_letters_total", "reason").items() if n}
        overview.add_row("consumed by serve", f"{int(m.value('logdistill_messages_total')):,} messages, "
                                              f"{int(m.value('logdistill_results_total')):,} results produced")
        overview.add_row("dead letters", ", ".join(f"{r} {n:,}" for r, n in dlq.items()) or "none")
        rates = [f"{r:,.0f} lines/s {w}" for r, w in ((None if final else s.rate_now, "now"),
                                                        (s.rate_avg, "average")) if r]
        overview.add_row("throughput", ", ".join(rates) or "–")
        overview.add_row("cache hit ratio", f"{m.value('logdistill_cache_hit_ratio'):.1%}")
        overview.add_row("classify p50 / p99", latency(m, "logdistill_classify_latency_seconds"))
        overview.add_row("end-to-end lag p50 / p99", latency(m, "logdistill_end_to_end_lag_seconds"))
        reasons = m.by_label("logdistill_escalated_lines_total", "reason")
        escalated = int(sum(reasons.values()))
        why = ", ".join(f"{reason.replace('_', ' ')} {int(n):,}" for reason, n in reasons.items() if n)
        overview.add_row("escalate", f"{escalated:,} lines{f' ({why})' if why else ''}; "
                                     f"{int(m.value('logdistill_escalations_total')):,} sent to the teacher "
                                     "(once per template)")
        novelty = m.by_label("logdistill_template_novelty_total", "template")
        if sum(novelty.values()):
            overview.add_row("novel templates", f"{novelty.get('novel', 0) / sum(novelty.values()):.1%} of lines "
                                                "(not in the training set)")
        errors = int(m.value("logdistill_kafka_errors_total"))
        overview.add_row("Kafka errors (retried)", f"{errors:,}")
        overview.add_row("model", m.info("logdistill_model", "version"))
    return Group(overview, labels_table(s, final))


def labels_table(s: Snapshot, final: bool):
    """Live: the labels seen so far; final: every label of the model, zeros included."""
    from rich.table import Table

    counts = s.scrape.by_label("logdistill_lines_total", "label") if s.scrape else {}
    total = sum(counts.values()) or 1
    table = Table(title="lines by label (serve's logdistill_lines_total)", title_justify="left")
    table.add_column("label", no_wrap=True)
    table.add_column("lines", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("example (read back from the output topic)", no_wrap=True, overflow="ellipsis")
    for label, n in sorted(counts.items(), key=lambda item: -item[1]):
        if n or final:
            example = (s.examples.get(label) or [""])[0]
            # cut by hand: a no_wrap column in rich takes its room from the other columns
            example = example if len(example) <= EXAMPLE_CHARS else example[:EXAMPLE_CHARS - 1] + "…"
            table.add_row(label, f"{int(n):,}", f"{n / total:.1%}", example)
    return table


def summary(s: Snapshot) -> dict:
    """The final figures as plain data (--summary-json)."""
    m = s.scrape
    out = {"bootstrap_servers": s.bootstrap, "embedded_broker": s.embedded, "metrics_url": s.metrics_url,
           "lines": s.total, "replayed": s.replayed, "answered": s.answered, "unanswered": s.replayed - s.answered,
           "results": s.results, "dead_letters": s.dead_letters, "duplicates": s.duplicates,
           "elapsed_s": round(s.elapsed_s, 2), "lines_per_s": s.rate_avg and round(s.rate_avg, 1)}
    if m is not None:
        out.update(
            consumed=int(m.value("logdistill_messages_total")),
            labels={k: int(v) for k, v in m.by_label("logdistill_lines_total", "label").items()},
            dead_letters_by_reason={k: int(v) for k, v in
                                    m.by_label("logdistill_dead_letters_total", "reason").items() if v},
            cache_hit_ratio=round(m.value("logdistill_cache_hit_ratio"), 4),
            classify_latency_s={f"p{int(q * 100)}": m.quantile(q, "logdistill_classify_latency_seconds")
                                for q in QUANTILES},
            end_to_end_lag_s={f"p{int(q * 100)}": m.quantile(q, "logdistill_end_to_end_lag_seconds")
                              for q in QUANTILES},
            model_version=m.info("logdistill_model", "version"))
    return out
