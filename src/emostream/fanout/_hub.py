"""The per-worker hub: one replay buffer per stream, and the viewers subscribed to it.

The upstream consumer calls :meth:`Hub.publish` once per swarm; the hub appends it to the
stream's replay buffer and offers it to that stream's subscribers without ever blocking: each
subscription has a bounded queue, and one that is full is closed (its viewer reconnects and
resumes from the replay buffer), so a slow viewer costs only itself.

Replay memory is bounded per worker: at most ``replay_max_streams`` streams and
``replay_max_bytes`` of buffered swarms (counted by :func:`~emostream.fanout._buffer.swarm_bytes`).
Past either bound, on a publish or a subscribe, the hub first evicts whole streams that have no
viewers here, least recently published first (a stream whose last viewer left counts as
published at that moment, so a viewer dropped for being slow can still resume); only when every
buffered stream has viewers does it trim the oldest swarms of the largest buffers. Streams with
viewers are never evicted, so when more streams than ``replay_max_streams`` have viewers here
the worker keeps them all (their number is bounded by ``max_subscribers``). Nothing scans the
streams on a publish: the viewer-less ones are kept in publish order, so evicting one costs
O(1), and the watched ones in a heap by size, so a trim costs O(log n) amortised.

What an eviction costs viewers: a viewer resuming with Last-Event-ID onto this worker gets what
is left, nothing of an evicted stream (as for a stream this worker never saw) and the newer part
of a trimmed one. An evicted stream also forgets its greatest id, so a replayed micro-batch of it
arriving later is buffered again instead of being dropped as a duplicate (and an older one is not
recognised as stale). No viewer gets a swarm twice for that: the stream had no viewers when it
was evicted, and every subscription skips ids not greater than the last one it handed out or
resumed from, so each viewer still gets each id at most once and in order; a new viewer's first
frame may just be a swarm that newer ones follow at once. Trimming keeps a stream's greatest id.

Everything here is plain Python guarded by one lock, so the same code runs under gunicorn's
gevent worker (where ``threading`` is monkey-patched and waits yield to other greenlets) and
in ordinary threads in tests.
"""

import heapq
import logging
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from emostream.common.errors import BackpressureError, EmostreamError
from emostream.common.events import now_ms
from emostream.fanout._buffer import ReplayBuffer, Verdict
from emostream.fanout._swarm import Swarm

log = logging.getLogger(__name__)

TRANSPORTS = ("sse", "ws")
#: Which bound made the hub drop replay memory (values of the ``reason`` label).
EVICTION_REASONS = ("streams", "bytes")
#: One warning per this many evictions (and the first): a flood evicts thousands a second.
_WARN_EVERY = 10_000


class CapacityError(BackpressureError):
    """The worker serves as many connections as it may, or is shutting down."""


