"""The chart's KEDA autoscalers on a real cluster: load scales ingest and fanout up, quiet scales
them back down.

The `autoscaling` fixture turns autoscaling on with `helm upgrade` (autoscaling-values.yaml:
one to three pods per tier, small per-pod targets, quick scale-down) against the Operator's
Prometheus; the test opens enough SSE feeds to ask for three fanout pods and posts enough
requests per second to ask for three ingest pods. KEDA reads the chart's own PromQL queries, and
ingest's CPU trigger the resource metrics metrics-server serves; the HPAs KEDA owns scale the
Deployments, and the new pods must become ready. Then the load stops and both tiers must return
to one pod.

A second test shows fanout's other trigger, its delivery lag: a swarm rate that a fanout pod held
to a twentieth of a core cannot keep up with, watched by fewer viewers than one pod's connection
target, takes fanout beyond one pod on the lag alone.
"""

import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from clusterlib import (
    CHART,
    FULLNAME,
    POLL_S,
    RELEASE,
    Cluster,
    Progress,
    open_sse_feeds,
    python_job,
)
from kubernetes.utils import parse_quantity
from tests.support.waiting import wait_until

from emostream.client import EmostreamClient

TIERS = ("fanout", "ingest")
# autoscaling-values.yaml: maxReplicas 3 for both; fanout's target is 15 connections per pod,
# ingest's 10 requests per second per pod.
MAX_REPLICAS = 3
FEEDS = 45
REQUESTS_PER_S = 40
# Each request crosses kubectl port-forward (tens of ms), so several senders share the rate.
SENDERS = 4


@dataclass
class Load:
    """SSE feeds held open on fanout and a steady request rate on ingest, until stopped."""

    fanout_url: str
    ingest_url: str
    feeds: list[socket.socket] = field(default_factory=list)
    sent: int = 0
    error: Exception | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def open_feeds(self, stream: str) -> None:
        """FEEDS SSE feeds, left open; each counts as one connection on fanout."""
        self.feeds = open_sse_feeds(self.fanout_url, stream, FEEDS)

    def _post(self, stream: str, sender: int) -> None:
        interval = SENDERS / REQUESTS_PER_S
        try:
            with EmostreamClient(ingest_url=self.ingest_url) as client:
                for n in itertools.count():
                    started = time.monotonic()
                    reaction = {"user_id": f"load-{sender}-{n}", "emoji": "🔥"}
                    accepted = client.send(stream, reaction)
                    with self._lock:
                        self.sent += accepted
                    if self._stop.wait(max(0.0, interval - (time.monotonic() - started))):
                        return
        except Exception as exc:  # noqa: BLE001 - handed to the test through check()
            self.error = exc

    def start_requests(self, stream: str) -> None:
        """SENDERS threads posting one reaction each, REQUESTS_PER_S in all."""
        for sender in range(SENDERS):
            thread = threading.Thread(target=self._post, args=(stream, sender), daemon=True)
            thread.start()
            self._threads.append(thread)

    def check(self) -> None:
        assert self.error is None, f"posting to ingest failed: {self.error!r}"

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        for feed in self.feeds:
            feed.close()
        self.feeds.clear()


def _replicas(cluster: Cluster, tier: str) -> tuple[int, int, str]:
    """A tier's (ready pods, pods its HPA wants, the HPA's current metric values)."""
    ready, hpa = _ready_and_hpa(cluster, tier)
    return ready, hpa.get("desiredReplicas", 0), _metric_values(hpa)


def _ready_and_hpa(cluster: Cluster, tier: str) -> tuple[int, dict[str, Any]]:
    """A tier's ready pods and its HPA's status."""
    deployment = cluster.get("deployment", f"{FULLNAME}-{tier}")
    hpa: dict[str, Any] = cluster.get("hpa", f"{FULLNAME}-{tier}")["status"]
    return deployment["status"].get("readyReplicas", 0), hpa


