"""The chart's KEDA autoscalers on a real cluster: load scales ingest and fanout up, quiet scales
them back down.

The `autoscaling` fixture turns autoscaling on with `helm upgrade` (autoscaling-values.yaml:
one to three pods per tier, small per-pod targets, quick scale-down) against the Operator's
Prometheus; the test opens enough SSE feeds to ask for three fanout pods and posts enough
requests per second to ask for three ingest pods. KEDA reads the chart's own PromQL queries, and
ingest's CPU trigger the resource metrics metrics-server serves; the HPAs KEDA owns scale the
Deployments, and the new pods must become ready. Then the load stops and both tiers must return
to one pod.
"""

import itertools
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from clusterlib import FULLNAME, POLL_S, Cluster, Progress, open_sse_feeds
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
    deployment = cluster.get("deployment", f"{FULLNAME}-{tier}")
    hpa = cluster.get("hpa", f"{FULLNAME}-{tier}")["status"]
    return (
        deployment["status"].get("readyReplicas", 0),
        hpa.get("desiredReplicas", 0),
        ", ".join(_metric_value(m) for m in hpa.get("currentMetrics") or []) or "?",
    )


def _metric_value(metric: dict[str, Any]) -> str:
    """One of an HPA's current metrics, as "cpu 12%" or "<KEDA's metric name> 4"."""
    if resource := metric.get("resource"):
        return f"{resource['name']} {resource['current'].get('averageUtilization', '?')}%"
    external = metric.get("external", {})
    name = external.get("metric", {}).get("name", metric.get("type", "?"))
    current = external.get("current", {})
    return f"{name} {current.get('averageValue', current.get('value', '?'))}"


def _wait_for_pods(
    cluster: Cluster, progress: Progress, want: int, what: str, load: Load | None = None
) -> dict[str, float]:
    """Wait until every tier has ``want`` ready pods (and no more); return when each got there."""
    start = progress.elapsed()
    reached: dict[str, float] = {}
    seen: dict[str, tuple[int, int, str]] = {}

    def done() -> bool:
        if load is not None:
            load.check()
        for tier in (t for t in TIERS if t not in reached):
            now = _replicas(cluster, tier)
            if seen.get(tier, (-1, -1, ""))[:2] != now[:2]:
                progress.say(f"  {tier}: {now[0]} ready, HPA wants {now[1]} ({now[2]})")
            seen[tier] = now
            pods = len(cluster.get("pods", "-l", f"app.kubernetes.io/component={tier}")["items"])
            if now[0] == want and now[1] == want and pods == want:
                reached[tier] = progress.elapsed() - start
        return len(reached) == len(TIERS)

    wait_until(what, done, 420, interval_s=2)
    return reached


def test_autoscalers_scale_up_under_load_and_back_down(
    cluster: Cluster,
    autoscaling: None,
    ingest_url: str,
    fanout_url: str,
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
    stream = f"e2e-scale-{uuid.uuid4().hex[:8]}"
    try:
        load.open_feeds(stream)
        load.start_requests(stream)
        progress.say(f"load on: {FEEDS} SSE feeds open, {REQUESTS_PER_S} requests/s to ingest")
        up = _wait_for_pods(
            cluster, progress, MAX_REPLICAS, "both tiers scaled to 3 ready pods", load
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
