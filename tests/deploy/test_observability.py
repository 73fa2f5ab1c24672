"""The Grafana dashboard and the Prometheus alert rules use only metrics linkplane exports.

Metric definitions come from the code (every ``Counter(``/``Histogram(``/``Gauge(``/
``Summary(`` with a literal name under server/src). Every query is parsed as PromQL
(promql-parser, Grafana's variables substituted first) and walked: each selector must name an
exported series and match only labels it has, each ``by (...)`` must group by labels its input
keeps, and an alert's ``$labels.x`` templates must name labels its expression keeps. A loose
``linkplane_\\w+`` scan of the raw text backs the parser up. promtool is not installable
here, so the rule file's structure is checked too.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVER_SRC = ROOT / "server" / "src" / "linkplane"
OBSERVABILITY = ROOT / "deploy" / "observability"
METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary"}
# Labels Prometheus' Kubernetes discovery typically adds to every series (plus `le`).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "le"}
NAME = re.compile(r"\blinkplane_\w+")
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
    return queries


def test_dashboard_variables_use_exported_labels(metrics: dict[str, Metric]) -> None:
    """``label_values(metric, label)`` (Grafana's, not PromQL) names a real metric and label."""
    dashboard = json.loads((OBSERVABILITY / "grafana-dashboard.json").read_text())
    queries = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert queries
    for query in queries:
        match = re.fullmatch(r"label_values\((linkplane_\w+),\s*(\w+)\)", query)
        assert match, query
        metric, label = match.groups()
        assert metric in metrics, metric
        assert label in metrics[metric].labels | TARGET_LABELS, label


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yaml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


# Grafana's variables, replaced by values of the right type before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$namespace": ".*",
}
# Series from Prometheus itself and kube-state-metrics that rules may use alongside linkplane's.
PROMETHEUS_SERIES = {
    "up": frozenset({"job", "instance"}),
    "kube_deployment_status_replicas_available": frozenset({"namespace", "deployment"}),
}
# Functions whose result keeps its vector argument's labels (all linkplane queries use).
LABEL_KEEPING = {
    "rate",
    "increase",
    "irate",
    "delta",
    "clamp_min",
    "clamp_max",
    "abs",
    "avg_over_time",
    "max_over_time",
}


@dataclass
class QueryCheck:
    metrics: dict[str, Metric]
    problems: list[str]

    def labels(self, expr: Any) -> set[str]:
        """The labels ``expr``'s series carry (checking selectors and groupings on the way)."""
        if isinstance(expr, promql_parser.MatrixSelector):
            return self.labels(expr.vector_selector)
        if isinstance(expr, promql_parser.VectorSelector):
            return self.selector(expr)
        if isinstance(expr, promql_parser.AggregateExpr):
            inner = self.labels(expr.expr)
            grouped = set(expr.modifier.labels) if expr.modifier is not None else set()
            if expr.modifier is not None and expr.modifier.type == promql_parser.AggModifierType.By:
                missing = grouped - inner
                if missing:
                    self.problems.append(f"by {sorted(missing)}: not labels of {expr.expr}")
                return grouped
            return inner - grouped
        if isinstance(expr, promql_parser.Call):
            vectors = [self.labels(a) for a in expr.args if not _is_literal(a)]
            name = expr.func.name
            if name == "histogram_quantile":
                if vectors and "le" not in vectors[0]:
                    self.problems.append(f"histogram_quantile over series without le: {expr}")
                return (vectors[0] - {"le"}) if vectors else set()
            if name not in LABEL_KEEPING:
                self.problems.append(f"function {name}: add it to LABEL_KEEPING if it keeps labels")
            return vectors[0] if vectors else set()
        if isinstance(expr, promql_parser.BinaryExpr):
            left, right = self.labels(expr.lhs), self.labels(expr.rhs)
            matching = expr.modifier.matching if expr.modifier is not None else None
            if matching is not None and str(matching.type).endswith("On"):
                for side in (left, right):
                    if not _is_literal_set(side) and set(matching.labels) - side:
                        self.problems.append(f"on({matching.labels}) not on both sides: {expr}")
            return left if not _is_literal(expr.lhs) else right
        if isinstance(
            expr, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
        ):
            return self.labels(expr.expr)
        return set()

    def selector(self, selector: Any) -> set[str]:
        name = selector.name
        if name in PROMETHEUS_SERIES:
            known = set(PROMETHEUS_SERIES[name]) | TARGET_LABELS
        elif name not in self.metrics:
            self.problems.append(f"{name}: no such metric in the code")
            return set()
        else:
            metric = self.metrics[name]
            known = set(metric.labels) | (TARGET_LABELS - {"le"})
            if name.endswith("_bucket"):
                known.add("le")
        for matcher in selector.matchers.matchers:
            if matcher.name not in known:
                self.problems.append(f"{name} has no label {matcher.name!r}")
        return known


