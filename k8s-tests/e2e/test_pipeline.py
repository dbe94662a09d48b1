"""The chart on a real cluster: reactions posted to ingest arrive as exact counts on fanout's feed.

Everything between the two port-forwards runs in the cluster: ingest pods, the Kafka broker, the
Spark driver and its executor pods, Redis, fanout pods.
"""

import math
import re
from collections.abc import Callable
from typing import Any

from clusterlib import CHART, FULLNAME, POLL_S, Cluster, Progress
from kube_portforward import PortForward
from tests.support.feeds import SwarmCollector
from tests.support.waiting import wait_until

from emostream.client import EmostreamClient


def _check_swarms(feed: SwarmCollector, stream: str) -> None:
    for swarm in feed.windows.values():
        assert swarm["stream_id"] == stream
        assert swarm["swarm"] == {e: math.ceil(n / 1000) for e, n in swarm["counts"].items()}
    assert feed.ids == sorted(feed.ids), "swarm ids went backwards"
    assert len(feed.ids) == len(set(feed.ids)), "a swarm id came twice"


def test_exact_counts_arrive_on_the_sse_feed(
    client: EmostreamClient, live_stream: Callable[[str], str], progress: Progress
) -> None:
    """2,500 hearts and 300 laughs posted within a second arrive as exactly those counts.

    The first test of a run also waits for the aggregation's first micro-batches, so it allows
    for Spark's start on a small cluster.
    """
    stream = live_stream("e2e")
    batch = [{"user_id": f"u{i}", "emoji": "❤️"} for i in range(2500)]
    batch += [{"user_id": f"v{i}", "emoji": "😂"} for i in range(300)]
    with SwarmCollector(client, stream, timeout=60, max_failures=None) as feed:
        start = progress.elapsed()
        accepted = sum(client.send(stream, batch[i : i + 500]) for i in range(0, len(batch), 500))
        assert accepted == 2800
        wait_until(
            "exact counts", lambda: feed.totals() == {"❤️": 2500, "😂": 300}, 300, interval_s=POLL_S
        )
        progress.mark("first swarm with exact counts after the sends", start)
    _check_swarms(feed, stream)


def test_feed_resumes_without_a_gap_while_fanout_rolls(
    client: EmostreamClient,
    live_stream: Callable[[str], str],
    cluster: Cluster,
    fanout_forward: PortForward,
    progress: Progress,
) -> None:
    """A viewer listening through a rolling restart of fanout misses and repeats nothing.

    Reactions are sent before, during and after the roll; the client reconnects to the new pod
    with Last-Event-ID, so the ids it sees only increase and every count is exact.
    """
    stream = live_stream("e2e")
    deployment = f"{FULLNAME}-fanout"
    sent: dict[str, int] = {}
    forwards_before = fanout_forward.restarts

    def send(emoji: str, n: int, prefix: str) -> None:
        reactions = [{"user_id": f"{prefix}{i}", "emoji": emoji} for i in range(n)]
        assert client.send(stream, reactions) == n
        sent[emoji] = sent.get(emoji, 0) + n

    with SwarmCollector(client, stream, timeout=60, max_failures=None) as feed:
        send("🔥", 400, "a")
        wait_until("counts before the roll", lambda: feed.totals() == sent, 120, interval_s=POLL_S)
        old_pods = set(_fanout_pods(cluster))
        start = progress.elapsed()
        cluster.run("kubectl", "rollout", "restart", f"deployment/{deployment}")
        send("👏", 300, "b")
        cluster.run("kubectl", "rollout", "status", f"deployment/{deployment}", "--timeout=180s")
        # The old pods keep serving while they drain; the feed moves when they are gone.
        wait_until(
            "old fanout pods gone",
            lambda: not old_pods & set(_fanout_pods(cluster)),
            120,
            interval_s=POLL_S,
        )
        progress.mark("fanout rollout, old pods gone", start)
        send("😂", 200, "c")
        wait_until(
            "exact counts after the roll", lambda: feed.totals() == sent, 120, interval_s=POLL_S
        )
    _check_swarms(feed, stream)
    # The pod the feed was on went away, so the feed really moved to a new pod.
    assert fanout_forward.restarts > forwards_before


