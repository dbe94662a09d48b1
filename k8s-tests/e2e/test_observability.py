"""The chart's Grafana dashboard and alert rules on the Prometheus the Operator runs.

Static tests parse every query; these run them. The Operator turns the chart's ServiceMonitors,
PodMonitors and PrometheusRule into its Prometheus's configuration, beside kube-state-metrics
and every kubelet's cAdvisor. After some traffic, with the autoscalers on (their HPAs are what
two panels chart), every dashboard panel must show a number, every alert rule must be loaded
and evaluate without error, and the critical ones must stay quiet. The panels on the Kafka
Exporter's series are listed and left out: Strimzi runs that exporter beside its brokers, and
this cluster's broker is not Strimzi's.
"""

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from clusterlib import CHART, FULLNAME, Cluster, Progress, open_sse_feeds
from tests.support.waiting import wait_until

from emostream.client import EmostreamClient
from emostream.client.errors import RequestRejectedError

DASHBOARD = CHART / "dashboards" / "emostream.json"
# One feed in this many times its writes (fanout's latency_sample_every default): opening this
# many on one pod guarantees the latency histograms get observations.
FEEDS = 16
_METRIC = re.compile(r"\b([a-z_]+)\{")
#: Series only Strimzi's Kafka Exporter serves.
KAFKA_EXPORTER = "kafka_"


def _query(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query; fails the test on a query error."""
    reply = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = reply.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _has_number(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


def _panels(namespace: str) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """The dashboard's panels this cluster can fill (title -> queries, with the variables filled
    in), and those on the Kafka Exporter (title -> the metrics they read)."""
    dashboard = json.loads(DASHBOARD.read_text())
    ours: dict[str, list[str]] = {}
    exporter: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        if not exprs:
            continue
        exprs = [e.replace("$namespace", namespace).replace("$release", FULLNAME) for e in exprs]
        metrics = {m for e in exprs for m in _METRIC.findall(e)}
        if kafka := {m for m in metrics if m.startswith(KAFKA_EXPORTER)}:
            exporter[panel["title"]] = kafka
        else:
            ours[panel["title"]] = exprs
    return ours, exporter


def _traffic(stream: str, client: EmostreamClient, progress: Progress) -> None:
    """Reactions seen by FEEDS open feeds, and one the ingest rejects."""
    feeds = open_sse_feeds(client.fanout_url, stream, FEEDS)
    try:
        for batch in range(5):
            reactions = [{"user_id": f"o{batch}-{i}", "emoji": "👏"} for i in range(50)]
            assert client.send(stream, reactions) == 50
            time.sleep(2)
        with pytest.raises(RequestRejectedError):
            client.send(stream, {"user_id": "o-bad", "emoji": "not an emoji"})
    finally:
        for feed in feeds:
            feed.close()
    progress.say(f"traffic: 250 reactions to {stream} with {FEEDS} feeds open, 1 rejected")


@pytest.mark.usefixtures("autoscaling")
def test_dashboard_panels_show_data(
    prometheus_url: str,
    client: EmostreamClient,
    live_stream: Callable[[str], str],
    cluster: Cluster,
    progress: Progress,
) -> None:
    """Every panel this cluster can fill returns a number once the install has had traffic."""
    ours, exporter = _panels(cluster.namespace)
    for title, metrics in sorted(exporter.items()):
        source = f"Strimzi's Kafka Exporter: {', '.join(sorted(metrics))}"
        progress.say(f"  not checked ({source}): {title}")
    _traffic(live_stream("e2e-obs"), client, progress)

    # A panel passes once it has shown a number: a rate over one minute of a single rejection
    # shows it for about that minute only.
    waiting = dict(ours)

    def all_shown() -> bool:
        for title, exprs in list(waiting.items()):
            if any(_has_number(_query(prometheus_url, e)) for e in exprs):
                del waiting[title]
        return not waiting

    wait_until(
        lambda: f"data on every panel; still none on {sorted(waiting)}",
        all_shown,
        120,
        interval_s=5,
    )
    progress.say(f"dashboard: all {len(ours)} panels show data; {len(exporter)} left out")


def test_alert_rules_evaluate_and_the_critical_ones_stay_quiet(
    prometheus_url: str, alert_rules: list[dict[str, Any]], cluster: Cluster, progress: Progress
) -> None:
    """The Operator loaded every rule of the chart's PrometheusRule into its Prometheus, each
    evaluates without error, and no critical alert (a tier down, errors, lost events) is pending
    or firing on the healthy install.

    Warnings (latency, lag, drops) may be pending on this small shared cluster; they are printed.
    """
    expected = {r["alert"]: r for group in alert_rules for r in group["rules"] if "alert" in r}
    # The Operator writes each PrometheusRule to a file named <namespace>-<name>-<uid>.yaml.
    ours = f"/{cluster.namespace}-"
    loaded: dict[str, dict[str, Any]] = {}

    def evaluated() -> bool:
        reply = requests.get(f"{prometheus_url}/api/v1/rules", timeout=10).json()
        rules = [r for g in reply["data"]["groups"] if ours in g["file"] for r in g["rules"]]
        loaded.clear()
        loaded.update({r["name"]: r for r in rules if r["type"] == "alerting"})
        return set(loaded) == set(expected) and all(
            r["health"] != "unknown" for r in loaded.values()
        )

    wait_until(
        lambda: f"every alert rule loaded and evaluated; not loaded: {set(expected) - set(loaded)}",
        evaluated,
        180,
        interval_s=5,
    )
    failing = {name: r.get("lastError") for name, r in loaded.items() if r["health"] != "ok"}
    assert not failing, f"rules that do not evaluate: {failing}"
    active = {name: r["state"] for name, r in loaded.items() if r["state"] != "inactive"}
    critical = {n: s for n, s in active.items() if expected[n]["labels"]["severity"] == "critical"}
    assert not critical, f"critical alerts on a healthy install: {critical}"
    progress.say(
        f"alert rules: {len(loaded)} loaded by the Operator and evaluated; "
        f"active warnings: {active or 'none'}"
    )
