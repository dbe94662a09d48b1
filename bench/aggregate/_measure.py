"""What the benchmark measures outside Spark: the plain-consumer ceiling and swarm arrivals."""

import multiprocessing as mp
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.synchronize import Event
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition

WINDOW_MS = 2000


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    return sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)


def fresh_messages(consumer: Consumer, most: int, timeout_s: float) -> list[Message]:
    """Wait up to ``timeout_s`` for one message, then take what else is already fetched.

    ``consume(n, timeout)`` alone would wait for ``n`` messages or the whole timeout, so a
    message could sit in the client for up to ``timeout_s`` before it is timed.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(most - 1, timeout=0)]


def ceiling(bootstrap: str, topic: str, expected: int) -> tuple[int, float]:
    """Read ``expected`` reactions with one plain consumer, parse and count them per (stream,
    window, emoji) as the job does; returns (events, seconds from first to last)."""
    consumer = _consumer(bootstrap)
    consumer.assign([TopicPartition(topic, p, 0) for p in _partitions(consumer, topic)])
    counts: dict[tuple[str, int, str], int] = defaultdict(int)
    seen = 0
    first = 0.0
    try:
        while seen < expected:
            batch = consumer.consume(10_000, timeout=5)
            if not batch:
                break
            if not first:
                first = time.monotonic()
            for msg in batch:
                if msg.error():
                    continue
                r = orjson.loads(msg.value())
                ts = r["ts"]
                counts[(r["stream_id"], ts - ts % WINDOW_MS, r["emoji"])] += 1
                seen += 1
        return seen, time.monotonic() - first
    finally:
        consumer.close()


@dataclass(frozen=True)
class Arrival:
    """One swarm update as a consumer of ``swarms`` saw it."""

    stream: str
    window_ms: int
    total: int
    received_ms: int
    emitted_ms: int


def _window_ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def _swarm_worker(bootstrap: str, topic: str, ready: Event, stop: Event, out: str) -> None:
    consumer = _consumer(bootstrap)
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in _partitions(consumer, topic)])
    rows: list[tuple[str, int, int, int, int]] = []
    try:
        consumer.poll(0.5)  # resolves the end offsets before the producers start
        ready.set()
        while not stop.is_set():
            for msg in fresh_messages(consumer, 1000, 0.1):
                if msg.error():
                    continue
                received = int(time.time() * 1000)
                s = orjson.loads(msg.value())
                rows.append(
                    (
                        s["stream_id"],
                        _window_ms(s["window_start"]),
                        sum(s["counts"].values()),
                        received,
                        s["emitted_at"],
                    )
                )
    finally:
        consumer.close()
    Path(out).write_bytes(orjson.dumps(rows))


class SwarmWatcher:
    """A separate process reading every new swarm, so the driver's Python stays undisturbed."""

    def __init__(self, bootstrap: str, topic: str, workdir: Path) -> None:
        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._out = workdir / "swarms.json"
        self._proc = ctx.Process(
            target=_swarm_worker, args=(bootstrap, topic, self._ready, self._stop, str(self._out))
        )

    def __enter__(self) -> "SwarmWatcher":
        self._proc.start()
        if not self._ready.wait(60):
            raise SystemExit("the swarm consumer did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._proc.join(30)

    def arrivals(self) -> list[Arrival]:
        """Every swarm seen, in arrival order (call after the block)."""
        return [Arrival(*row) for row in orjson.loads(self._out.read_bytes())]


@dataclass
class Latencies:
    """Per-event latencies (ms) from receipt at ingest to the swarm that first counted it."""

    to_emit: list[int]
    to_consumer: list[int]
    unseen: int


def event_latencies(
    receive_times: dict[tuple[str, int], list[int]], arrivals: list[Arrival], since_ms: int = 0
) -> Latencies:
    """Match events to swarm updates by rank.

    The k-th event of a (stream, window), in receive-time order, is counted by the first update
    of that window whose total reaches k. (Spark reads a micro-batch up to offsets fixed when it
    starts, so an update holds the events received before then; producers' few milliseconds of
    batching blur that order only slightly.) Events received before ``since_ms`` (the warm-up)
    take their rank but no latency.
    """
    updates: dict[tuple[str, int], list[Arrival]] = defaultdict(list)
    for a in arrivals:
        updates[(a.stream, a.window_ms)].append(a)
    to_emit: list[int] = []
    to_consumer: list[int] = []
    unseen = 0
    for key, times in receive_times.items():
        j = 0
        for a in sorted(updates.get(key, ()), key=lambda a: a.received_ms):
            while j < min(a.total, len(times)):
                if times[j] >= since_ms:
                    to_emit.append(a.emitted_ms - times[j])
                    to_consumer.append(a.received_ms - times[j])
                j += 1
        unseen += len(times) - j
    return Latencies(sorted(to_emit), sorted(to_consumer), unseen)


def percentile(sorted_values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return float(sorted_values[index])