def _metric_values(hpa: dict[str, Any]) -> str:
    """An HPA status's current metric values, shown."""
    return ", ".join(_metric_value(m) for m in hpa.get("currentMetrics") or []) or "?"


def _metric_value(metric: dict[str, Any]) -> str:
    """One of an HPA's current metrics, as "cpu 12%" or "<KEDA's metric name> 4"."""
    if resource := metric.get("resource"):
        return f"{resource['name']} {resource['current'].get('averageUtilization', '?')}%"
    external = metric.get("external", {})
    name = external.get("metric", {}).get("name", metric.get("type", "?"))
    current = external.get("current", {})
    return f"{name} {current.get('averageValue', current.get('value', '?'))}"


def _wait_for_pods(
    cluster: Cluster,
    progress: Progress,
    want: int,
    what: str,
    *,
    load: Load | None = None,
    tiers: tuple[str, ...] = TIERS,
) -> dict[str, float]:
    """Wait until each of ``tiers`` has ``want`` ready pods (and no more); return when each got
    there."""
    start = progress.elapsed()
    reached: dict[str, float] = {}
    seen: dict[str, tuple[int, int, str]] = {}

    def done() -> bool:
        if load is not None:
            load.check()
        for tier in (t for t in tiers if t not in reached):
            now = _replicas(cluster, tier)
            if seen.get(tier, (-1, -1, ""))[:2] != now[:2]:
                progress.say(f"  {tier}: {now[0]} ready, HPA wants {now[1]} ({now[2]})")
            seen[tier] = now
            pods = len(cluster.get("pods", "-l", f"app.kubernetes.io/component={tier}")["items"])
            if now[0] == want and now[1] == want and pods == want:
                reached[tier] = progress.elapsed() - start
        return len(reached) == len(tiers)

    wait_until(what, done, 420, interval_s=2)
    return reached


@pytest.mark.usefixtures("autoscaling")
def test_autoscalers_scale_up_under_load_and_back_down(
    cluster: Cluster,
    ingest_url: str,
    fanout_url: str,
    live_stream: Callable[[str], str],
    progress: Progress,
) -> None:
    """Under load both tiers reach three ready pods; without it, both return to one. Ingest's
    HPA reads its pods' CPU utilisation from metrics-server throughout."""
    wait_until(
        "one pod per tier",
        lambda: all(_replicas(cluster, t)[0] == 1 for t in TIERS),
        300,
        interval_s=POLL_S,
    )
    load = Load(fanout_url=fanout_url, ingest_url=ingest_url)
    stream = live_stream("e2e-scale")
    try:
        load.open_feeds(stream)
        load.start_requests(stream)
        progress.say(f"load on: {FEEDS} SSE feeds open, {REQUESTS_PER_S} requests/s to ingest")
        up = _wait_for_pods(
            cluster, progress, MAX_REPLICAS, "both tiers scaled to 3 ready pods", load=load
        )
    finally:
        load.stop()
    progress.say(f"load off after {load.sent} reactions accepted")
    for tier, seconds in up.items():
        progress.seconds(f"autoscaler: {tier} 1 -> {MAX_REPLICAS} ready pods, load on", seconds)
    down = _wait_for_pods(cluster, progress, 1, "both tiers back to 1 pod")
    for tier, seconds in down.items():
        progress.seconds(f"autoscaler: {tier} {MAX_REPLICAS} -> 1 pod, load off", seconds)
    assert load.sent > 0
    cpu = _replicas(cluster, "ingest")[2]
    assert re.search(r"\bcpu \d+%", cpu), f"ingest's HPA has no CPU utilisation: {cpu}"
    progress.say(f"ingest's HPA metrics at rest: {cpu}")


