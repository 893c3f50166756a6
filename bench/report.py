"""Readable rich tables for a bench/run.py result (the JSON holds the same figures and more)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def print_report(r: dict, console: Console | None = None) -> None:
    console = console or (Console() if sys.stdout.isatty() else Console(width=120))
    for table in (machine_table(r), figures_table(r), ratios_table(r), split_table(r), *e2e_tables(r),
                  targets_table(r)):
        console.print(table)


def machine_table(r: dict) -> Table:
    m, model = r["machine"], r["model"]
    v = m["versions"]
    t = Table(title="Machine and model" + (" (QUICK run)" if r["quick"] else ""), show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("CPU", f"{m['cpu_model']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable)")
    t.add_row("software", f"python {m['python']}, onnxruntime {v['onnxruntime']}, torch {v['torch']}, "
                          f"transformers {v['transformers']}")
    t.add_row("model", f"{model['version']}  model.onnx {model['model_onnx_bytes'] / 1e6:.2f} MB "
                       f"(artifact {model['artifact_bytes'] / 1e6:.2f} MB), {model['n_parameters']} params")
    w = r["workload"]
    t.add_row("workload", f"{w['lines']} Loghub lines ({w['distinct_lines']} distinct) from {len(w['systems'])} systems")
    c = r.get("contention", {})
    if "foreign_share_of_capacity" in c:
        style = "green" if c["clean"] else "bold red"
        t.add_row("other load", f"[{style}]{c['foreign_cpu_s']} CPU-s used by other processes during the run "
                                f"({c['foreign_share_of_capacity']:.0%} of capacity)"
                                f"{'' if c['clean'] else ': figures are NOT clean'}[/]; load avg before "
                                f"{c['load_avg_before'][0]}")
        by_section = ", ".join(f"{name} {share:.0%}" for name, share in c.get("by_section", {}).items()
                               if share is not None)
        t.add_row("", f"other processes' share by section: {by_section}")
    t.add_row("settings", f"threads {r['settings']['threads']}, batch {r['settings']['batch_size']}, "
                          f"chunk {r['settings']['chunk_lines']}")
    return t


def figures_table(r: dict) -> Table:
    s, b = r["student"], r["baseline"]
    un, ca, lat, proc = s["uncached"], s["cached"], s["latency"], s["classify_process"]
    t = Table(title="Figures (medians)")
    for col, justify in (("measure", "left"), ("student (ONNX)", "right"), ("torch MiniLM baseline", "right"),
                         ("note", "left")):
        t.add_column(col, justify=justify)
    t.add_row("uncached lines/s, full path (file order)", f"{un['full_path']['lines_per_s']:,.0f}", "",
              f"{un['lines']} distinct lines, cache 0; {un['model_rows_in_full_path']} model rows")
    t.add_row("  … same lines, mixed order", f"{un['full_path_mixed_order']['lines_per_s']:,.0f}", "",
              f"shuffled; {un['model_rows_in_mixed_order']} model rows")
    for key, what in (("mixed_order_without_ood", "OOD score off"),
                      ("mixed_order_without_ood_or_evidence", "OOD score and evidence off")):
        if key in un:
            t.add_row(f"  … mixed order, {what}", f"{un[key]['lines_per_s']:,.0f}", "", "what they cost, same run")
    t.add_row("uncached lines/s, same lines as baseline", f"{s['same_lines_as_baseline']['lines_per_s']:,.0f}",
              f"{b['throughput']['lines_per_s']:,.1f}", f"{b['throughput']['lines']} random distinct lines")
    t.add_row("model-only lines/s (pre-masked keys)", f"{un['model_only_per_line']['lines_per_s']:,.0f}", "",
              "predict_proba, one row per line")
    t.add_row("cached lines/s", f"{ca['lines_per_s']:,.0f}", "",
              f"{ca['lines']:,} lines, hit ratio {ca['hit_ratio']:.4f}")
    fresh = s["cached_fresh_variables"]
    t.add_row("  … same templates, every digit redrawn", f"{fresh['lines_per_s']:,.0f}", "",
              f"masking runs on every line; hit ratio {fresh['hit_ratio']:.4f}")
    t.add_row("single-line latency p50 / p99 ms", ms(lat["single_line"]), ms(b["single_line_latency"]),
              f"n={lat['single_line']['n']} / {b['single_line_latency']['n']}")
    t.add_row("32-line batch latency p50 / p99 ms", ms(lat["batch_32"]), "", f"n={lat['batch_32']['n']} batches")
    t.add_row("  … per line p50 / p99 ms", ms(lat["batch_32_per_line"]), "", "batch latency / 32")
    t.add_row("peak RSS MiB", f"{proc['peak_rss_mib']:.1f}", f"{b['process']['peak_rss_mib']:.1f}",
              "classify process / baseline process")
    t.add_row("classify process: wall s, lines/s", f"{proc['wall_s']:.2f} s, {proc['lines_per_s']:,.0f}", "",
              f"{proc['lines']} lines, startup {proc['startup_wall_s']:.2f} s")
    t.add_row("load time s", "", f"{b['load_s']:.2f}", "baseline model + tokenizer")
    return t


RATIO_LABELS = {
    "throughput_student_over_baseline_same_lines": "throughput, same lines (×, higher is better)",
    "throughput_student_uncached_over_baseline": "throughput, student file order vs baseline (×)",
    "single_line_p50_latency_student_over_baseline": "single-line p50 latency (lower is better)",
    "single_line_p99_latency_student_over_baseline": "single-line p99 latency (lower is better)",
    "peak_rss_student_over_baseline": "peak RSS (lower is better)",
}


def ratios_table(r: dict) -> Table:
    t = Table(title="Student / baseline")
    t.add_column("ratio")
    t.add_column("student / baseline", justify="right")
    for name, value in r["ratios"].items():
        t.add_row(RATIO_LABELS.get(name, name), f"{value:g}")
    return t


def split_table(r: dict) -> Table:
    t = Table(title="Where the time goes (µs per line, share of the full path)")
    t.add_column("stage")
    runs = {"uncached": r["student"]["uncached"]["stage_split"], "cached": r["student"]["cached"]["stage_split"],
            "cached, fresh variables": r["student"]["cached_fresh_variables"]["stage_split"]}
    for name in runs:
        t.add_column(name, justify="right")
    for stage in ("decode", "parse", "mask", "cache_and_model", "rest"):
        t.add_row(stage, *(f"{split[stage]['us_per_line']:.1f}  ({split[stage]['share']:.0%})"
                           for split in runs.values()))
    return t


def e2e_tables(r: dict) -> list[Table]:
    """The `end_to_end` section (bench/e2e.py), if the run has one."""
    e = r.get("end_to_end")
    if e is None:
        return []
    tables = [e2e_figures_table(e)]
    if "stage_split" in e:
        tables.append(e2e_split_table(e))
    if "kafka_clients" in e:
        tables.append(kafka_clients_table(e))
    if "confluent" in e:  # the same runs with --kafka-client confluent
        tables.append(e2e_figures_table({"failures": [], **e["confluent"]}, "confluent-kafka"))
        if "stage_split" in e["confluent"]:
            tables.append(e2e_split_table(e["confluent"], "confluent-kafka"))
    return tables


def e2e_figures_table(e: dict, client: str = "kafka-python") -> Table:
    t = Table(title=f"End to end through Kafka, serve with {client} (tansu on this same machine; serve as a "
                    "child process)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("note")
    for failure in e.get("failures", []):
        t.add_row("[bold red]FAILURE[/]", "", f"[red]{failure}[/]")
    tp, lat, proc = e.get("throughput"), e.get("latency"), e.get("serve_process", {})
    if tp:
        c = tp["completeness"]
        t.add_row("lines/s per consumer process", f"{tp['lines_per_s'] or 0:,.0f}",
                  f"{tp['lines']:,}-line backlog, 10–90 %; /metrics says {tp['lines_per_s_from_metrics'] or 0:,.0f}; "
                  f"cache hit ratio {tp['cache_hit_ratio']}")
        t.add_row("  every input answered and committed", "yes" if c["ok"] else "[red]NO[/]",
                  f"{c['results']:,} results, {c['dead_letters']:,} dead letters, {c['missing']:,} missing, "
                  f"{c['duplicates_so_far']:,} duplicates")
        t.add_row("  start to first message s", f"{tp['time_to_first_message_s']}", "model load + group join")
    fresh = e.get("throughput_fresh_variables")
    if fresh:
        c = fresh["completeness"]
        t.add_row("lines/s, every digit redrawn", f"{fresh['lines_per_s'] or 0:,.0f}",
                  f"{fresh['lines']:,} lines; the latency run's workload and load basis; "
                  f"{'all' if c['ok'] else '[red]NOT all[/]'} answered and committed")
    if lat and lat.get("n"):
        t.add_row("end-to-end latency p50 / p99 ms", f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f}",
                  f"{lat['achieved_lines_per_s']:,.0f} lines/s for {lat['seconds']:g} s "
                  f"({lat['load_share_of_throughput']:.0%} of the fresh-variable capacity), n={lat['n']:,}")
        h = lat.get("serve_lag_histogram", {})
        if h.get("p50_ms") is not None:
            t.add_row("  serve's lag histogram p50 / p99 ms", f"{h['p50_ms']:.0f} / {h['p99_ms']:.0f}",
                      "until acknowledged; bucket-interpolated")
    if proc.get("peak_rss_mib"):
        t.add_row("serve peak RSS MiB", f"{proc['peak_rss_mib']:.1f}", "VmHWM before SIGTERM (target ≤ 200 MB)")
    if "exit_code" in proc:
        t.add_row("serve exit code on SIGTERM", str(proc["exit_code"]), "must be 0")
    return t


def e2e_split_table(e: dict, client: str = "kafka-python") -> Table:
    s = e["stage_split"]
    t = Table(title=f"Where serve's time goes with {client} (in-process Server, {s['lines']:,} lines, "
                    f"{s['lines_per_s']:,.0f} lines/s, {s['us_per_line']:.0f} µs/line)")
    t.add_column("stage")
    t.add_column("µs/line", justify="right")
    t.add_column("share", justify="right")
    for name, stage in s["stages"].items():
        t.add_row(name, f"{stage['us_per_line']:.1f}", f"{stage['share']:.0%}")
    return t


def kafka_clients_table(e: dict) -> Table:
    k, proj = e["kafka_clients"], e.get("confluent_kafka_projection", {})
    t = Table(title="Kafka client: kafka-python vs confluent-kafka (µs per message, wall / CPU)")
    for col in ("measure", "kafka-python", "confluent-kafka", "note"):
        t.add_column(col, justify="left" if col in ("measure", "note") else "right")
    for op in ("consume", "produce"):
        kp, ck = k.get("kafka_python", {}).get(op), k.get("confluent_kafka", {}).get(op)
        t.add_row(f"raw {op}", per_message(kp), per_message(ck),
                  f"{k['messages']:,} messages" + (f", {k['produce_payload_bytes_mean']:.0f} B results" if op == "produce" else ""))
    if "confluent_kafka_error" in k:
        t.add_row("confluent-kafka", "", "[red]not measured[/]", k["confluent_kafka_error"])
    if proj:
        t.add_row("Kafka client share of serve's time", f"{proj['kafka_client_share']:.0%}", "",
                  f"{proj['kafka_client_us_per_line']:.0f} of {proj['serve_us_per_line_in_process']:.0f} µs/line")
        if "projected_gain" in proj:
            t.add_row("projected serve lines/s", f"{e.get('throughput', {}).get('lines_per_s') or 0:,.0f}",
                      f"{proj['projected_serve_lines_per_s'] or 0:,.0f}",
                      f"×{proj['projected_gain']:.2f} ({proj['basis']} ratios); ceiling if Kafka cost nothing "
                      f"×{proj['ceiling_gain_if_kafka_free']:.2f}")
    return t


def per_message(figures: dict | None) -> str:
    return "" if not figures else f"{figures['us_per_message']:.2f} / {figures['cpu_us_per_message']:.2f}"


def targets_table(r: dict) -> Table:
    t = Table(title="Targets (recorded, not asserted)")
    for col in ("target", "value", "threshold", "met"):
        t.add_column(col)
    for name, check in r["targets"].items():
        value = check["value"]
        shown = (f"{value / 1e6:.1f} MB" if name.endswith("bytes") else f"{value:.1%}" if name.endswith("cost")
                 else f"{value:,.0f}")
        t.add_row(name, shown, check["target"], "[green]yes[/]" if check["met"] else "[red]no[/]")
    return t


def ms(lat: dict) -> str:
    return f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}"