def _fanout_pods(cluster: Cluster) -> list[str]:
    pods = cluster.get("pods", "-l", "app.kubernetes.io/component=fanout")["items"]
    return [p["metadata"]["name"] for p in pods]


def _locust_errors(log: str) -> dict[str, int]:
    """The last "Error report" table of a Locust log: each error with its occurrences."""
    _, _, report = log.rpartition("Error report")
    rows = re.findall(r"^\s*(\d+)\s+(\S.*?)\s*$", report, flags=re.MULTILINE)
    return {error: int(n) for n, error in rows}


def test_in_cluster_load_test_completes(cluster: Cluster, release: str, progress: Progress) -> None:
    """The chart's Locust run (loadtest.enabled) finishes, with requests sent and none lost,
    and its SSE viewers receive swarms.

    The master Job exits non-zero on any failed request (--exit-code-on-error 1). The only
    failures accepted are ingest shedding load on purpose (503 while Kafka's queue is full, 429
    over a user's rate) on this small shared node, and only for under 1 % of the requests.
    Viewers report each live swarm they receive as an "SSE swarm delivery" request: there must
    be some, and none failed.
    """
    start = progress.elapsed()
    cluster.run(
        "helm", "upgrade", release, str(CHART), "--reuse-values",
        "--set", "loadtest.enabled=true", "--set", "loadtest.users=10",
        "--set", "loadtest.spawnRate=5", "--set", "loadtest.runTime=30s",
    )  # fmt: skip
    selector = "app.kubernetes.io/component=loadtest-master"

    def finished() -> tuple[str, dict[str, Any]] | None:
        """The load test job's name and status once it succeeded or failed."""
        jobs = cluster.get("jobs", "-l", selector)["items"]
        status = jobs[0]["status"] if jobs else {}
        if status.get("succeeded") or status.get("failed"):
            return jobs[0]["metadata"]["name"], status
        return None

    name, status = wait_until("the load test to finish", finished, 400, interval_s=3)
    log = cluster.run("kubectl", "logs", f"job/{name}", "--tail=120")
    progress.mark("in-cluster load test (30 s run)", start)
    # The request table's last row: "Aggregated  <requests>  <failures>(<percent>%) | ...".
    totals = re.findall(r"Aggregated\s+(\d+)\s+(\d+)\(", log)
    assert totals, f"no Locust summary in the log (the run did not finish):\n{log}"
    requests_sent, failures = map(int, totals[-1])
    errors = _locust_errors(log) if failures else {}
    progress.say(f"  {name}: {requests_sent} requests, {failures} failed: {errors or 'none'}")
    assert requests_sent > 0
    shed = sum(n for e, n in errors.items() if re.search(r"code=(503|429)\)", e))
    assert shed == failures, f"failures other than load shedding:\n{log}"
    assert failures < requests_sent / 100, f"{failures} of {requests_sent} requests shed"
    assert status.get("succeeded") or failures, f"the load test failed:\n{log}"
    # The row "SSE  swarm delivery  <swarms>  <failures>(<percent>%) | ...".
    deliveries = re.findall(r"SSE\s+swarm delivery\s+(\d+)\s+(\d+)\(", log)
    assert deliveries, f"no swarm deliveries in the Locust summary:\n{log}"
    swarms, failed = map(int, deliveries[-1])
    progress.say(f"  SSE viewers: {swarms} swarms received, {failed} failed")
    assert swarms > 0, f"the viewers received no swarm:\n{log}"
    assert failed == 0, f"viewers' feeds failed:\n{log}"


def test_helm_test_passes(cluster: Cluster, release: str, progress: Progress) -> None:
    """`helm test`: the chart's test pod reaches every tier through its Service (the
    aggregation's metrics port through the NetworkPolicy's exception for that pod)."""
    out = cluster.run("helm", "test", release, "--logs", "--timeout", "180s")
    for line in out.splitlines():
        progress.say(f"  helm test: {line}")
    assert re.search(r"Phase:\s+Succeeded", out), out
