"""Everything on the ``swarms`` topic, read in the background for the whole run.

The topic is the pipeline's durable output, so it is the referee: a window's final counts are
those of its last message (the greatest id), and a scenario's events are counted once each when
the sum over its windows of those final counts equals what ingest accepted. The reader is a
plain consumer with no group (nothing committed); librdkafka reconnects by itself when the
broker is killed and comes back.
"""

import itertools
import logging
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

# A broker that is down on purpose makes librdkafka report refused connections; expected.
_quiet = logging.getLogger(f"{__name__}.consumer")
_quiet.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class Seen:
    """One swarm message and the local time it was read."""

    at: float
    swarm: dict[str, Any]


@dataclass
class SwarmLog:
    """A background reader of the whole ``swarms`` topic."""

    bootstrap: str
    topic: str
    _seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "SwarmLog":
        """Start reading from the beginning of every partition."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"fault-tests-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "logger": _quiet,
            }
        )
        partitions = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._thread = threading.Thread(target=self._run, args=(consumer,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                try:
                    msg = consumer.poll(0.5)
                except KafkaException:
                    continue
                value = None if msg is None or msg.error() is not None else msg.value()
                if value is None:
                    continue
                swarm = orjson.loads(value)
                with self._lock:
                    self._seen.append(Seen(time.time(), swarm))
        finally:
            consumer.close()

    def of(self, streams: list[str]) -> list[Seen]:
        """Every message of ``streams`` read so far, in the order read."""
        wanted = set(streams)
        with self._lock:
            return [s for s in self._seen if s.swarm["stream_id"] in wanted]

    def finals(self, streams: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Per (stream, window start), the window's last message (its greatest id)."""
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for seen in self.of(streams):
            key = (seen.swarm["stream_id"], seen.swarm["window_start"])
            if key not in last or seen.swarm["id"] > last[key]["id"]:
                last[key] = seen.swarm
        return last

    def counted(self, streams: list[str]) -> Counter[tuple[str, str]]:
        """Per (stream, emoji), the sum over windows of each window's final count."""
        totals: Counter[tuple[str, str]] = Counter()
        for (stream, _), swarm in self.finals(streams).items():
            for emoji, n in swarm["counts"].items():
                totals[stream, emoji] += n
        return totals

    def inconsistencies(self, streams: list[str]) -> list[str]:
        """Messages that contradict each other: one stream's id with two different counts, or
        a window whose running count went down from one id to the next."""
        by_id: dict[tuple[str, str], dict[str, int]] = {}
        problems: list[str] = []
        windows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for seen in self.of(streams):
            swarm = seen.swarm
            # An id is unique within its stream only: it names a micro-batch and a window.
            earlier = by_id.setdefault((swarm["stream_id"], swarm["id"]), swarm["counts"])
            if earlier != swarm["counts"]:
                problems.append(
                    f"{swarm['stream_id']} id {swarm['id']}: {earlier} then {swarm['counts']}"
                )
            windows[swarm["stream_id"], swarm["window_start"]].append(swarm)
        for key, swarms in windows.items():
            ordered = sorted({s["id"]: s for s in swarms}.values(), key=lambda s: s["id"])
            for before, after in itertools.pairwise(ordered):
                if any(after["counts"].get(e, 0) < n for e, n in before["counts"].items()):
                    problems.append(
                        f"{key}: counts went down from {before['counts']} ({before['id']}) "
                        f"to {after['counts']} ({after['id']})"
                    )
        return problems

    def first_counting_after(self, streams: list[str], t: float) -> float | None:
        """When the first message counting an event received after ``t`` was read, if any."""
        t_ms = t * 1000
        times = [s.at for s in self.of(streams) if s.swarm.get("last_receive_ms", 0) > t_ms]
        return min(times) if times else None
