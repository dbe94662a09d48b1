"""The swarm source: every stream's swarm, ``rate`` times a second, as the aggregation emits them.

The aggregation writes one update per live stream each micro-batch, all at once, so the
publisher does the same: every ``1 / rate`` seconds one burst with a swarm for each stream,
stamped ``emitted_at`` (epoch ms) when the burst is built. That stamp is the start of the
delivery latency the viewers measure.

Two sinks: Kafka's ``swarms`` topic keyed by stream id (read by the fanout and the baseline),
and Centrifugo's HTTP ``batch`` API (one request per burst). Each runs in its own ``spawn``ed
process, which creates its Kafka producer itself (librdkafka's threads do not survive a fork).
A sink that takes longer than a period (Centrifugo's API answers once it has handed the burst
to its subscribers) delays the next burst rather than doubling it up, so the publisher reports
the stamp of every burst it sent, and a step expects only the swarms actually published.
"""

import http.client
import multiprocessing as mp
import queue
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import orjson
from confluent_kafka import Producer
from tests.support.swarms import WINDOW_MS, swarm_message

from emostream.common.events import now_ms

_EMOJIS = ("❤️", "😂", "👏", "👍", "😍", "😭", "😡", "👎")


def stream_ids(streams: int) -> list[str]:
    """The benchmark's stream names."""
    return [f"bench-{i:05d}" for i in range(streams)]


def _swarms(streams: list[str], batch: int, epoch_ms: int, rng: random.Random) -> list[Any]:
    now = now_ms()
    start = now - now % WINDOW_MS
    return [
        swarm_message(
            stream,
            batch=batch,
            window_start_ms=start,
            counts={e: rng.randrange(1, 5000) for e in rng.sample(_EMOJIS, 3)},
            sentiment=0.5,
            emitted_at=now,
            epoch_ms=epoch_ms,
        )
        for stream in streams
    ]


def _loop(
    streams: int, rate: float, stop: Event, sent: "Queue[int]", send: Callable[[list[Any]], None]
) -> None:
    # The driver stops this process (through ``stop``); Ctrl-C is the driver's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    names = stream_ids(streams)
    rng = random.Random(7)  # noqa: S311 - a workload, not a secret
    epoch = now_ms()
    period = 1.0 / rate
    next_at = time.monotonic()
    batch = 0
    while not stop.is_set():
        swarms = _swarms(names, batch, epoch, rng)
        send(swarms)
        sent.put(swarms[0]["emitted_at"])
        batch += 1
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            next_at = time.monotonic()  # fell behind: no catch-up burst


def _kafka_worker(  # noqa: PLR0917 - a process target takes its arguments by position
    bootstrap: str, topic: str, streams: int, rate: float, stop: Event, sent: "Queue[int]"
) -> None:
    # The aggregation sink's producer settings, except linger.ms 0: a burst goes out at once.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "compression.type": "lz4"}
    )

    def send(swarms: list[Any]) -> None:
        for s in swarms:
            producer.produce(topic, key=s["stream_id"].encode(), value=orjson.dumps(s))
        producer.poll(0)

    try:
        _loop(streams, rate, stop, sent, send)
    finally:
        producer.flush(10)


def _centrifugo_worker(  # noqa: PLR0917 - see _kafka_worker
    api: tuple[str, int], key: str, streams: int, rate: float, stop: Event, sent: "Queue[int]"
) -> None:
    conn = http.client.HTTPConnection(*api, timeout=10)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def send(swarms: list[Any]) -> None:
        commands = [{"publish": {"channel": s["stream_id"], "data": s}} for s in swarms]
        conn.request("POST", "/api/batch", orjson.dumps({"commands": commands}), headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b'"error"' in body:
            raise SystemExit(f"Centrifugo refused a publish: {resp.status} {body[:300]!r}")

    try:
        _loop(streams, rate, stop, sent, send)
    finally:
        conn.close()


class Publisher:
    """A publishing process for the length of a ``with`` block."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._sent: Queue[int] = ctx.Queue()
        self._stamps: list[int] = []
        self._proc = ctx.Process(target=target, args=(*args, self._stop, self._sent), daemon=True)

    @classmethod
    def kafka(cls, bootstrap: str, topic: str, streams: int, rate: float) -> "Publisher":
        """Swarms to Kafka's ``topic``, keyed by stream id."""
        return cls(_kafka_worker, bootstrap, topic, streams, rate)

    @classmethod
    def centrifugo(cls, api: tuple[str, int], key: str, streams: int, rate: float) -> "Publisher":
        """Swarms to Centrifugo's HTTP API, one channel per stream."""
        return cls(_centrifugo_worker, api, key, streams, rate)

    def __enter__(self) -> "Publisher":
        self._proc.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._proc.join(15)
        self._drain()
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()

    def _drain(self) -> None:
        while True:
            try:
                self._stamps.append(self._sent.get_nowait())
            except queue.Empty:
                return

    def bursts(self, since_ms: int, until_ms: int) -> int:
        """How many bursts were stamped within [since_ms, until_ms)."""
        self._drain()
        return sum(1 for t in self._stamps if since_ms <= t < until_ms)

    def alive(self) -> bool:
        """Whether the process still publishes (a failed publish ends it)."""
        return bool(self._proc.is_alive())
