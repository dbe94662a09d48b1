"""What the benchmark watches while reactions flow: Kafka's two topics, the viewers, Spark's log.

- A plain consumer of ``reactions`` notes when each reaction becomes readable, and where it
  sits (partition, offset): the ceiling of any Kafka-fed aggregation, and the key to which
  micro-batch read it.
- A plain consumer of ``swarms`` notes when each swarm becomes readable.
- Viewers, one SSE connection per stream to the fanout, note when each swarm reaches them.
- The aggregation's offset log says, per micro-batch, when it started and up to which offset
  of each partition it read.

Each consumer and the viewers run in a process of their own (``spawn``), so that reading at
100,000 reactions/s does not take the driver's interpreter; they write what they saw to a file
when told to stop.
"""

import multiprocessing as mp
import re
import selectors
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import orjson
from bench.aggregate._measure import fresh_messages
from confluent_kafka import OFFSET_END, Consumer, Message, TopicPartition


def _consumer(bootstrap: str, topic: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-latency-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            # A fetch returns at 64 KiB or after 10 ms: at 100,000 reactions/s a consumer
            # that fetched whatever was there would flood the broker with tiny fetches.
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1 << 16,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in sorted(partitions)])
    consumer.poll(0.5)  # resolves the end offsets before anything is sent
    return consumer


def _reaction_row(msg: Message, seen: float) -> tuple[object, ...]:
    r = orjson.loads(msg.value())
    return r["user_id"], r["ts"], msg.partition(), msg.offset(), seen


def _swarm_row(msg: Message, seen: float) -> tuple[object, ...]:
    s = orjson.loads(msg.value())
    return s["stream_id"], s["id"], s["emitted_at"], seen


def _read(  # noqa: PLR0917 - the watchers' common signature, with what to note per record
    bootstrap: str,
    topic: str,
    row: Callable[[Message, float], tuple[object, ...]],
    ready: Event,
    stop: Event,
    out: str,
) -> None:
    consumer = _consumer(bootstrap, topic)
    rows: list[tuple[object, ...]] = []
    ready.set()
    while not stop.is_set():
        batch = fresh_messages(consumer, 10_000, 0.1)
        seen = time.time() * 1000
        rows.extend(row(msg, seen) for msg in batch if not msg.error())
    consumer.close()
    Path(out).write_bytes(orjson.dumps(rows))


def _frame_ids(buffer: bytes) -> tuple[list[str], bytes]:
    """The ids of the complete SSE frames in ``buffer``, and what is left of it."""
    *frames, rest = buffer.split(b"\n\n")
    ids = [
        line[4:].decode()
        for frame in frames
        for line in frame.split(b"\n")
        if line.startswith(b"id: ")
    ]
    return ids, rest


def _view(  # noqa: PLR0917 - the watchers' common signature, with the fanout's address
    host: str, port: int, streams: Sequence[str], ready: Event, stop: Event, out: str
) -> None:
    sel = selectors.DefaultSelector()
    buffers: dict[str, bytes] = {}
    for stream in streams:
        sock = socket.create_connection((host, port))
        # HTTP/1.0: the feed comes unchunked, so frames are just text separated by blank lines.
        request = f"GET /v1/streams/{stream}/events HTTP/1.0\r\nHost: {host}\r\n\r\n"
        sock.sendall(request.encode())
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, stream)
        buffers[stream] = b""
    rows: list[tuple[str, str, float]] = []
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            data = key.fileobj.recv(1 << 16)
            seen = time.time() * 1000
            if not data:
                raise SystemExit(f"the fanout closed the feed of {key.data}")
            ids, buffers[key.data] = _frame_ids(buffers[key.data] + data)
            rows.extend((key.data, i, seen) for i in ids)
    Path(out).write_bytes(orjson.dumps(rows))


class Watchers:
    """The three watching processes, started together and stopped together."""

    def __init__(
        self,
        bootstrap: str,
        topics: tuple[str, str],
        fanout: tuple[str, int],
        streams: Sequence[str],
        workdir: Path,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self.files = {name: workdir / f"{name}.json" for name in ("reactions", "swarms", "viewers")}
        jobs: list[tuple[Callable[..., None], tuple[Any, ...]]] = [
            (_read, (bootstrap, topics[0], _reaction_row)),
            (_read, (bootstrap, topics[1], _swarm_row)),
            (_view, (*fanout, list(streams))),
        ]
        self._ready = [ctx.Event() for _ in jobs]
        self._procs = [
            ctx.Process(target=fn, args=(*args, ready, self._stop, str(path)))
            for (fn, args), ready, path in zip(jobs, self._ready, self.files.values(), strict=True)
        ]

    def __enter__(self) -> "Watchers":
        for p in self._procs:
            p.start()
        for ready, p in zip(self._ready, self._procs, strict=True):
            if not ready.wait(60):
                raise SystemExit(f"watcher {p.name} did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for p in self._procs:
            p.join(60)

    def read(self, name: str) -> list[Any]:
        """What watcher ``name`` saw (after the block)."""
        return list(orjson.loads(self.files[name].read_bytes()))


def spark_phases(metrics_url: str) -> dict[str, float]:
    """Seconds spent so far in each phase of the aggregation's micro-batches, and the batches."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    phases = {}
    for m in re.finditer(
        r'^emostream_aggregate_batch_phase_seconds_total\{[^}]*phase="(\w+)"[^}]*\} (\S+)$',
        text,
        re.M,
    ):
        phases[m[1]] = float(m[2])
    for m in re.finditer(r"^emostream_aggregate_batches_total\{[^}]*\} (\S+)$", text, re.M):
        phases["batches"] = float(m[1])
    return phases


class OffsetLog:
    """Polls the aggregation's offset log, so batches are known even after Spark deletes them.

    Each file ``offsets/<batch>`` holds the batch's start (``batchTimestampMs``) and, per
    partition of the source topic, the offset it reads up to (exclusive).
    """

    def __init__(self, checkpoint: Path, topic: str) -> None:
        self.dir = checkpoint / "offsets"
        self.topic = topic
        self.batches: dict[int, tuple[int, dict[int, int]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "OffsetLog":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self._scan()

    def _scan(self) -> None:
        for path in self.dir.glob("[0-9]*"):
            batch = int(path.name)
            if batch in self.batches:
                continue
            try:
                lines = path.read_text().splitlines()  # written whole (a rename), or gone
            except FileNotFoundError:
                continue
            meta, offsets = orjson.loads(lines[1]), orjson.loads(lines[2])
            ends = {int(p): o for p, o in offsets[self.topic].items()}
            self.batches[batch] = (int(meta["batchTimestampMs"]), ends)
