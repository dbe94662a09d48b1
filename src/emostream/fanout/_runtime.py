"""Everything one fanout worker owns: settings, hub, Kafka consumer, Redis, presence, metrics.

Nothing here touches the network when it is created: gunicorn imports and builds the app in
each worker after forking, and the consumer and the maintenance loop (presence refresh, metric
files) start on :meth:`FanoutRuntime.start` (called through :meth:`FanoutRuntime.serve_worker`
by the ``post_worker_init`` hook, and by any request as a fallback), never at import time.

Shutdown: SIGTERM (gunicorn's master forwards its own to every worker) starts a drain instead
of gunicorn's immediate stop: the worker keeps accepting, but answers new feeds and ``/readyz``
503 with Retry-After, and ends its open feeds one by one at random moments over ``drain_s``, so
viewers reconnect (with Last-Event-ID) to other pods spread over that period. Then the worker
withdraws its presence, stops its consumer and stops as gunicorn would. Settings validation
keeps ``drain_s`` plus a margin within ``graceful_timeout``, after which the master kills.
SIGINT and SIGQUIT still stop at once (every feed closed immediately).
"""

import itertools
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from emostream.common.errors import InvalidEventError
from emostream.common.events import now_ms
from emostream.common.keys import latest_swarm_key
from emostream.common.registry import StreamRegistry
from emostream.common.tokens import TokenVerifier
from emostream.fanout._hub import TRANSPORTS, Hub, Sink, Subscription
from emostream.fanout._metrics import FanoutMetrics, StateSources
from emostream.fanout._presence import Presence
from emostream.fanout._swarm import Swarm
from emostream.fanout._upstream import Upstream
from emostream.fanout.settings import FanoutSettings

log = logging.getLogger(__name__)

#: After a failed Redis read, new viewers skip the snapshot lookup for this long.
_REDIS_BACKOFF_S = 5.0


