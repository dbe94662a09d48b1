"""The aggregation's executors follow the reactions backlog on a real cluster; nothing is lost.

A Job in the namespace produces a burst of reactions straight into Kafka, far faster than one
executor reads them. The driver's autoscaler (values.yaml: one to three executors, a short
stabilisation) adds executors up to the maximum, on more than one node, the backlog drains, the
executors return to the minimum, and the fanout feed's counts equal what was produced.
"""

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
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
DRIVER = f"{FULLNAME}-aggregate-0"
#: The unit of /proc/stat's times (USER_HZ, 100 on every Linux Kubernetes runs on).
USER_HZ = 100
#: The driver's series the test sums over their labels.
SUMMED = (
    "emostream_aggregate_offsets_behind_latest",
    "emostream_aggregate_input_rows",
    "emostream_aggregate_executors",
)
#: Produces REACTIONS reactions of one stream as fast as one process can (far faster than one
#: executor reads them: the point is a backlog), spread over the partitions as ingest's user-id
#: keys spread them, then waits for Kafka to acknowledge every one. As the admin (KAFKA: the
#: harness's client settings, clusterlib.python_job). Each block of reactions
#: shares one encoded message per emoji, stamped with the block's time.
PRODUCER = """
import os, sys, time
from confluent_kafka import Producer
from emostream.common.events import Reaction

n, stream = int(os.environ["REACTIONS"]), os.environ["STREAM"]
emojis = os.environ["EMOJIS"].split(",")  # one string each: ❤️ is two code points
producer = Producer({**KAFKA, "linger.ms": 20, "batch.size": 1000000, "compression.type": "lz4",
                     "queue.buffering.max.messages": 1000000})
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
    """The driver's view at one moment, and the CPU its pods had used by then."""

    at: float
    backlog: float
    read: float
    executors: int
    #: Cumulative seconds of each micro-batch phase and state-store operation.
    phases: dict[str, float]
    #: Per aggregation pod, cumulative CPU seconds used and held back by its limit, read when
    #: a micro-batch has just ended.
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: CPU seconds the driver's node had been busy, and had had in all, at the same moment.
    node: tuple[float, float] = (0.0, 0.0)


@dataclass
class Watch:
    """What the test saw of the aggregation while the backlog came and went."""

    samples: list[Sample] = field(default_factory=list)
    nodes: set[str] = field(default_factory=set)


def _driver_metrics(url: str) -> tuple[dict[str, float], dict[str, float]]:
    """The driver's backlog, records read and executors; and its batch phases and state-store
    operations (cumulative seconds), by name."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    phases: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if family.name in SUMMED:
                totals[family.name] = totals.get(family.name, 0.0) + sample.value
            elif family.name == "emostream_aggregate_batch_phase_seconds":
                phases[sample.labels["phase"]] = sample.value
            elif family.name == "emostream_aggregate_state_store_seconds":
                phases[f"state store {sample.labels['operation']}"] = sample.value
    return totals, phases


#: A container's CPU time and the time its CPU limit held it back, in cgroup v2's cpu.stat
#: terms (usage_usec, throttled_usec); on cgroup v1 from cpuacct.usage and cpu.stat (ns).
_CPU_STAT = """
if [ -f /sys/fs/cgroup/cpu.stat ]; then cat /sys/fs/cgroup/cpu.stat; exit; fi
echo usage_usec $(( $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) / 1000 ))
while read -r key value; do
  if [ "$key" = throttled_time ]; then echo throttled_usec $(( value / 1000 )); fi
