"""The chart's Grafana dashboard and alert rules against a real Prometheus scraping the install.

Static tests parse every query; these run them. The harness's Prometheus scrapes the chart's
Services as a ServiceMonitor would and evaluates the groups of the chart's PrometheusRule. After
some traffic, every dashboard panel built on the chart's own metrics must show a number, every
alert rule must evaluate without error, and the critical ones must stay quiet. Panels on
series from other exporters (kube-state-metrics, cAdvisor, the Kafka Exporter), which this
cluster does not run, are listed and left out.
"""

import json
import math
import re
import time
import uuid
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
    """The dashboard's panels on the chart's metrics (title -> queries, with the variables
    filled in), and the others (title -> the foreign metrics they read)."""
    dashboard = json.loads(DASHBOARD.read_text())
    ours: dict[str, list[str]] = {}
    foreign: dict[str, set[str]] = {}
    for panel in dashboard["panels"]:
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        if not exprs:
            continue
        exprs = [e.replace("$namespace", namespace).replace("$release", FULLNAME) for e in exprs]
        metrics = {m for e in exprs for m in _METRIC.findall(e)}
        others = {m for m in metrics if not m.startswith("emostream_")}
        if others:
            foreign[panel["title"]] = others
        else:
            ours[panel["title"]] = exprs
    return ours, foreign


def _traffic(ingest_url: str, fanout_url: str, progress: Progress) -> None:
    """Reactions seen by FEEDS open feeds, and one the ingest rejects."""
    stream = f"e2e-obs-{uuid.uuid4().hex[:8]}"
    feeds = open_sse_feeds(fanout_url, stream, FEEDS)
    try:
        with EmostreamClient(ingest_url=ingest_url) as client:
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


def test_dashboard_panels_show_data(
    prometheus_url: str, ingest_url: str, fanout_url: str, cluster: Cluster, progress: Progress
) -> None:
    """Every panel on the chart's metrics returns a number once the install has had traffic."""
    ours, foreign = _panels(cluster.namespace)
    for title, metrics in sorted(foreign.items()):
        progress.say(f"  not checked (no exporter here for {', '.join(sorted(metrics))}): {title}")
    _traffic(ingest_url, fanout_url, progress)

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
    progress.say(f"dashboard: all {len(ours)} panels on the chart's metrics show data")


def test_alert_rules_evaluate_and_the_critical_ones_stay_quiet(
    prometheus_url: str, alert_rules: list[dict[str, Any]], release: str, progress: Progress
) -> None:
    """Prometheus loaded every rule of the chart's PrometheusRule, each evaluates without error,
    and no critical alert (a tier down, errors, lost events) is pending or firing on the
    healthy install.

    Warnings (latency, lag, drops) may be pending on this small shared node; they are printed.
    """
    expected = {r["alert"]: r for group in alert_rules for r in group["rules"] if "alert" in r}
    loaded: dict[str, dict[str, Any]] = {}

    def evaluated() -> bool:
        reply = requests.get(f"{prometheus_url}/api/v1/rules", timeout=10).json()
        rules = [r for g in reply["data"]["groups"] for r in g["rules"]]
        loaded.clear()
        loaded.update({r["name"]: r for r in rules if r["type"] == "alerting"})
        return bool(loaded) and all(r["health"] != "unknown" for r in loaded.values())

    wait_until("every alert rule to be evaluated", evaluated, 60, interval_s=2)
    assert set(loaded) == set(expected)
    failing = {name: r.get("lastError") for name, r in loaded.items() if r["health"] != "ok"}
    assert not failing, f"rules that do not evaluate: {failing}"
    active = {name: r["state"] for name, r in loaded.items() if r["state"] != "inactive"}
    critical = {n: s for n, s in active.items() if expected[n]["labels"]["severity"] == "critical"}
    assert not critical, f"critical alerts on a healthy install: {critical}"
    progress.say(
        f"alert rules: {len(loaded)} loaded and evaluated; active warnings: {active or 'none'}"
    )
