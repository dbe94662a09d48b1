"""Realistic reactions for the benchmark, written to Kafka by worker processes.

An audience is modelled as many streams whose popularity follows a Zipf law (a few finals draw
most viewers, a long tail of small streams) and the original clients' emoji mix. Workers are
started with the ``spawn`` method and create their Kafka producer themselves: librdkafka's
threads do not survive ``fork()``.
"""

import multiprocessing as mp
import random
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import Producer

WINDOW_MS = 2000
# Relative popularity of the original clients' eight reactions in a typical live event.
EMOJI_WEIGHTS = {"❤️": 30, "😂": 20, "👏": 15, "👍": 12, "😍": 10, "😭": 5, "😡": 4, "👎": 4}
#: Event times trail receive times by up to this much (client clocks and network), so some
#: events arrive out of order; all are well within the watermark.
MAX_EVENT_LAG_MS = 300


@dataclass(frozen=True)
class Workload:
    """Who reacts: ``streams`` streams with Zipf(``skew``) popularity, ``users`` viewers."""

    streams: int
    skew: float = 1.1
    users: int = 1_000_000

    def stream_ids(self) -> list[str]:
        """The stream names, most popular first."""
        return [f"bench-{i:05d}" for i in range(self.streams)]

    def stream_weights(self) -> list[float]:
        """Zipf weights of the streams, in the order of :meth:`stream_ids`."""
        return [1 / (rank**self.skew) for rank in range(1, self.streams + 1)]


def _producer(bootstrap: str) -> Producer:
    # The same settings as ingest's producer: idempotent, every replica acknowledges, lz4.
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 262_144,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def _send(producer: Producer, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
        except BufferError:
            producer.poll(0.05)
        else:
            return


class _Draw:
    """Draws streams, emojis and users in blocks (``random.choices`` is fast per block)."""

    def __init__(self, workload: Workload, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
        self.streams = workload.stream_ids()
        self.stream_cum = _cumulative(workload.stream_weights())
        self.emojis = list(EMOJI_WEIGHTS)
        self.emoji_cum = _cumulative(list(EMOJI_WEIGHTS.values()))
        self.users = workload.users

    def block(self, n: int) -> tuple[list[str], list[str], list[int], list[int]]:
        """``n`` streams, emojis, user numbers and event-time lags."""
        rng = self.rng
        return (
            rng.choices(self.streams, cum_weights=self.stream_cum, k=n),
            rng.choices(self.emojis, cum_weights=self.emoji_cum, k=n),
            [rng.randrange(self.users) for _ in range(n)],
            [rng.randrange(MAX_EVENT_LAG_MS) for _ in range(n)],
        )


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _encode(worker: int, i: int, *, stream: str, user: int, emoji: str, ts: int, rts: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"{worker}-{i}",
            "stream_id": stream,
            "user_id": f"viewer-{user}",
            "emoji": emoji,
            "ts": ts,
            "rts": rts,
        }
    )


def _preload_worker(
    bootstrap: str, topic: str, workload: Workload, *, worker: int, count: int, t0: int, span: int
) -> None:
    producer = _producer(bootstrap)
    draw = _Draw(workload, seed=worker)
    done = 0
    while done < count:
        n = min(10_000, count - done)
        streams, emojis, users, lags = draw.block(n)
        for j in range(n):
            i = done + j
            rts = t0 + (i * span) // count
            value = _encode(
                worker,
                i,
                stream=streams[j],
                user=users[j],
                emoji=emojis[j],
                ts=rts - lags[j],
                rts=rts,
            )
            _send(producer, topic, str(users[j]).encode(), value)
        producer.poll(0)
        done += n
    producer.flush(120)


def preload(bootstrap: str, topic: str, workload: Workload, events: int, workers: int) -> float:
    """Write ``events`` reactions as fast as possible; returns the seconds it took.

    They are stamped as if received at an even rate over the past ``events / 100,000`` seconds:
    a backlog such as a stopped job finds when it comes back.
    """
    span = max(1000, events // 100)  # ms
    t0 = int(time.time() * 1000) - span
    per = [events // workers + (1 if w < events % workers else 0) for w in range(workers)]
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_preload_worker,
            args=(bootstrap, topic, workload),
            kwargs={"worker": w, "count": n, "t0": t0, "span": span},
        )
        for w, n in enumerate(per)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"preload worker failed with exit code {p.exitcode}")
    return time.monotonic() - started


def _paced_worker(
    bootstrap: str,
    topic: str,
    workload: Workload,
    *,
    worker: int,
    rate: float,
    duration_s: float,
    out: str,
) -> None:
    """Produce ``rate`` events/s for ``duration_s``; save each (stream, window)'s receive times."""
    producer = _producer(bootstrap)
    draw = _Draw(workload, seed=1000 + worker)
    received: dict[tuple[str, int], array[int]] = defaultdict(lambda: array("q"))
    start = time.time()
    sent = 0
    while True:
        now = time.time()
        elapsed = now - start
        if elapsed >= duration_s:
            break
        due = int(rate * elapsed) - sent
        if due <= 0:
            time.sleep(0.002)
            continue
        streams, emojis, users, lags = draw.block(due)
        rts = int(now * 1000)
        for j in range(due):
            ts = rts - lags[j]
            value = _encode(
                worker, sent + j, stream=streams[j], user=users[j], emoji=emojis[j], ts=ts, rts=rts
            )
            _send(producer, topic, str(users[j]).encode(), value)
            received[(streams[j], ts - ts % WINDOW_MS)].append(rts)
        producer.poll(0)
        sent += due
    producer.flush(60)
    Path(out).write_bytes(orjson.dumps({f"{s}|{w}": list(v) for (s, w), v in received.items()}))


def paced(
    bootstrap: str,
    topic: str,
    workload: Workload,
    *,
    rate: float,
    duration_s: float,
    workers: int,
    workdir: Path,
) -> tuple[list[mp.process.BaseProcess], list[Path]]:
    """Start workers producing ``rate`` events/s in total; returns them and their output files."""
    ctx = mp.get_context("spawn")
    outs = [workdir / f"paced-{w}.json" for w in range(workers)]
    procs: list[mp.process.BaseProcess] = [
        ctx.Process(
            target=_paced_worker,
            args=(bootstrap, topic, workload),
            kwargs={
                "worker": w,
                "rate": rate / workers,
                "duration_s": duration_s,
                "out": str(outs[w]),
            },
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    return procs, outs


def load_receive_times(outs: list[Path]) -> dict[tuple[str, int], list[int]]:
    """Per (stream, window start): the sorted receive times of the events produced for it."""
    merged: dict[tuple[str, int], list[int]] = defaultdict(list)
    for out in outs:
        for key, values in orjson.loads(out.read_bytes()).items():
            stream, window = key.rsplit("|", 1)
            merged[(stream, int(window))].extend(values)
    for values in merged.values():
        values.sort()
    return merged