done < /sys/fs/cgroup/cpu/cpu.stat
"""


def _node_seconds(cluster: Cluster) -> tuple[float, float]:
    """The CPU seconds the driver's node has been busy, and has had in all, from its
    /proc/stat (not namespaced: on a kind cluster, the whole machine's)."""
    out = cluster.run("kubectl", "exec", DRIVER, "--", "head", "-n", "1", "/proc/stat")
    ticks = [int(t) for t in out.split()[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / USER_HZ, sum(ticks) / USER_HZ


def _cpu_seconds(cluster: Cluster, pods: list[str]) -> dict[str, tuple[float, float]]:
    """Per pod, the CPU seconds its container has used and the seconds its CPU limit held it
    back."""
    seconds: dict[str, tuple[float, float]] = {}
    for pod in pods:
        out = cluster.run("kubectl", "exec", pod, "--", "sh", "-c", _CPU_STAT)
        stat = dict(line.split() for line in out.splitlines() if line.strip())
        seconds[pod] = (int(stat["usage_usec"]) / 1e6, int(stat.get("throttled_usec", 0)) / 1e6)
    return seconds


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


@dataclass
class Drain:
    """How a backlog drained while one number of executors ran, between two micro-batch ends."""

    batches: int
    rate: float
    #: Seconds per second of drain in each batch phase and state-store operation.
    phases: dict[str, float]
    #: Cores each aggregation pod used, on average.
    cores: dict[str, float]
    #: Seconds per second each pod was held back by its CPU limit.
    throttled: dict[str, float]
    #: Cores the driver's node was busy, and has.
    node_busy: float
    node_cores: float


def _drain(samples: list[Sample], executors: int) -> Drain | None:
    """The drain while ``executors`` ran: from the end of its first micro-batch (which paid for
    the change, or the start) to the end of its last, so only whole batches count."""
    phase = [s for s in samples if s.executors == executors and s.backlog > 0]
    ends = [s for before, s in itertools.pairwise(phase) if s.read > before.read and s.cpu]
    if len(ends) < 2:
        return None
    first, last = ends[0], ends[-1]
    seconds = last.at - first.at
    return Drain(
        batches=len(ends) - 1,
        rate=(last.read - first.read) / seconds,
        phases={k: (v - first.phases.get(k, 0.0)) / seconds for k, v in last.phases.items()},
        cores={p: (v[0] - first.cpu.get(p, v)[0]) / seconds for p, v in last.cpu.items()},
        throttled={p: (v[1] - first.cpu.get(p, v)[1]) / seconds for p, v in last.cpu.items()},
        node_busy=(last.node[0] - first.node[0]) / seconds,
        node_cores=(last.node[1] - first.node[1]) / seconds,
    )


def _report(progress: Progress, executors: int, drain: Drain | None) -> None:
    name = f"aggregate: drain rate with {executors} executor(s)"
    if drain is None:
        progress.figure(name, "not measured (fewer than two micro-batches)")
        return
    progress.figure(name, f"{drain.rate:,.0f} reactions/s ({drain.batches} batches)")
    busiest = sorted(drain.phases.items(), key=lambda kv: -kv[1])
    progress.say("  per second of drain: " + ", ".join(f"{k} {v:.2f} s" for k, v in busiest))
    pods = [p for p in drain.cores if p != DRIVER]
    progress.say(
        f"  cores used: driver {drain.cores.get(DRIVER, 0.0):.2f}, executors "
        f"{sum(drain.cores[p] for p in pods):.2f}; executors held back by their CPU limit "
        f"{sum(drain.throttled[p] for p in pods):.2f} s per second; the driver's node busy "
        f"{drain.node_busy:.2f} of its {drain.node_cores:.0f} cores"
    )


def test_executors_follow_the_backlog_and_every_reaction_counts(
    cluster: Cluster,
    client: EmostreamClient,
    live_stream: Callable[[str], str],
    driver_url: str,
    progress: Progress,
) -> None:
    """2,000,000 reactions at once: executors rise to the maximum on two nodes, then fall back."""
    assert len(_running_executors(cluster)) == MIN_EXECUTORS
    # Opened for fanout's feed: the Job writes to Kafka directly, past ingest's registry.
    stream = live_stream("backlog")
    watch = Watch()
    marks: dict[str, float] = {}

    def look() -> Sample:
        metrics, phases = _driver_metrics(driver_url)
        running = _running_executors(cluster)
        sample = Sample(
            at=time.monotonic(),
            backlog=metrics.get("emostream_aggregate_offsets_behind_latest", 0.0),
            read=metrics.get("emostream_aggregate_input_rows", 0.0),
            executors=len(running),
            phases=phases,
        )
        if watch.samples and sample.read > watch.samples[-1].read:
            sample.cpu = _cpu_seconds(cluster, [DRIVER, *(p["name"] for p in running)])
            sample.node = _node_seconds(cluster)
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
            interval_s=1,
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
            interval_s=1,
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
        _report(progress, executors, _drain(watch.samples, executors))
    assert len(watch.nodes) >= 2, f"every executor ran on {watch.nodes}"
