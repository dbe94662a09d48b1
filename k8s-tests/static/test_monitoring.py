"""Dashboards, alerts and adapter rules only read metrics something exports."""

import json
import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart

#: Series from other exporters the dashboard and rules read: Prometheus itself, kube-state-metrics
#: and the kubelet's cAdvisor (kube-prometheus-stack scrapes both) and the Strimzi Kafka Exporter.
EXTERNAL = {
    "up",
    "kube_pod_info",
    "kube_horizontalpodautoscaler_status_current_replicas",
    "kube_horizontalpodautoscaler_status_desired_replicas",
    "kube_horizontalpodautoscaler_spec_max_replicas",
    "kube_horizontalpodautoscaler_spec_target_metric",
    "kube_horizontalpodautoscaler_status_target_metric",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kafka_topic_partition_current_offset",
    "kafka_topic_partitions",
}
_SERIES = re.compile(r"\b((?:emostream|kube|kafka|container)_[a-z0-9_]+|up)\s*(?=[{\[)])")


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


def test_dashboard_shows_what_operators_watch() -> None:
    """The dashboard covers each tier's load, latency, drops, Kafka lag, resources, and each
    autoscaler's signal against its target and desired against current replicas."""
    read = set().union(*map(series_read, dashboard_exprs(variables=False)))
    assert {
        "emostream_ingest_requests_total",
        "emostream_ingest_events_accepted_total",
        "emostream_ingest_events_rejected_total",
        "emostream_aggregate_input_rows_per_second",
        "emostream_aggregate_processed_rows_per_second",
        "emostream_aggregate_batch_duration_seconds",
        "emostream_aggregate_offsets_behind_latest",
        "emostream_aggregate_late_rows_total",
        "emostream_fanout_event_to_viewer_seconds_bucket",
        "emostream_fanout_connections",
        "emostream_fanout_messages_sent_total",
        "emostream_fanout_slow_client_disconnects_total",
        "emostream_fanout_upstream_lag_messages",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_status_target_metric",
        "emostream_aggregate_backlog_seconds",
        "emostream_aggregate_backlog_target_seconds",
        "emostream_aggregate_executors_desired",
        "emostream_aggregate_executors",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    } <= read


def test_dashboard_panels_do_not_overlap() -> None:
    """Panel ids are unique and no two panels share a grid cell (24 columns wide)."""
    dash = json.loads((chartlib.CHART / "dashboards" / "emostream.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def runbook_anchors() -> set[str]:
    """Anchors of the headings of docs/operations.md, as Markdown renderers derive them."""
    text = (chartlib.ROOT / "docs" / "operations.md").read_text()
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_alert_rules_read_exported_metrics(exported: set[str]) -> None:
    """Every alert reads only exported series and has a summary, a description and a runbook."""
    (rule,) = chartlib.of_kind(chartlib.rendered(None), "PrometheusRule")
    anchors = runbook_anchors()
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            name = alert["alert"]
            read = series_read(alert["expr"])
            assert read, name
            assert {m for m in read if m.startswith("emostream_")} <= exported, name
            assert {m for m in read if not m.startswith("emostream_")} <= EXTERNAL, name
            notes = alert["annotations"]
            assert notes["summary"], name
            assert notes["description"], name
            page, _, anchor = notes["runbook_url"].partition("#")
            assert page == "docs/operations.md", name
            assert anchor == name.lower(), name
            assert anchor in anchors, name


def test_alert_thresholds_come_from_values() -> None:
    """Changing a threshold in values changes the rendered alert that uses it."""
    values = yaml.safe_load((chartlib.CHART / "values.yaml").read_text())["monitoring"]["rules"]
    changed = {
        "eventToViewerP99Seconds": ("EmostreamReactionToViewerSlow", 7.5),
        "fanoutUpstreamLagMessages": ("EmostreamFanoutUpstreamLag", 12345),
        "ingest5xxRatio": ("EmostreamIngestErrorRatio", 0.125),
        "fanoutDroppedPerMinuteRatio": ("EmostreamFanoutDroppingViewers", 0.375),
        "aggregateBacklogRecords": ("EmostreamAggregateBehind", 54321),
    }
    # --set would pass the fractions as strings, which the values schema refuses.
    overrides = [f"--set-json=monitoring.rules.{key}={v}" for key, (_, v) in changed.items()]
    result = chartlib.run(
        [
            chartlib.tool("helm"),
            "template",
            chartlib.RELEASE,
            chartlib.CHART,
            "--namespace",
            chartlib.NAMESPACE,
            "--kube-version",
            chartlib.KUBE_VERSION,
            *chartlib.helm_args(),
            *overrides,
        ]
    )
    assert result.returncode == 0, result.stderr
    (rule,) = chartlib.of_kind(chartlib.parse(result.stdout), "PrometheusRule")
    by_name = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    for key, (alert, value) in changed.items():
        assert values[key] != value, key
        assert f"> {value}" in by_name[alert]["expr"], key
    notes = by_name["EmostreamFanoutDroppingViewers"]["annotations"]
    assert "more than 37.5 % of its viewers" in notes["summary"]
    assert notes["runbook_url"] == "docs/operations.md#emostreamfanoutdroppingviewers"


def test_replay_evictions_alert_names_the_bounds_to_raise() -> None:
    """Fanout evicting replay memory for 10 minutes warns, naming the two settings to raise."""
    (rule,) = chartlib.of_kind(chartlib.rendered(None), "PrometheusRule")
    by_name = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    alert = by_name["EmostreamFanoutReplayEvictions"]
    assert series_read(alert["expr"]) == {"emostream_fanout_replay_evictions_total"}
    assert alert["expr"].endswith("[5m])) > 0")
    assert alert["for"] == "10m"
    assert alert["labels"] == {"severity": "warning"}
    notes = alert["annotations"]
    for setting in ("replay_max_streams", "replay_max_bytes"):
        assert setting in notes["summary"]
        assert setting in notes["description"]


def test_stream_limit_alert_names_the_caps_to_raise() -> None:
    """New streams refused at the open registry's caps for 10 minutes warns, naming the caps."""
    (rule,) = chartlib.of_kind(chartlib.rendered(None), "PrometheusRule")
    by_name = {a["alert"]: a for g in rule["spec"]["groups"] for a in g["rules"]}
    alert = by_name["EmostreamStreamLimitReached"]
    assert series_read(alert["expr"]) == {"emostream_ingest_events_rejected_total"}
    assert 'reason=~"live_stream_cap|new_stream_rate"' in alert["expr"]
    assert (alert["for"], alert["labels"]) == ("10m", {"severity": "warning"})
    for setting in ("registry_max_live_streams", "registry_new_streams_per_min"):
        assert setting in alert["annotations"]["summary"]


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
