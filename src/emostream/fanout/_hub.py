"""The per-worker hub: one replay buffer per stream, and the viewers subscribed to it.

The upstream consumer calls :meth:`Hub.publish` once per swarm; the hub appends it to the
stream's replay buffer and offers it to that stream's subscribers without ever blocking: each
subscription has a bounded queue, and one that is full is closed (its viewer reconnects and
resumes from the replay buffer), so a slow viewer costs only itself.

Everything here is plain Python guarded by one lock, so the same code runs under gunicorn's
gevent worker (where ``threading`` is monkey-patched and waits yield to other greenlets) and
in ordinary threads in tests.
"""

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from emostream.common.errors import BackpressureError, EmostreamError
from emostream.common.events import now_ms
from emostream.fanout._buffer import ReplayBuffer, Verdict
from emostream.fanout._swarm import Swarm

log = logging.getLogger(__name__)

TRANSPORTS = ("sse", "ws")


class CapacityError(BackpressureError):
    """The worker serves as many connections as it may, or is shutting down."""


class SubscriptionClosedError(EmostreamError):
    """The subscription ended: ``reason`` is ``overflow``, ``drain``, ``shutdown`` or ``closed``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"subscription closed: {reason}")
        self.reason = reason


class Subscription:
    """One connection's feed of one stream: a backlog taken at subscribe time, then live swarms.

    Only the hub puts swarms in (from the consumer); only the connection takes them out. Ids
    only move forward: anything not greater than the last id handed out is skipped, which makes
    a snapshot read from Redis and the live feed safe to combine.
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
    ) -> None:
        self.stream_id = stream_id
        self.transport = transport
        self.capacity = capacity
        self._hub = hub
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

    def _offer(self, swarm: Swarm) -> bool:
        if len(self._queue) >= self.capacity:
            return False
        self._queue.append(swarm)
        self._wake.set()
        return True

    def _end(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._queue.clear()
        self._wake.set()


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


class Hub:
    """Replay buffers of every stream seen within the window, and their subscribers."""

    def __init__(
        self,
        *,
        replay_window_s: float,
        replay_max_per_stream: int,
        queue_size: int,
        max_subscribers: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._window_ms = int(replay_window_s * 1000)
        self._max_per_stream = replay_max_per_stream
        self._queue_size = queue_size
        self._max_subscribers = max_subscribers
        self._clock = clock
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._connections: Counter[str] = Counter()
        self._closing = False
        self.stats = HubStats()

    # -- the consumer's side -----------------------------------------------------------------

    def publish(self, swarm: Swarm) -> Verdict:
        """Buffer ``swarm`` and offer it to its stream's subscribers, dropping any that are full."""
        with self._lock:
            stream = self._stream(swarm.stream_id)
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
            slow = [sub for sub in stream.subscribers if not sub._offer(swarm)]
            for sub in slow:
                self._drop(stream, sub, "overflow")
                self.stats.slow_disconnects[sub.transport] += 1
            if slow:
                log.info(
                    "disconnected slow viewers",
                    extra={"stream_id": swarm.stream_id, "viewers": len(slow)},
                )
            return verdict

    def expire(self) -> None:
        """Age out old swarms; forget streams with neither viewers nor buffered swarms."""
        now = self._clock()
        with self._lock:
            for stream_id, stream in list(self._streams.items()):
                stream.buffer.expire(now)
                if not stream.subscribers and not len(stream.buffer):
                    del self._streams[stream_id]

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
    ) -> Subscription:
        """A new viewer of ``stream_id``.

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
            )
            stream.subscribers.add(sub)
            self._connections[transport] += 1
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
        """Streams with a replay buffer or a viewer in this worker."""
        with self._lock:
            return len(self._streams)

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
        return stream

    def _drop(self, stream: _Stream, sub: Subscription, reason: str) -> None:
        stream.subscribers.discard(sub)
        self._connections[sub.transport] -= 1
        self.stats.ended[sub.transport, reason] += 1
        sub._end(reason)
