"""A stream's recent swarms, in id order, for viewers that reconnect with Last-Event-ID.

Ids are ordered per stream and one stream's swarms arrive from one Kafka partition, so they come
in order; the only repeats are a replayed micro-batch, which carries the ids of the latest batch
again. Keeping the greatest id ever accepted (even after the buffer has emptied) turns
deduplication into one string comparison.

Each buffer also keeps the bytes its swarms take (:func:`swarm_bytes`), so the hub can bound a
worker's replay memory as a whole.
"""

import enum
import sys
from bisect import bisect_right
from collections import deque

from emostream.fanout._swarm import Swarm, batch_of

#: What a buffered swarm takes besides its text, measured with tracemalloc on CPython 3.11 for
#: swarms as the aggregation writes them: the Swarm object, its id and stream id strings, its
#: integers, its empty render cache and its slot in the deque.
SWARM_OVERHEAD_BYTES = 300


def swarm_bytes(swarm: Swarm) -> int:
    """The memory ``swarm`` takes in a replay buffer, as counted against the worker's bound.

    Its text as held in memory (``sys.getsizeof``, not its UTF-8 length: one emoji makes
    CPython store the whole string at four bytes a character) plus :data:`SWARM_OVERHEAD_BYTES`.
    Not counted: the encodings :meth:`Swarm.render` caches for the newest swarm of a stream
    with viewers (the hub drops them once a newer one arrives), and each stream's own
    bookkeeping (about 1.3 KB, bounded by the number of streams instead).
    """
    return sys.getsizeof(swarm.text) + SWARM_OVERHEAD_BYTES


class Verdict(enum.Enum):
    """What :meth:`ReplayBuffer.add` did with a swarm."""

    ADDED = "added"
    #: Its id was already seen: a replayed micro-batch.
    DUPLICATE = "duplicate"
    #: Its id is older than the latest micro-batch: the aggregation restarted from scratch or
    #: the topic was rewritten. Dropped (viewers' ids only move forward) but worth a warning.
    STALE = "stale"


class ReplayBuffer:
    """Swarms of one stream no older than ``window_ms``, at most ``max_items`` of them."""

    def __init__(self, window_ms: int, max_items: int) -> None:
        self.window_ms = window_ms
        self.max_items = max_items
        self._items: deque[Swarm] = deque()
        self._last_id: str | None = None
        self._nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """The :func:`swarm_bytes` of every buffered swarm, summed."""
        return self._nbytes

    @property
    def last_id(self) -> str | None:
        """The greatest id ever accepted, whether or not it is still buffered."""
        return self._last_id

    @property
    def latest(self) -> Swarm | None:
        """The newest buffered swarm: the snapshot a new viewer starts from."""
        return self._items[-1] if self._items else None

    def add(self, swarm: Swarm) -> Verdict:
        """Append ``swarm`` if its id is greater than every id seen before.

        A full buffer drops its oldest swarm to make room.
        """
        last = self._last_id
        if last is not None and swarm.id <= last:
            if batch_of(swarm.id) < batch_of(last):
                return Verdict.STALE
            return Verdict.DUPLICATE
        if len(self._items) >= self.max_items:
            self.trim()
        self._items.append(swarm)
        self._nbytes += swarm_bytes(swarm)
        self._last_id = swarm.id
        return Verdict.ADDED

    def after(self, last_event_id: str) -> list[Swarm]:
        """Every buffered swarm with an id greater than ``last_event_id``, in order."""
        # The deque is sorted by id, so a binary search finds the first one to send.
        ids = [s.id for s in self._items]
        start = bisect_right(ids, last_event_id)
        return list(self._items)[start:]

    def trim(self) -> int:
        """Drop the oldest buffered swarm, if any; returns the bytes freed.

        The greatest id seen is kept, so deduplication is unaffected.
        """
        if not self._items:
            return 0
        freed = swarm_bytes(self._items.popleft())
        self._nbytes -= freed
        return freed

    def expire(self, now_ms: int) -> int:
        """Drop swarms emitted more than the window before ``now_ms``; returns how many."""
        horizon = now_ms - self.window_ms
        dropped = 0
        while self._items and self._items[0].time_ms < horizon:
            self.trim()
            dropped += 1
        return dropped
