"""Each reaction's path through the stack, from what the watchers saw (pure; unit-tested).

A reaction is followed exactly, with no guessing by rank:

1. the senders know when its batch was posted and answered, and its ``(user_id, ts)``;
2. the plain consumer of ``reactions`` saw that ``(user_id, ts)`` at a partition and offset;
3. the micro-batch that counted it is the first whose end offset on that partition lies
   beyond it (Spark's offset log), which also gives the batch's start;
4. its swarm is that micro-batch's update of the reaction's (stream, window): swarm ids are
   ``<epoch>.<batch>-<window start>``; the plain consumer of ``swarms`` and the viewer of the
   stream each saw that id at some time.

Every boundary is a wall-clock time on this one machine, so a stage is the difference of two.
"""

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.latency._senders import Sent

#: The boundaries a reaction passes, in order; a stage is named after its end.
BOUNDARIES = (
    "sent",
    "answered",
    "in Kafka",
    "batch started",
    "swarm emitted",
    "swarm in Kafka",
    "at the viewer",
)
STAGES = {
    "answered": "ingest: POST answered",
    "in Kafka": "Kafka: reaction readable",
    "batch started": "waiting for a micro-batch",
    "swarm emitted": "micro-batch (read, aggregate, collect)",
    "swarm in Kafka": "swarm produced, readable",
    "at the viewer": "fanout: read, hub, socket write",
}


@dataclass
class Paths:
    """Per boundary, each followed reaction's time since it was sent (ms), and what was lost."""

    since_send: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    followed: int = 0
    refused: int = 0
    lost: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def swarm_key(stream: str, swarm_id: str) -> tuple[str, int, int]:
    """(stream, micro-batch, window start) of a swarm id ``<epoch>.<batch>-<window start>``."""
    batch, window = swarm_id.split(".", 1)[1].split("-")
    return stream, int(batch), int(window)


class BatchIndex:
    """Which micro-batch read a given offset, from the offset log's per-batch end offsets."""

    def __init__(self, batches: Mapping[int, tuple[int, Mapping[int, int]]]) -> None:
        self.start = {n: start for n, (start, _) in batches.items()}
        self._ends: dict[int, tuple[list[int], list[int]]] = {}
        for n in sorted(batches):
            for partition, end in batches[n][1].items():
                ends, ids = self._ends.setdefault(partition, ([], []))
                ends.append(end)
                ids.append(n)

    def batch_of(self, partition: int, offset: int) -> int | None:
        """The first micro-batch whose range on ``partition`` ends beyond ``offset``."""
        ends, ids = self._ends.get(partition, ([], []))
        i = bisect.bisect_right(ends, offset)
        return ids[i] if i < len(ids) else None


def follow(
    sent: Iterable[Sent],
    reactions: Iterable[Sequence[object]],
    batches: Mapping[int, tuple[int, Mapping[int, int]]],
    swarms: Iterable[Sequence[object]],
    viewers: Iterable[Sequence[object]],
    *,
    window_ms: int,
    since_ms: float,
) -> Paths:
    """Follow every reaction sent at or after ``since_ms`` as far as it got."""
    in_kafka = {(str(u), int(ts)): (int(p), int(o), float(t)) for u, ts, p, o, t in reactions}
    index = BatchIndex(batches)
    swarm_seen = {swarm_key(str(s), str(i)): (float(e), float(t)) for s, i, e, t in swarms}
    viewer_seen: dict[tuple[str, int, int], float] = {}
    for s, i, t in viewers:
        viewer_seen.setdefault(swarm_key(str(s), str(i)), float(t))
    paths = Paths()
    for b in sent:
        if b.sent_ms < since_ms:
            continue
        if not 200 <= b.status < 300:
            paths.refused += b.n
            continue
        window = b.ts - b.ts % window_ms
        for user in b.users():
            paths.followed += 1
            times = _times(b, user, window, in_kafka, index, swarm_seen, viewer_seen)
            if len(times) < len(BOUNDARIES):
                paths.lost[BOUNDARIES[len(times)]] += 1
            for k in range(1, len(times)):
                name = BOUNDARIES[k]
                paths.since_send[name].append(times[k] - times[0])
                paths.stages[name].append(times[k] - times[k - 1])
    return paths


def _times(  # noqa: PLR0917 - a helper of follow's loop
    b: Sent,
    user: str,
    window: int,
    in_kafka: Mapping[tuple[str, int], tuple[int, int, float]],
    index: BatchIndex,
    swarm_seen: Mapping[tuple[str, int, int], tuple[float, float]],
    viewer_seen: Mapping[tuple[str, int, int], float],
) -> list[float]:
    """The reaction's time at each boundary it reached, in order."""
    times = [b.sent_ms, b.answered_ms]
    record = in_kafka.get((user, b.ts))
    if record is None:
        return times
    partition, offset, readable = record
    times.append(readable)
    batch = index.batch_of(partition, offset)
    if batch is None:
        return times
    times.append(float(index.start[batch]))
    key = (b.stream, batch, window)
    if key not in swarm_seen:
        return times
    times.extend(swarm_seen[key])
    if key in viewer_seen:
        times.append(viewer_seen[key])
    return times
