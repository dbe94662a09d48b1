"""The aggregation's executors follow the reactions backlog on a real cluster; nothing is lost.

A Job in the namespace produces a burst of reactions straight into Kafka, far faster than one
executor reads them. The driver's autoscaler (values.yaml: one to three executors, a short
stabilisation) adds executors up to the maximum, on more than one node, the backlog drains, the
executors return to the minimum, and the fanout feed's counts equal what was produced.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from clusterlib import FULLNAME, Cluster, Progress, python_job
from kube_portforward import PortForward
from prometheus_client.parser import text_string_to_metric_families
from tests.support.feeds import SwarmCollector
from tests.support.waiting import wait_until

from emostream.client import EmostreamClient

REACTIONS = 2_000_000
EMOJIS = ("👏", "😂", "❤️", "😍")
MIN_EXECUTORS, MAX_EXECUTORS = 1, 3
EXECUTOR_SELECTOR = "app.kubernetes.io/component=aggregate-executor"
#: Produces REACTIONS reactions of one stream as fast as one process can (far faster than one
#: executor reads them: the point is a backlog), spread over the partitions as ingest's user-id
#: keys spread them, then waits for Kafka to acknowledge every one. Each block of reactions
#: shares one encoded message per emoji, stamped with the block's time.
PRODUCER = """
import os, sys, time
from confluent_kafka import Producer
from emostream.common.events import Reaction

n, stream = int(os.environ["REACTIONS"]), os.environ["STREAM"]
emojis = os.environ["EMOJIS"].split(",")  # one string each: ❤️ is two code points
producer = Producer({"bootstrap.servers": "kafka:9092", "linger.ms": 20, "batch.size": 1000000,
                     "compression.type": "lz4", "queue.buffering.max.messages": 1000000})
keys = [f"u{i}".encode() for i in range(1000)]
errors = []
def delivered(err, _msg):
    if err is not None:
        errors.append(err)
block = 10000
for start in range(0, n, block):
    now = int(time.time() * 1000)
    values = [Reaction(f"{start}-{e}", stream, "u", e, now, now).encode() for e in emojis]
    for i in range(start, min(start + block, n)):
        while True:
            try:
                producer.produce("reactions", values[i % len(values)], keys[i % len(keys)],
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    producer.poll(0)
left = producer.flush(300)
if left or errors:
    sys.exit(f"{left} not acknowledged; errors: {errors[:3]}")
print(f"produced {n}")
"""


@dataclass
class Sample:
    """The driver's view at one moment."""

    at: float
    backlog: float
    read: float
    executors: int


@dataclass
class Watch:
    """What the test saw of the aggregation while the backlog came and went."""

    samples: list[Sample] = field(default_factory=list)
    nodes: set[str] = field(default_factory=set)


def _driver_metrics(url: str) -> dict[str, float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    wanted = {
        "emostream_aggregate_offsets_behind_latest",
        "emostream_aggregate_input_rows",
        "emostream_aggregate_executors",
    }
    return {
        family.name: sum(s.value for s in family.samples if not s.name.endswith("_created"))
        for family in text_string_to_metric_families(text)
        if family.name in wanted
    }


def _running_executors(cluster: Cluster) -> list[dict[str, str]]:
    pods = cluster.get("pods", "-l", EXECUTOR_SELECTOR)["items"]
    return [
        {"name": p["metadata"]["name"], "node": p["spec"].get("nodeName", "")}
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture
def driver_url(cluster: Cluster, release: str) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to the aggregation driver's metrics."""
    with PortForward(cluster.kubectl, cluster.namespace, f"svc/{FULLNAME}-aggregate", 9108) as pf:
        yield pf.url


def _producer_job(cluster: Cluster, stream: str) -> str:
    name = f"backlog-{uuid.uuid4().hex[:6]}"
    env = {"REACTIONS": str(REACTIONS), "STREAM": stream, "EMOJIS": ",".join(EMOJIS)}
    cluster.run("kubectl", "apply", "-f", "-", stdin=python_job(name, PRODUCER, env))
    return name


def _rate(samples: list[Sample], executors: int) -> float | None:
    """Reactions/s the aggregation read while ``executors`` ran and a backlog was there."""
    phase = [s for s in samples if s.executors == executors and s.backlog > 0]
    if len(phase) < 2 or phase[-1].at <= phase[0].at:
        return None
    return (phase[-1].read - phase[0].read) / (phase[-1].at - phase[0].at)


def test_executors_follow_the_backlog_and_every_reaction_counts(
    cluster: Cluster,
    client: EmostreamClient,
    driver_url: str,
    progress: Progress,
) -> None:
    """2,000,000 reactions at once: executors rise to the maximum on two nodes, then fall back."""
    assert len(_running_executors(cluster)) == MIN_EXECUTORS
    stream = f"backlog-{uuid.uuid4().hex[:8]}"
    watch = Watch()
    marks: dict[str, float] = {}

    def look() -> Sample:
        metrics = _driver_metrics(driver_url)
        running = _running_executors(cluster)
        sample = Sample(
            at=time.monotonic(),
            backlog=metrics.get("emostream_aggregate_offsets_behind_latest", 0.0),
            read=metrics.get("emostream_aggregate_input_rows", 0.0),
            executors=len(running),
        )
        watch.samples.append(sample)
        if len(running) == MAX_EXECUTORS:
            watch.nodes |= {p["node"] for p in running}
        for count, name in ((MIN_EXECUTORS + 1, "first added"), (MAX_EXECUTORS, "maximum")):
            if sample.executors >= count and name not in marks:
                marks[name] = progress.elapsed()
        return sample

    with SwarmCollector(client, stream, timeout=120, max_failures=None) as feed:
        start = progress.elapsed()
        job = _producer_job(cluster, stream)
        progress.say(f"job/{job} producing {REACTIONS:,} reactions to stream {stream}")
        wait_until(
            lambda: f"{MAX_EXECUTORS} executors (last seen: {watch.samples[-1:]})",
            lambda: look().executors == MAX_EXECUTORS,
            600,
            interval_s=2,
        )
        progress.seconds("aggregate: backlog -> first added executor", marks["first added"] - start)
        progress.seconds(
            f"aggregate: backlog -> {MAX_EXECUTORS} executors", marks["maximum"] - start
        )
        cluster.run("kubectl", "wait", f"job/{job}", "--for=condition=complete", "--timeout=600s")
        expected = {e: REACTIONS // len(EMOJIS) for e in EMOJIS}
        wait_until(
            lambda: f"exact counts {expected} (feed: {feed.totals()}, last: {watch.samples[-1:]})",
            lambda: look().backlog == 0 and feed.totals() == expected,
            900,
            interval_s=2,
        )
        progress.mark("aggregate: backlog -> drained, every reaction counted", start)
    drained = progress.elapsed()
    wait_until(
        lambda: f"{MIN_EXECUTORS} executor again (last seen: {watch.samples[-1:]})",
        lambda: look().executors == MIN_EXECUTORS,
        600,
        interval_s=2,
    )
    progress.mark(f"aggregate: drained -> back to {MIN_EXECUTORS} executor", drained)
    for executors in (MIN_EXECUTORS, MAX_EXECUTORS):
        rate = _rate(watch.samples, executors)
        shown = "not measured (no backlog phase)" if rate is None else f"{rate:,.0f} reactions/s"
        progress.figure(f"aggregate: drain rate with {executors} executor(s)", shown)
    assert len(watch.nodes) >= 2, f"every executor ran on {watch.nodes}"