class SubscriptionClosedError(EmostreamError):
    """The subscription ended: ``reason`` is ``overflow``, ``drain``, ``shutdown`` or ``closed``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"subscription closed: {reason}")
        self.reason = reason


class Sink(Protocol):
    """Where a subscription's live swarms go when no greenlet of its connection waits for them:
    written at once by the publisher (:class:`~emostream.fanout._push.SocketFeed`)."""

    def offer(self, swarm: Swarm) -> str | None:
        """Write or hold ``swarm`` without blocking; the reason the feed must end instead."""

    def end(self, reason: str) -> None:
        """The subscription ended for ``reason``: close the connection."""


class Subscription:
    """One connection's feed of one stream: a backlog taken at subscribe time, then live swarms.

    Only the hub puts swarms in (from the consumer). The connection takes them out with
    :meth:`take`, or, with a ``sink``, the hub hands each one to the sink as it comes. Ids only
    move forward: anything not greater than the last id handed out is skipped, which makes a
    snapshot read from Redis and the live feed safe to combine.
    """

    def __init__(
        self,
        hub: "Hub",
        stream_id: str,
        *,
        transport: str,
        capacity: int,
        backlog: list[Swarm],
        last_id: str | None,
        sink: Sink | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.transport = transport
        self.capacity = capacity
        self._hub = hub
        self._sink = sink
        self._backlog = backlog
        self._queue: deque[Swarm] = deque()
        self._wake = threading.Event()
        self._last_id = backlog[-1].id if backlog else last_id
        self.closed_reason: str | None = None

    @property
    def last_id(self) -> str | None:
        """The id of the last swarm handed to the connection (or the one it resumed from)."""
        return self._last_id

    def take_backlog(self) -> list[Swarm]:
        """The swarms owed from before the subscription began (replay or snapshot), once."""
        backlog, self._backlog = self._backlog, []
        return backlog

    def take(self, timeout: float | None) -> list[Swarm]:
        """Every live swarm queued, in order, waiting up to ``timeout`` seconds for the first.

        Empty after ``timeout`` without one. Taking the whole queue at once lets a connection
        that fell behind catch up with one write instead of one per swarm. Raises
        :class:`SubscriptionClosedError` once the hub has closed the subscription, even if
        swarms are still queued: a dropped viewer resumes from the replay buffer instead.
        """
        while True:
            if self.closed_reason is not None:
                raise SubscriptionClosedError(self.closed_reason)
            taken = []
            while self._queue:
                swarm = self._queue.popleft()
                if self._newer(swarm):
                    self._last_id = swarm.id
                    taken.append(swarm)
            if taken:
                return taken
            # Clear, then look again: a swarm offered in between sets the event after the
            # clear, so the wait below returns at once instead of missing it.
            self._wake.clear()
            if self._queue or self.closed_reason is not None:
                continue
            if not self._wake.wait(timeout):
                return []

    def close(self) -> None:
        """End the subscription from the connection's side (idempotent)."""
        self._hub.unsubscribe(self)

    def _newer(self, swarm: Swarm) -> bool:
        return self._last_id is None or swarm.id > self._last_id

    # -- called by the hub, under its lock ---------------------------------------------------

    def _offer(self, swarm: Swarm) -> str | None:
        """Take ``swarm``; the reason the subscription must end instead, if it must."""
        sink = self._sink
        if sink is not None:
            if not self._newer(swarm):
                return None
            self._last_id = swarm.id
            return sink.offer(swarm)
        if len(self._queue) >= self.capacity:
            return "overflow"
        self._queue.append(swarm)
        self._wake.set()
        return None

    def _end(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._queue.clear()
        self._wake.set()
        if self._sink is not None:
            self._sink.end(self.closed_reason)


@dataclass
class _Stream:
    buffer: ReplayBuffer
    subscribers: set[Subscription] = field(default_factory=set)


@dataclass
class HubStats:
    """Running totals, read by the metrics collector at scrape time."""

    published: int = 0
    duplicates: int = 0
    stale: int = 0
    slow_disconnects: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    #: Subscriptions ended, by (transport, reason): overflow, drain, shutdown or closed.
    ended: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: Replay memory dropped to stay within a bound, by the bound (``streams`` or ``bytes``):
    #: whole viewer-less streams evicted, plus single swarms trimmed from watched streams.
    evictions: Counter[str] = field(default_factory=Counter)
    #: Streams whose buffers :meth:`Hub.forget` dropped.
    forgotten: int = 0


class Hub:
    """Replay buffers of the streams seen within the window, within bounds, and their viewers.

    ``replay_max_streams`` and ``replay_max_bytes`` bound the worker's replay memory (see the
    module's docstring); None leaves that bound off.
    """

    def __init__(
        self,
        *,
        replay_window_s: float,
        replay_max_per_stream: int,
        queue_size: int,
        max_subscribers: int,
        replay_max_streams: int | None = None,
        replay_max_bytes: int | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._window_ms = int(replay_window_s * 1000)
        self._max_per_stream = replay_max_per_stream
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._limits = {"streams": replay_max_streams, "bytes": replay_max_bytes}
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        #: Every stream is in exactly one of these two. Those without viewers, least recently
        #: published first: the eviction order.
        self._idle: OrderedDict[str, None] = OrderedDict()
        #: Those with viewers.
        self._watched: set[str] = set()
        #: A lazy max-heap of the watched streams by buffered bytes, (-bytes, stream id): each
        #: one with swarms has an entry at least its size (a stream's entry is pushed whenever
        #: it grows; one that shrank since is put back at its size when popped).
        self._sizes: list[tuple[int, str]] = []
        self._bytes = 0
        self._connections: Counter[str] = Counter()
        self._closing = False
        self.stats = HubStats()

    # -- the consumer's side -----------------------------------------------------------------

    def publish(self, swarm: Swarm) -> Verdict:
        """Buffer ``swarm`` and offer it to its stream's subscribers, dropping any that are full.

        Then, past a bound, evict or trim other buffers (see the module's docstring).
        """
        with self._lock:
            stream = self._stream(swarm.stream_id)
            before = stream.buffer.nbytes
            superseded = stream.buffer.latest
            verdict = stream.buffer.add(swarm)
            if verdict is Verdict.DUPLICATE:
                self.stats.duplicates += 1
                return verdict
            if verdict is Verdict.STALE:
                self.stats.stale += 1
                if self.stats.stale == 1 or self.stats.stale % 1000 == 0:
                    log.warning(
                        "dropping swarms older than the stream's latest micro-batch; did the "
                        "aggregation restart without its checkpoint?",
                        extra={
                            "stream_id": swarm.stream_id,
                            "swarm_id": swarm.id,
                            "last_id": stream.buffer.last_id,
                            "stale_total": self.stats.stale,
                        },
                    )
                return verdict
            self.stats.published += 1
            self._bytes += stream.buffer.nbytes - before
            if stream.subscribers:
                self._push_size(swarm.stream_id, stream)
            else:
                self._idle.move_to_end(swarm.stream_id)
            ended = [
                (sub, reason)
                for sub in stream.subscribers
                if (reason := sub._offer(swarm)) is not None
            ]
            slow = [sub for sub, reason in ended if reason == "overflow"]
            for sub, reason in ended:
                self._drop(stream, sub, reason)
            if superseded is not None:
                superseded.forget_renderings()
            for sub in slow:
                self.stats.slow_disconnects[sub.transport] += 1
            if slow:
                log.info(
                    "disconnected slow viewers",
                    extra={"stream_id": swarm.stream_id, "viewers": len(slow)},
                )
            self._enforce_bounds()
            return verdict

    def expire(self) -> None:
        """Age out old swarms; forget streams with neither viewers nor buffered swarms."""
        now = self._clock()
        with self._lock:
            for stream_id, stream in list(self._streams.items()):
                before = stream.buffer.nbytes
                stream.buffer.expire(now)
                self._bytes -= before - stream.buffer.nbytes
                if not stream.subscribers and not len(stream.buffer):
                    self._remove(stream_id)

    def forget(self, stream_ids: Iterable[str]) -> int:
        """Drop the buffers of ``stream_ids`` (streams no longer live); returns how many.

        For whoever knows which streams ended (a stream registry): their swarms would otherwise
        stay for the replay window, or until a bound evicts them, taking the room of live ones.
        A stream that still has viewers here is kept, so they can go on and resume; it is
        forgotten by :meth:`expire` once its last viewer left and its swarms aged out, or by a
        later call. Like an eviction, forgetting a stream forgets its greatest id (see the
        module's docstring for why that is safe).
        """
        with self._lock:
            dropped = 0
            for stream_id in stream_ids:
                if stream_id in self._idle:
                    self._remove(stream_id)
                    dropped += 1
            self.stats.forgotten += dropped
            return dropped

    def unwatched(self) -> list[str]:
        """The streams buffered here that no viewer of this worker watches."""
        with self._lock:
            return list(self._idle)

    # -- the connections' side ---------------------------------------------------------------

    def has_buffered(self, stream_id: str) -> bool:
        """Whether this worker holds a recent swarm of ``stream_id`` (else Redis may have one)."""
        with self._lock:
            stream = self._streams.get(stream_id)
            return stream is not None and stream.buffer.latest is not None

    def subscribe(
        self,
        stream_id: str,
        *,
        transport: str,
        last_event_id: str | None = None,
        snapshot: Swarm | None = None,
        sink: Sink | None = None,
    ) -> Subscription:
        """A new viewer of ``stream_id``, its live swarms handed to ``sink`` if given.

        With ``last_event_id`` the backlog is every buffered swarm after it; without, it is the
        newest buffered swarm, else ``snapshot`` (read from Redis by the caller). Backlog and
        registration happen under one lock, so no swarm falls between them.
        """
        with self._lock:
            if self._closing:
                self.stats.rejected += 1
                raise CapacityError("this worker is shutting down; reconnect to another")
            if sum(self._connections.values()) >= self._max_subscribers:
                self.stats.rejected += 1
                raise CapacityError("this worker serves as many viewers as it may")
            stream = self._stream(stream_id)
            if last_event_id is not None:
                # After a trim or an eviction, what is left: the viewer misses the rest.
                backlog = stream.buffer.after(last_event_id)
            else:
                latest = stream.buffer.latest or snapshot
                backlog = [latest] if latest is not None else []
            sub = Subscription(
                self,
                stream_id,
                transport=transport,
                capacity=self._queue_size,
                backlog=backlog,
                last_id=last_event_id,
                sink=sink,
            )
            if not stream.subscribers:
                del self._idle[stream_id]
                self._watched.add(stream_id)
                self._push_size(stream_id, stream)
            stream.subscribers.add(sub)
            self._connections[transport] += 1
            # A new stream entry may take the worker past its stream bound.
            self._enforce_bounds()
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove ``sub`` (no-op if the hub already dropped it)."""
        with self._lock:
            stream = self._streams.get(sub.stream_id)
            if stream is not None and sub in stream.subscribers:
                self._drop(stream, sub, "closed")

    def begin_drain(self) -> list[Subscription]:
        """Refuse new subscriptions; returns the open ones, for the caller to end one by one."""
        with self._lock:
            self._closing = True
            return [sub for stream in self._streams.values() for sub in stream.subscribers]

    def end(self, sub: Subscription, reason: str) -> bool:
        """End ``sub`` from the server's side; False if it had already ended."""
        with self._lock:
            stream = self._streams.get(sub.stream_id)
            if stream is None or sub not in stream.subscribers:
                return False
            self._drop(stream, sub, reason)
            return True

    def close_all(self, reason: str = "shutdown") -> int:
        """End every subscription and refuse new ones; returns how many were ended."""
        with self._lock:
            self._closing = True
            ended = 0
            for stream in self._streams.values():
                for sub in list(stream.subscribers):
                    self._drop(stream, sub, reason)
                    ended += 1
            return ended

    # -- introspection -----------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """Whether :meth:`close_all` was called."""
        return self._closing

    def connections(self) -> dict[str, int]:
        """Open subscriptions by transport."""
        with self._lock:
            return {t: self._connections[t] for t in TRANSPORTS}

    def stream_count(self) -> int:
        """Streams with a replay buffer or a viewer in this worker (what replay_max_streams
        bounds)."""
        with self._lock:
            return len(self._streams)

    def replay_bytes(self) -> int:
        """Bytes of swarms buffered in this worker (what replay_max_bytes bounds)."""
        with self._lock:
            return self._bytes

    @property
    def replay_limits(self) -> dict[str, int]:
        """The bounds in force, by name (``streams``, ``bytes``); one left off is absent."""
        return {name: n for name, n in self._limits.items() if n is not None}

    def viewer_counts(self) -> dict[str, int]:
        """Viewers of each stream that has any in this worker."""
        with self._lock:
            return {sid: len(s.subscribers) for sid, s in self._streams.items() if s.subscribers}

    def subscriber_count(self, stream_id: str) -> int:
        """Viewers of ``stream_id`` in this worker.

        Read without the lock: every write reads it, and a dict lookup and a set's length are
        each atomic, so the answer is the count just before or just after a concurrent change.
        """
        stream = self._streams.get(stream_id)
        return len(stream.subscribers) if stream else 0

    # -- under the lock ----------------------------------------------------------------------

    def _stream(self, stream_id: str) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = _Stream(ReplayBuffer(self._window_ms, self._max_per_stream))
            self._streams[stream_id] = stream
            self._idle[stream_id] = None
        return stream

    def _drop(self, stream: _Stream, sub: Subscription, reason: str) -> None:
        stream.subscribers.discard(sub)
        if not stream.subscribers:
            # Last in the eviction order: its viewers may be about to resume.
            self._watched.discard(sub.stream_id)
            self._idle[sub.stream_id] = None
        self._connections[sub.transport] -= 1
        self.stats.ended[sub.transport, reason] += 1
        sub._end(reason)

    def _remove(self, stream_id: str) -> None:
        """Forget a stream without viewers, its buffer and its greatest id."""
        stream = self._streams.pop(stream_id)
        del self._idle[stream_id]
        self._bytes -= stream.buffer.nbytes

    def _push_size(self, stream_id: str, stream: _Stream) -> None:
        if not stream.buffer.nbytes:
            return
        heapq.heappush(self._sizes, (-stream.buffer.nbytes, stream_id))
        # Entries of streams that grew, shrank or lost their viewers pile up: rebuild once they
        # outnumber the live ones, which costs O(watched) every O(watched) pushes.
        if len(self._sizes) > 2 * len(self._watched) + 64:
            self._sizes = [
                (-self._streams[sid].buffer.nbytes, sid)
                for sid in self._watched
                if self._streams[sid].buffer.nbytes
            ]
            heapq.heapify(self._sizes)

    def _enforce_bounds(self) -> None:
        max_streams, max_bytes = self._limits["streams"], self._limits["bytes"]
        if max_streams is not None:
            while len(self._streams) > max_streams and self._idle:
                self._evict_idle("streams")
        if max_bytes is not None:
            while self._bytes > max_bytes:
                if self._idle:
                    self._evict_idle("bytes")
                elif not self._trim_largest():
                    break

    def _evict_idle(self, reason: str) -> None:
        stream_id = next(iter(self._idle))
        self._remove(stream_id)
        self._count_eviction(reason, stream_id)

    def _trim_largest(self) -> bool:
        """Drop the oldest swarm of the largest watched buffer; False if none has any."""
        while self._sizes:
            negative, stream_id = heapq.heappop(self._sizes)
            stream = self._streams.get(stream_id)
            if stream is None or not stream.subscribers:
                continue
            size = stream.buffer.nbytes
            if -negative != size:
                # Grown since: a newer entry holds its size. Shrunk since: put it back at it.
                if size and -negative > size:
                    heapq.heappush(self._sizes, (-size, stream_id))
                continue
            self._bytes -= stream.buffer.trim()
            self._push_size(stream_id, stream)
            self._count_eviction("bytes", stream_id)
            return True
        return False

    def _count_eviction(self, reason: str, stream_id: str) -> None:
        self.stats.evictions[reason] += 1
        total = self.stats.evictions.total()
        if total == 1 or total % _WARN_EVERY == 0:
            log.warning(
                "replay memory at its bound: dropping buffered swarms; viewers resuming onto "
                "this worker may miss some (raise replay_max_streams or replay_max_bytes)",
                extra={
                    "reason": reason,
                    "stream_id": stream_id,
                    "streams": len(self._streams),
                    "bytes": self._bytes,
                    "evictions_total": total,
                },
            )