def _is_literal(expr: Any) -> bool:
    return isinstance(expr, promql_parser.NumberLiteral | promql_parser.StringLiteral)


def _is_literal_set(labels: set[str]) -> bool:
    return not labels


def parse(query: str) -> Any:
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    assert "$" not in query, f"an unsubstituted Grafana variable in {query}"
    return promql_parser.parse(query)


def query_labels(query: str, metrics: dict[str, Metric]) -> tuple[set[str], list[str]]:
    """The labels the query's result keeps, and the problems found in it."""
    problems = [f"{n}: no such metric in the code" for n in NAME.findall(query) if n not in metrics]
    try:
        expr = parse(query)
    except ValueError as error:
        return set(), [*problems, f"not PromQL ({error}): {query}"]
    check = QueryCheck(metrics, problems)
    kept = check.labels(expr)
    return kept, sorted(set(check.problems))


def check_query(query: str, metrics: dict[str, Metric]) -> list[str]:
    return query_labels(query, metrics)[1]


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


def test_alert_rules_are_well_formed(metrics: dict[str, Metric]) -> None:
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
            about_linkplane = NAME.search(rule["expr"]) or 'deployment=~"linkplane-' in rule["expr"]
            assert about_linkplane, f"{rule['alert']}: neither a linkplane metric nor workload"
            assert DURATION.match(rule.get("for", "0m")), rule["alert"]
            assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            # Label templates must refer to labels the expression keeps.
            kept, _ = query_labels(rule["expr"], metrics)
            for label in re.findall(r"\$labels\.(\w+)", json.dumps(rule["annotations"])):
                assert label in kept, f"{rule['alert']}: {label} is aggregated away"
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "alert names must be unique"


def test_deploy_doc_explains_every_alert() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if rule["alert"] not in doc]
    assert not missing, f"docs/deploy.md does not mention {missing}"


def test_the_check_catches_unknown_metrics_labels_groupings_and_syntax(
    metrics: dict[str, Metric],
) -> None:
    assert check_query("rate(linkplane_rpc_total[5m])", metrics) == []
    assert check_query("rate(linkplane_rpcs_total[5m])", metrics)
    assert check_query('rate(linkplane_rpc_total{account="1"}[5m])', metrics)
    assert check_query("linkplane_rpc_seconds_bucket", metrics) == []
    assert check_query("linkplane_rpc_total_bucket", metrics)
    assert check_query("sum by (account) (rate(linkplane_aws_calls_total[5m]))", metrics)
    assert check_query("sum by (code) (rate(linkplane_rpc_total[5m])", metrics)
    assert check_query("histogram_quantile(0.9, rate(linkplane_rpc_total[5m]))", metrics)
    kept, problems = query_labels(
        "histogram_quantile(0.9, sum by (le, method) "
        "(rate(linkplane_rpc_seconds_bucket[$__rate_interval])))",
        metrics,
    )
    assert (kept, problems) == ({"method"}, [])
