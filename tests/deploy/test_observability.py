"""The Grafana dashboard and the Prometheus alert rules use only metrics linkplane exports.

Metric definitions come from the code (every ``Counter(``/``Histogram(``/``Gauge(``/
``Summary(`` with a literal name under server/src); queries are read loosely, by the
``linkplane_\\w+`` names and their ``{label=...}`` matchers. promtool is not available here,
so the rule file's structure is checked instead.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVER_SRC = ROOT / "server" / "src" / "linkplane"
OBSERVABILITY = ROOT / "deploy" / "observability"
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary"}
# Labels Prometheus' Kubernetes discovery typically adds to every series (plus `le`).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "le"}
NAME = re.compile(r"\blinkplane_\w+")
SELECTOR = re.compile(r"\b(linkplane_\w+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(=~|!~|!=|=)\s*\"")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"critical", "warning", "info"}


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: frozenset[str]

    def exposed(self) -> set[str]:
        """The series names prometheus_client exposes for this metric."""
        if self.type == "Counter":
            base = self.name.removesuffix("_total")
            return {f"{base}_total", f"{base}_created"}
        if self.type in {"Histogram", "Summary"}:
            names = {f"{self.name}_sum", f"{self.name}_count", f"{self.name}_created"}
            return names | ({f"{self.name}_bucket"} if self.type == "Histogram" else set())
        return {self.name}


def code_metrics() -> dict[str, Metric]:
    """Every metric defined in linkplane's code, by each series name it exposes."""
    series: dict[str, Metric] = {}
    for path in SERVER_SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if kind not in METRIC_TYPES or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            labels: list[str] = []
            label_arg = node.args[2] if len(node.args) > 2 else None
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    label_arg = keyword.value
            if isinstance(label_arg, ast.List | ast.Tuple):
                labels = [e.value for e in label_arg.elts if isinstance(e, ast.Constant)]
            metric = Metric(first.value, kind, frozenset(labels))
            for name in metric.exposed():
                series[name] = metric
    return series


def dashboard_queries() -> list[str]:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    queries: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            queries.extend(t["expr"] for t in panel.get("targets", []) if "expr" in t)
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        if isinstance(variable.get("query"), dict):
            queries.append(variable["query"].get("query", ""))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def check_query(query: str, metrics: dict[str, Metric]) -> list[str]:
    problems = [f"{name}: no such metric in the code" for name in NAME.findall(query)]
    problems = [p for p in problems if p.split(":")[0] not in metrics]
    for name, matchers in SELECTOR.findall(query):
        if name not in metrics:
            continue
        for label, _ in MATCHER.findall(matchers):
            if label not in metrics[name].labels | TARGET_LABELS:
                problems.append(f"{name} has no label {label!r}")
    if query.count("(") != query.count(")") or query.count("{") != query.count("}"):
        problems.append(f"unbalanced brackets: {query}")
    return problems


@pytest.fixture(scope="module")
def metrics() -> dict[str, Metric]:
    found = code_metrics()
    # The scan must see the metrics we know exist, or every check below would be vacuous.
    assert {"linkplane_rpc_total", "linkplane_rpc_seconds_bucket"} <= set(found)
    return found


def test_dashboard_uses_only_metrics_the_code_exports(metrics: dict[str, Metric]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    problems = [p for q in queries for p in check_query(q, metrics)]
    assert not problems, problems


def test_dashboard_covers_rpc_reconcile_and_aws_metrics() -> None:
    text = " ".join(dashboard_queries())
    for name in (
        "linkplane_rpc_total",
        "linkplane_rpc_seconds_bucket",
        "linkplane_reconciles_total",
        "linkplane_aws_calls_total",
    ):
        assert name in text, name
    assert 'outcome="throttle"' in text
    assert 'outcome="failed"' in text


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert dashboard["uid"] and dashboard["title"]
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert [t["refId"] for t in panel["targets"]] == sorted(
                {t["refId"] for t in panel["targets"]}
            )


def test_alert_rules_use_only_metrics_the_code_exports(metrics: dict[str, Metric]) -> None:
    problems = [p for rule in alert_rules() for p in check_query(rule["expr"], metrics)]
    assert not problems, problems


def test_alert_rules_are_well_formed() -> None:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names))
    names: list[str] = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert re.fullmatch(r"Linkplane[A-Z][A-Za-z]+", rule["alert"]), rule["alert"]
            assert NAME.search(rule["expr"]), f"{rule['alert']}: no linkplane metric"
            assert DURATION.match(rule.get("for", "0m")), rule["alert"]
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            # Label templates must refer to labels the expression keeps.
            for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
                assert label in rule["expr"], f"{rule['alert']}: {label} is aggregated away"
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "alert names must be unique"


def test_deploy_doc_explains_every_alert() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if rule["alert"] not in doc]
    assert not missing, f"docs/deploy.md does not mention {missing}"


def test_the_check_catches_unknown_metrics_and_labels(metrics: dict[str, Metric]) -> None:
    assert check_query("rate(linkplane_rpc_total[5m])", metrics) == []
    assert check_query("rate(linkplane_rpcs_total[5m])", metrics)
    assert check_query('rate(linkplane_rpc_total{account="1"}[5m])', metrics)
    assert check_query("linkplane_rpc_seconds_bucket", metrics) == []
    assert check_query("linkplane_rpc_total_bucket", metrics)
