"""Every emostream series the dashboard, the alerts and the autoscalers read is really exported.

The static chart tests compare those names with the metrics the code declares; this test asks
the running components instead: real ingest and fanout gunicorn servers and the aggregation's
metrics endpoint, after a little traffic, scraped over HTTP like Prometheus does.
"""

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery
from simple_websocket import Client as WebSocketClient

from emostream.aggregate._metrics import BacklogProbe, ProgressListener, serve_metrics
from emostream.client import EmostreamClient
from emostream.common.kafka import KafkaConnection
from emostream.localstack.process import ProcessDir
from tests.fanout.live import RawFeed, start_fanout
from tests.support.ports import free_port
from tests.support.servers import start_role
from tests.support.services import ROOT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CHART = ROOT / "charts" / "emostream"
_NAME = re.compile(r"\bemostream_[a-z0-9_]+")
#: Which component exports the series of each name prefix.
COMPONENTS = {
    "emostream_ingest_": "ingest",
    "emostream_fanout_": "fanout",
    "emostream_aggregate_": "aggregate",
}


def dashboard_names() -> set[str]:
    """Series names in the Grafana dashboard's panel queries and variables."""
    dash = json.loads((CHART / "dashboards" / "emostream.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    variables = dash["templating"]["list"]
    exprs += [v["query"]["query"] for v in variables if isinstance(v.get("query"), dict)]
    return {name for expr in exprs for name in _NAME.findall(expr)}


def alert_names() -> set[str]:
    """Series names in the PrometheusRule template (expressions and annotations)."""
    return set(
        _NAME.findall((CHART / "templates" / "monitoring" / "prometheusrule.yaml").read_text())
    )


def autoscaler_names() -> set[str]:
    """Series the KEDA trigger queries and the prometheus-adapter rules read.

    Only the KEDA query template is read from ``_signals.tpl``: the same file also names the
    adapter's per-pod custom metric, which is an adapter name, not a scraped series.
    """
    signals = (CHART / "templates" / "autoscaling" / "_signals.tpl").read_text()
    query = re.search(r'define "emostream\.autoscaling\.query".*?(?=\{\{- define)', signals, re.S)
    assert query is not None, "the KEDA query template moved"
    adapter = yaml.safe_load(
        (ROOT / "charts" / "addons" / "prometheus-adapter-values.yaml").read_text()
    )
    series = {rule["seriesQuery"].split("{")[0].strip("'") for rule in adapter["rules"]["custom"]}
    return set(_NAME.findall(query.group(0))) | series


def samples(url: str) -> dict[str, float]:
    """Per sample name of one /metrics endpoint (parsed as Prometheus does), its values' sum."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def scraped(url: str) -> set[str]:
    """Sample names of one /metrics endpoint."""
    return set(samples(url))


@dataclass(frozen=True)
class Endpoints:
    """Where each component serves its metrics, and the SDK client of the two web tiers."""

    client: EmostreamClient
    ingest_metrics: str
    fanout_metrics: str
    aggregate_metrics: str


@pytest.fixture(scope="module")
def aggregate_metrics(
    spark: SparkSession, aggregation: StreamingQuery, kafka_bootstrap: str
) -> Iterator[tuple[str, ProgressListener]]:
    """The aggregation's metrics endpoint wired as the job's main() wires it.

    The aggregate tests keep their own listener on the session (tests/aggregate/conftest.py).
    This one is removed when the module ends, so their counts are never doubled; while this
    module runs both may be attached, which doubles only counters nothing here reads.
    """
    listener = ProgressListener()
    spark.streams.addListener(listener)
    probe = BacklogProbe(KafkaConnection(kafka_bootstrap), listener, interval_s=1)
    probe.start()
    port = free_port()
    server: WSGIServer = serve_metrics(port, "127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port}/metrics", listener
    finally:
        server.shutdown()
        server.server_close()
        probe.stop()
        spark.streams.removeListener(listener)


@pytest.fixture(scope="module")
def endpoints(
    aggregate_metrics: tuple[str, ProgressListener],
    processes: ProcessDir,
    service_env: dict[str, str],
) -> Iterator[Endpoints]:
    """Real ingest and fanout servers on the session's Kafka and Redis, and the aggregation."""
    # Frequent librdkafka statistics: they are what feeds the delivery latency gauges.
    stats_env = {**service_env, "EMOSTREAM_PRODUCER_STATS_INTERVAL_S": "1"}
    ingest = start_role(processes, "metrics-ingest", "ingest", "gthread", stats_env)
    # Short heartbeats, so the SSE reader's socket timeout never fires while it waits.
    fanout = start_fanout(processes, "metrics-fanout", service_env)
    with EmostreamClient(ingest_url=ingest.url, fanout_url=fanout.url) as client:
        yield Endpoints(client, ingest.metrics_url, fanout.metrics_url, aggregate_metrics[0])
    for role in ("ingest", "fanout"):
        processes.stop(f"metrics-{role}", grace_s=15)


def test_names_used_by_dashboard_alerts_and_autoscalers_are_scraped(
    endpoints: Endpoints,
    aggregate_metrics: tuple[str, ProgressListener],
    aggregation: StreamingQuery,
) -> None:
    """After real traffic, each name the chart reads is a sample on its component's /metrics."""
    used = dashboard_names() | alert_names() | autoscaler_names()
    assert {
        "emostream_fanout_event_to_viewer_seconds_bucket",
        "emostream_fanout_connections",
    } <= used
    client = endpoints.client
    stream = f"metrics-{uuid.uuid4().hex[:10]}"
    feed = RawFeed(f"{client.fanout_url}/v1/streams/{stream}/events", keep_text=False)
    ws = WebSocketClient.connect(
        client.fanout_url.replace("http://", "ws://") + f"/v1/streams/{stream}/ws"
    )
    try:
        feed.wait_open()
        assert client.send(stream, [{"user_id": f"u{i}", "emoji": "❤️"} for i in range(20)]) == 20
        # A rejected request too, so the request counters carry a 4xx status beside the 202s.
        bad = requests.post(
            f"{client.ingest_url}/v1/streams/{stream}/reactions",
            data=b"{",
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert bad.status_code == 400
        (swarm,) = feed.read(1, within_s=120)
        assert json.loads(swarm.data)["stream_id"] == stream
        assert ws.receive(timeout=60) is not None
    finally:
        feed.close()
        ws.close()
    listener = aggregate_metrics[1]
    query = aggregation.name
    wait_until("a micro-batch seen by the listener", lambda: query in listener.positions(), 120)
    # The aggregation's swarms carry last_receive_ms, so their live writes were timed.
    wait_until(
        "the reaction-to-viewer latency of the SSE and WebSocket writes",
        lambda: (
            samples(endpoints.fanout_metrics)["emostream_fanout_event_to_viewer_seconds_count"] >= 2
        ),
        30,
    )
    # librdkafka reports latencies in statistics at intervals, once it has sent something.
    wait_until(
        "producer statistics after the first delivery",
        lambda: "emostream_ingest_delivery_latency_seconds" in scraped(endpoints.ingest_metrics),
        60,
    )

    urls = {
        "ingest": endpoints.ingest_metrics,
        "fanout": endpoints.fanout_metrics,
        "aggregate": endpoints.aggregate_metrics,
    }
    exported = {component: scraped(url) for component, url in urls.items()}
    missing = {
        name
        for name in used
        for prefix, component in COMPONENTS.items()
        if name.startswith(prefix) and name not in exported[component]
    }
    assert not missing, f"read by the chart but not exported: {sorted(missing)}"
    unowned = {name for name in used if not name.startswith(tuple(COMPONENTS))}
    assert not unowned, f"no component exports the prefix of {sorted(unowned)}"
