"""Dashboards, alerts and adapter rules only read metrics something exports."""

import json
import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart

#: Series from other exporters the dashboard and rules read: Prometheus itself, kube-state-metrics
#: (kube-prometheus-stack) and the Strimzi Kafka Exporter.
EXTERNAL = {
    "up",
    "kube_pod_info",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partitions",
}
_SERIES = re.compile(r"\b((?:emostream|kube|kafka)_[a-z0-9_]+|up)\s*(?=[{\[)])")


def series_read(promql: str) -> set[str]:
    """Series names a PromQL expression selects."""
    return set(_SERIES.findall(promql))


def dashboard_exprs(variables: bool = True) -> list[str]:
    """Every panel query of the Grafana dashboard and (Grafana's own syntax) its variables."""
    dash = json.loads((chartlib.CHART / "dashboards" / "emostream.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    if variables:
        exprs += [
            v["query"]["query"]
            for v in dash["templating"]["list"]
            if isinstance(v.get("query"), dict)
        ]
    return exprs


def test_dashboard_reads_exported_metrics(exported: set[str]) -> None:
    """Every series on the dashboard is exported by Emostream or a known exporter."""
    read = set().union(*map(series_read, dashboard_exprs()))
    assert {m for m in read if m.startswith("emostream_")} <= exported
    assert {m for m in read if not m.startswith("emostream_")} <= EXTERNAL
    assert "emostream_aggregate_offsets_behind_latest" in read


def test_dashboard_configmap_is_labelled_for_grafana() -> None:
    """The dashboard ConfigMap carries grafana_dashboard: "1" and holds the JSON as is."""
    cm = chartlib.find(chartlib.rendered(None), "ConfigMap", "emostream-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["emostream.json"])["uid"] == "emostream"


def test_alert_rules_read_exported_metrics(exported: set[str]) -> None:
    """Every alert expression reads only exported series, and each alert has a summary."""
    (rule,) = chartlib.of_kind(chartlib.rendered(None), "PrometheusRule")
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            read = series_read(alert["expr"])
            assert read, alert["alert"]
            assert {m for m in read if m.startswith("emostream_")} <= exported, alert["alert"]
            assert {m for m in read if not m.startswith("emostream_")} <= EXTERNAL, alert["alert"]
            assert alert["annotations"]["summary"]


def test_adapter_rules_read_exported_series(exported: set[str]) -> None:
    """Each prometheus-adapter rule reads a series Emostream exports."""
    values = yaml.safe_load((chartlib.ADDONS / "prometheus-adapter-values.yaml").read_text())
    for rule in values["rules"]["custom"]:
        assert rule["seriesQuery"].split("{")[0].strip("'") in exported


def all_promql() -> list[str]:
    """Every PromQL expression the chart and its add-ons hand to Prometheus, KEDA or the adapter."""
    exprs = [
        e.replace("$namespace", "ns").replace("$release", "rel")
        for e in dashboard_exprs(variables=False)
    ]
    for profile in [None, *chartlib.PROFILES]:
        for obj in chartlib.rendered(profile):
            if obj["kind"] == "PrometheusRule":
                exprs += [r["expr"] for g in obj["spec"]["groups"] for r in g["rules"]]
            if obj["kind"] == "ScaledObject":
                exprs += [
                    t["metadata"]["query"]
                    for t in obj["spec"]["triggers"]
                    if t["type"] == "prometheus"
                ]
    values = yaml.safe_load((chartlib.ADDONS / "prometheus-adapter-values.yaml").read_text())
    for rule in values["rules"]["custom"]:
        series = rule["seriesQuery"].split("{")[0].strip("'")
        exprs.append(
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="ns"')
            .replace("<<.GroupBy>>", "pod")
        )
    return exprs


def test_every_promql_expression_parses() -> None:
    """Alerts, KEDA queries, dashboard panels and adapter rules are valid PromQL."""
    exprs = all_promql()
    assert len(exprs) > 40
    assert chartlib.promql_problems(exprs) == []


def test_promql_check_rejects_a_broken_expression() -> None:
    """The PromQL check is real: an unbalanced expression is reported with the parser's error."""
    problems = chartlib.promql_problems(
        ["sum(up)", "sum(rate(emostream_ingest_requests_total[1m])"]
    )
    assert problems[0] == "line 2: sum(rate(emostream_ingest_requests_total[1m])"
    assert "unclosed left parenthesis" in problems[1]