#: Viewers of the lag test: fewer than autoscaling-values' 15 connections per pod, so the
#: connections trigger alone asks for one pod throughout.
LAG_VIEWERS = 12
CONNECTIONS_PER_POD = 15
#: The chart's default delivery-lag target (autoscaling.fanout.deliveryLagSeconds).
LAG_TARGET_S = 0.5
#: Swarms/s of the one stream those viewers watch: more writes than fanout's pod, held to
#: LAG_CPU, can make, so it falls behind and its delivery lag rises.
LAG_SWARMS_PER_S = 1000
LAG_CPU = "50m"
#: Holds a swarm rate on one stream and LAG_VIEWERS SSE viewers reading it through the fanout
#: Service, from inside the cluster (a port-forward would be the bottleneck), until deleted. A
#: viewer dropped for falling behind comes back, as a client would. Each swarm is a new
#: micro-batch of one window, emitted now, the way the aggregation writes one.
SWARM_LOAD = """
import os, selectors, socket, threading, time
from confluent_kafka import Producer
from emostream.common.emoji import swarm_of
from emostream.common.events import encode_json, iso_utc, swarm_id

stream, rate = os.environ["STREAM"], int(os.environ["SWARMS_PER_S"])
host, port = os.environ["FANOUT"].rsplit(":", 1)
request = f"GET /v1/streams/{stream}/events HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n".encode()
selector = selectors.DefaultSelector()
seen = {"bytes": 0, "reconnects": 0}

def connect():
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(request)
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ)

def read():
    while True:
        for key, _ in selector.select():
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            seen["bytes"] += len(data)
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()
                seen["reconnects"] += 1
                connect()

for _ in range(int(os.environ["VIEWERS"])):
    connect()
threading.Thread(target=read, daemon=True).start()
producer = Producer({**KAFKA, "linger.ms": 5})
window = int(time.time() * 1000) // 2000 * 2000
counts = {"🔥": 40, "❤️": 12}
batch, tick, started = 0, 0.05, time.monotonic()
while True:
    now = int(time.time() * 1000)
    for _ in range(int(rate * tick)):
        batch += 1
        message = {
            "id": swarm_id(batch, window), "stream_id": stream,
            "window_start": iso_utc(window), "window_end": iso_utc(window + 2000),
            "counts": counts, "swarm": swarm_of(counts, 10), "sentiment": 0.9,
            "emitted_at": now,
        }
        producer.produce("swarms", encode_json(message), stream.encode())
    producer.poll(0)
    if batch % (rate * 10) < rate * tick:
        print(f"{batch} swarms, {seen['bytes']} bytes read, {seen['reconnects']} reconnects")
    time.sleep(max(0.0, started + batch / rate - time.monotonic()))
"""


def _current(hpa_metric: dict[str, Any]) -> float:
    """The value of one of an HPA's current external metrics."""
    current = hpa_metric["external"]["current"]
    quantity = current.get("averageValue", current.get("value", "0"))
    return float(parse_quantity(quantity))  # type: ignore[no-untyped-call]


@pytest.fixture
def fanout_short_of_cpu(cluster: Cluster, autoscaling: None) -> Iterator[None]:
    """fanout held to LAG_CPU, every feed's writes timed and room to queue several seconds of
    swarms per viewer (so lag shows before a viewer is dropped as slow); restored afterwards."""
    values = json.loads(cluster.run("helm", "get", "values", RELEASE, "-a", "-o", "json"))
    fanout = values["fanout"]
    config = fanout["config"]
    keys = ("client_queue_size", "replay_max_per_stream", "latency_sample_every")
    restore = [f"fanout.resources.limits.cpu={fanout['resources']['limits']['cpu']}"]
    restore += [f"fanout.config.{k}={config[k]}" for k in keys if k in config]

    def upgrade(*settings: str) -> None:
        sets = [arg for setting in settings for arg in ("--set", setting)]
        cluster.run("helm", "upgrade", RELEASE, str(CHART), "--reuse-values", *sets)
        cluster.run(
            "kubectl", "rollout", "status", f"deployment/{FULLNAME}-fanout", "--timeout=180s"
        )

    upgrade(
        f"fanout.resources.limits.cpu={LAG_CPU}",
        "fanout.config.client_queue_size=4096",
        "fanout.config.replay_max_per_stream=4096",
        "fanout.config.latency_sample_every=1",
    )
    try:
        yield
    finally:
        upgrade(*restore)