class FanoutRuntime:
    """The worker's shared state, created once per app."""

    def __init__(
        self,
        settings: FanoutSettings,
        *,
        connect_upstream: bool = True,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.hub = Hub(
            replay_window_s=settings.replay_window_s,
            replay_max_per_stream=settings.replay_max_per_stream,
            queue_size=settings.client_queue_size,
            max_subscribers=settings.max_connections,
            replay_max_streams=settings.replay_max_streams,
            replay_max_bytes=settings.replay_max_bytes,
        )
        self.upstream: Upstream | None = None
        if connect_upstream:
            if consumer_factory is None:
                self.upstream = Upstream(settings, self.hub)
            else:
                self.upstream = Upstream(settings, self.hub, consumer_factory=consumer_factory)
        self._redis: redis.Redis | None = None
        self._redis_lock = threading.Lock()
        self._redis_skip_until = 0.0
        self.presence: Presence | None = None
        if settings.presence_enabled:
            self.presence = Presence(
                self._redis_client, self.hub.viewer_counts, ttl_s=settings.presence_ttl_s
            )
        keys = settings.token_keys()
        self.tokens = TokenVerifier(keys) if keys.configured else None
        self.registry = StreamRegistry(settings.registry_config(), on_refresh=self._forget_ended)
        self.draining = False
        self.metrics = FanoutMetrics(settings.metrics_dir)
        self.metrics.track(
            StateSources(
                hub=self.hub,
                upstream=lambda: self.upstream.stats if self.upstream else None,
                presence=lambda: self.presence.stats if self.presence else None,
                ready=lambda: self.ready,
                draining=lambda: self.draining,
            )
        )
        self._feeds_opened = {transport: itertools.count() for transport in TRANSPORTS}
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False

    @property
    def ready(self) -> bool:
        """Ready to serve: the consumer has its partitions and the worker is not stopping."""
        return self.upstream is not None and self.upstream.ready and not self.hub.closing

    def start(self) -> None:
        """Start the consumer and the maintenance loop (idempotent)."""
        if self.upstream is not None:
            self.upstream.start()
        with self._start_lock:
            if self._maintenance is None:
                # Under gevent a Thread is a greenlet; its Redis calls yield like any socket use.
                self._maintenance = threading.Thread(
                    target=self._maintain, name="emostream-fanout-maintenance", daemon=True
                )
                self._maintenance.start()

    def _forget_ended(self, live: frozenset[str]) -> None:
        """The registry reloaded: drop the replay buffers of streams that are no longer live."""
        self.hub.forget([s for s in self.hub.unwatched() if s not in live])

    def serve_worker(self, worker: Any) -> None:
        """Run in a gunicorn gevent worker (``post_worker_init``): start, and drain on SIGTERM.

        ``worker`` is gunicorn's worker object: clearing its ``alive`` flag is how the drain hands
        over to gunicorn's own stop (close the listener, wait for requests).
        """
        import gevent  # noqa: PLC0415 - only a worker process (after patching) needs it

        self.start()

        def drain_then_stop() -> None:
            try:
                self.drain(self.settings.drain_s)
                self.shutdown()
            finally:
                worker.alive = False

        def on_sigterm(signum: int, frame: Any) -> None:
            # A signal handler must not block: the drain runs in its own greenlet, once.
            if not self.draining:
                self.draining = True
                gevent.spawn(drain_then_stop)

        signal.signal(signal.SIGTERM, on_sigterm)

        def close_feeds_on_exit() -> None:
            while worker.alive:
                gevent.sleep(0.25)
            self.shutdown()

        gevent.spawn(close_feeds_on_exit)

    def sample_latency(self, transport: str) -> bool:
        """Whether the feed starting now times its writes: the worker's first of ``transport``,
        then one in ``latency_sample_every`` (counted per transport, so each has samples)."""
        return next(self._feeds_opened[transport]) % self.settings.latency_sample_every == 0

    def viewers(self, stream_id: str) -> int:
        """The stream's viewers across every worker and pod, as published with its swarms."""
        local = self.hub.subscriber_count(stream_id)
        return self.presence.viewers(stream_id, local) if self.presence else local

    def drain(
        self,
        period_s: float,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> int:
        """Refuse new feeds, then end the open ones at uniformly random moments over ``period_s``.

        Spreading the ends spreads the reconnections: the other pods take this worker's viewers
        over the period instead of all in one instant. Blocks (cooperatively under gevent) for
        the period; returns how many feeds it ended.
        """
        self.draining = True
        subs = self.hub.begin_drain()
        rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        sleep = sleep or time.sleep
        schedule = sorted((rng.uniform(0, period_s), i) for i in range(len(subs)))
        log.info("draining feeds", extra={"connections": len(subs), "period_s": period_s})
        elapsed = 0.0
        ended = 0
        for at, i in schedule:
            sleep(at - elapsed)
            elapsed = at
            ended += self.hub.end(subs[i], "drain")
        log.info("drained feeds", extra={"connections": ended})
        return ended

    def shutdown(self) -> None:
        """Close every feed left (viewers resume elsewhere), withdraw presence, stop reading.

        Idempotent: the drain calls it when done, and the exit watcher calls it again.
        """
        with self._start_lock:
            if self._stopped:
                return
            self._stopped = True
        ended = self.hub.close_all("shutdown")
        log.info("closed feeds for shutdown", extra={"connections": ended})
        self._stop.set()
        self.registry.stop()
        if self._maintenance is not None:
            # A refresh still in flight would put back the entries the withdrawal deletes.
            self._maintenance.join(self.settings.redis_timeout_s * 2 + 1)
        if self.presence is not None and not self.presence.withdraw():
            log.warning("could not withdraw viewer presence; it expires by itself")
        if self.upstream is not None:
            self.upstream.stop()

    def _maintain(self) -> None:
        """Every presence period: refresh presence, and write this worker's metric values.

        It also starts the stream registry's own refresh, which forgets ended streams.
        """
        period = self.settings.presence_refresh_s
        self.registry.start()
        while not self._stop.is_set():
            try:
                if self.presence is not None:
                    self.presence.refresh()
                self.metrics.sync()
            except Exception:
                # Presence and metrics must not die with one bad moment: log it and go on.
                log.exception("fanout maintenance failed; retrying")
            self._stop.wait(period)

    def open(
        self,
        stream_id: str,
        transport: str,
        last_event_id: str | None,
        sink: Sink | None = None,
    ) -> Subscription:
        """Subscribe a new connection, greeting a new viewer with the latest snapshot; its live
        swarms go to ``sink`` if given.

        Raises :class:`~emostream.fanout._hub.CapacityError` when the worker is full.
        """
        self.start()
        snapshot = None
        if last_event_id is None and not self.hub.has_buffered(stream_id):
            snapshot = self._redis_snapshot(stream_id)
        return self.hub.subscribe(
            stream_id,
            transport=transport,
            last_event_id=last_event_id,
            snapshot=snapshot,
            sink=sink,
        )

    def _redis_snapshot(self, stream_id: str) -> Swarm | None:
        """The latest swarm the aggregation stored for ``stream_id``, if Redis answers quickly."""
        if not self.settings.snapshot_from_redis or time.monotonic() < self._redis_skip_until:
            return None
        try:
            value = self._redis_client().get(latest_swarm_key(stream_id))
        except redis.RedisError as exc:
            self._redis_skip_until = time.monotonic() + _REDIS_BACKOFF_S
            log.warning("could not read the latest snapshot", extra={"error": str(exc)})
            return None
        if not isinstance(value, bytes | str):
            return None
        try:
            swarm = Swarm.decode(value, fallback_time_ms=now_ms())
        except InvalidEventError as exc:
            log.warning("ignoring an invalid snapshot", extra={"error": str(exc)})
            return None
        return swarm if swarm.stream_id == stream_id else None

    def _redis_client(self) -> redis.Redis:
        with self._redis_lock:
            if self._redis is None:
                timeout = self.settings.redis_timeout_s
                self._redis = redis.Redis.from_url(
                    self.settings.redis_url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                )
            return self._redis
