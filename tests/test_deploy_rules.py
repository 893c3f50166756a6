"""Alerts and the Grafana dashboard, checked against the metrics `logdistill serve` really exposes.

- The chart's PrometheusRule (default values) is rendered by helm and its rule groups written out as
  a plain rules file: `promtool check rules` on it, and `promtool test rules` with
  deploy/prometheus/alerts_test.yaml, where every alert has a case that fires and one that does not.
- Every metric name, label name and label value the rules and the dashboard use is looked up in the
  exposition of service.metrics.ServeMetrics (the registry serve publishes), so a renamed metric or
  label fails here instead of silently never alerting.
- Every dashboard query is valid PromQL: promtool checks them, as recording rules, after the Grafana
  variables are substituted.

promtool comes with the Debian `prometheus` package (`make test` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_deploy_helm import one, render

from service.metrics import ServeMetrics

REPO = Path(__file__).resolve().parents[1]
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "logdistill.json"
# Labels the scrape adds (Prometheus Operator ServiceMonitor), and the histogram bucket label.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container", "le"}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "ns", "$job": "logdistill", "${datasource}": "prom"}
SELECTOR = re.compile(r"\b(logdistill(?:_|:)[a-zA-Z0-9_:]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def promtool() -> str:
    found = os.environ.get("PROMTOOL_BIN") or shutil.which("promtool") or (
        "/usr/bin/promtool" if os.access("/usr/bin/promtool", os.X_OK) else None)
    if not found:
        pytest.skip("promtool not found: `make test` installs it with the Debian prometheus package "
                    "(apt-get install --no-install-recommends prometheus)")
    return found


def rule_groups() -> dict:
    return one(render("default"), "PrometheusRule")["spec"]


def rules() -> list[dict]:
    return [rule for group in rule_groups()["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory) -> Path:
    """rules.yaml (the rendered rule groups) beside a copy of the unit tests that load it."""
    directory = tmp_path_factory.mktemp("rules")
    (directory / "rules.yaml").write_text(yaml.safe_dump(rule_groups(), sort_keys=False))
    shutil.copy(ALERT_TESTS, directory / ALERT_TESTS.name)
    return directory


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_promtool_check_rules(rules_dir):
    done = run_promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests(rules_dir):
    done = run_promtool("test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in (rule["alert"] for rule in rules() if "alert" in rule):
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert}: no test where it stays quiet"


def test_an_alert_test_can_fail(rules_dir, tmp_path):
    """The harness notices a wrong expectation (so the passing run above means something)."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    quiet_lag = next(t for t in tests["tests"] if t["name"] == "consumer lag under the threshold does not fire")
    quiet_lag["input_series"][0]["values"] = "90000x30"  # now 140k in total: over the threshold
    tests["tests"] = [quiet_lag]
    shutil.copy(rules_dir / "rules.yaml", tmp_path / "rules.yaml")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(tests))
    done = run_promtool("test", "rules", "t.yaml", cwd=tmp_path)
    assert done.returncode != 0 and "LogdistillConsumerLagHigh" in done.stdout + done.stderr


# ---- metric names, labels and values against the real exposition -----------------------------------------

def exposed_series() -> dict[str, dict[str, set[str]]]:
    """{sample name: {label: values seen}} from a ServeMetrics with every metric touched once."""
    metrics = ServeMetrics()
    Cache = namedtuple("Cache", "hit_ratio")
    TopicPartition = namedtuple("TopicPartition", "topic partition")
    metrics.set_model("v1", ["normal", "network"], Cache(0.5))
    metrics.set_consumer_lag({TopicPartition("logs", 0): 3})
    metrics.observe_classification(0.001, 2)
    metrics.observe_lag([0])
    metrics.batch_size.observe(3)
    for counter in (metrics.messages, metrics.results, metrics.low_confidence, metrics.escalations,
                    metrics.redelivery_rewinds):
        counter.inc()
    series: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            labels = series.setdefault(sample.name, {})
            for name, value in sample.labels.items():
                labels.setdefault(name, set()).add(value)
    return series


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def check_query(expr: str, series: dict, where: str) -> None:
    names = SELECTOR.findall(expr)
    assert names, f"{where}: no logdistill metric in {expr!r}"
    known_labels = set(TARGET_LABELS)
    for name, matchers in names:
        if name in recorded_names():
            known_labels |= {"namespace", "job"}
            continue
        assert name in series, f"{where}: {name} is not a metric serve exposes"
        known_labels |= set(series[name])
        for label, op, value in MATCHER.findall(matchers or ""):
            if label in TARGET_LABELS:
                continue
            assert label in series[name], f"{where}: {name} has no label {label!r}"
            if op == "=" and not value.startswith("$"):
                assert value in series[name][label], f"{where}: {name}{{{label}}} is never {value!r}"
    for grouping in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            assert label in known_labels, f"{where}: grouping by {label!r}, which none of its metrics has"


def test_rules_use_only_exposed_metrics_and_labels():
    series = exposed_series()
    for rule in rules():
        check_query(rule["expr"], series, rule.get("alert") or rule.get("record"))


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [(f"panel {p['title']!r}", target["expr"]) for p in dashboard["panels"] for target in p["targets"]]
    queries += [(f"variable {v['name']}", v["definition"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def test_dashboard_uses_only_exposed_metrics_and_labels():
    series = exposed_series()
    for where, expr in dashboard_queries():
        check_query(expr, series, where)


def test_dashboard_covers_the_service():
    text = DASHBOARD.read_text()
    for needed in ("logdistill_lines_total", "sum by (label)", "logdistill_classify_latency_seconds_bucket",
                   "logdistill_end_to_end_lag_seconds_bucket", "logdistill_consumer_lag", "logdistill_online_accuracy",
                   "logdistill_template_novelty_total", "logdistill_dead_letters_total"):
        assert needed in text, needed
    dashboard = json.loads(text)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_queries_are_valid_promql(tmp_path):
    recording = []
    for index, (_, expr) in enumerate(q for q in dashboard_queries() if q[0].startswith("panel")):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        recording.append({"record": f"dashboard:query_{index}", "expr": expr})
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    done = run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