def _lag_diagnosis(cluster: Cluster, job: str) -> str:
    """Why fanout did not scale: what the load Job saw, and the fanout pods' CPU."""
    seen = cluster.run("kubectl", "logs", f"job/{job}", "--tail=1").strip()
    top = cluster.run("kubectl", "top", "pods", "-l", "app.kubernetes.io/component=fanout")
    return f"fanout to scale out on its delivery lag (job/{job}: {seen}; kubectl top:\n{top})"


def test_fanout_scales_on_delivery_lag_with_few_viewers(
    cluster: Cluster,
    fanout_short_of_cpu: None,
    live_stream: Callable[[str], str],
    progress: Progress,
) -> None:
    """A swarm rate one fanout pod cannot keep up with, watched by fewer viewers than one pod's
    connection target: the delivery lag alone takes fanout beyond one pod, and fanout returns
    to one pod once the swarms stop."""
    wait_until(
        "one fanout pod", lambda: _replicas(cluster, "fanout")[:2] == (1, 1), 300, interval_s=2
    )
    stream = live_stream("e2e-lag")
    job = f"swarm-load-{uuid.uuid4().hex[:6]}"
    env = {
        "STREAM": stream,
        "SWARMS_PER_S": str(LAG_SWARMS_PER_S),
        "VIEWERS": str(LAG_VIEWERS),
        "FANOUT": f"{FULLNAME}-fanout:8080",
    }
    cluster.run("kubectl", "apply", "-f", "-", stdin=python_job(job, SWARM_LOAD, env, cpu="200m"))
    progress.say(
        f"job/{job}: {LAG_SWARMS_PER_S} swarms/s to {LAG_VIEWERS} viewers of {stream}, "
        f"fanout held to {LAG_CPU} CPU"
    )
    start = progress.elapsed()
    shown = ""
    #: The HPA's metrics when it first asked for more than its one pod: (connections, lag).
    decision: list[float] = []

    def scaled_on_lag() -> bool:
        nonlocal shown
        ready, hpa = _ready_and_hpa(cluster, "fanout")
        now = _metric_values(hpa)
        if now != shown:
            progress.say(
                f"  fanout: {ready} ready, HPA wants {hpa.get('desiredReplicas', 0)} ({now})"
            )
            shown = now
        values = [_current(m) for m in hpa.get("currentMetrics") or [] if m.get("external")]
        asks_more = hpa.get("currentReplicas") == 1 and hpa.get("desiredReplicas", 0) >= 2
        if not decision and asks_more and len(values) == 2:
            decision[:] = values
        return bool(decision) and ready >= 2

    try:
        wait_until(lambda: _lag_diagnosis(cluster, job), scaled_on_lag, 300)
        progress.seconds(
            "autoscaler: fanout delivery lag -> 2 ready pods", progress.elapsed() - start
        )
        progress.say(
            f"job/{job}: {cluster.run('kubectl', 'logs', f'job/{job}', '--tail=1').strip()}"
        )
    finally:
        cluster.run("kubectl", "delete", "job", job, "--cascade=foreground", "--timeout=120s")
    connections, lag = decision
    # The connections trigger alone would have kept one pod; the lag asked for more.
    assert connections <= CONNECTIONS_PER_POD, f"{connections} connections counted"
    assert lag > LAG_TARGET_S, f"a delivery lag of {lag} s should not scale fanout"
    down = _wait_for_pods(cluster, progress, 1, "fanout back to 1 pod", tiers=("fanout",))
    progress.seconds("autoscaler: fanout 1 pod again, swarms off", down["fanout"])
