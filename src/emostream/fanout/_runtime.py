"""Everything one fanout worker owns: settings, hub, Kafka consumer, Redis and metrics.

Nothing here touches the network when it is created: gunicorn imports and builds the app in
each worker after forking, and the consumer starts on :meth:`FanoutRuntime.start` (called by
the ``post_worker_init`` hook, and by any request as a fallback), never at import time.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from emostream.common.errors import InvalidEventError
from emostream.common.events import now_ms
from emostream.common.keys import latest_swarm_key
from emostream.fanout._hub import Hub, Subscription
from emostream.fanout._metrics import FanoutMetrics
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
        )
        self.upstream: Upstream | None = None
        if connect_upstream:
            if consumer_factory is None:
                self.upstream = Upstream(settings, self.hub)
            else:
                self.upstream = Upstream(settings, self.hub, consumer_factory=consumer_factory)
        self.metrics = FanoutMetrics()
        self.metrics.track(
            self.hub, lambda: self.upstream.stats if self.upstream else None, lambda: self.ready
        )
        self._redis: redis.Redis | None = None
        self._redis_lock = threading.Lock()
        self._redis_skip_until = 0.0

    @property
    def ready(self) -> bool:
        """Ready to serve: the consumer has its partitions and the worker is not stopping."""
        return self.upstream is not None and self.upstream.ready and not self.hub.closing

    def start(self) -> None:
        """Start the consumer (idempotent; a no-op without one)."""
        if self.upstream is not None:
            self.upstream.start()

    def shutdown(self) -> None:
        """Close every feed (viewers resume elsewhere) and stop the consumer."""
        ended = self.hub.close_all("shutdown")
        log.info("closed feeds for shutdown", extra={"connections": ended})
        if self.upstream is not None:
            self.upstream.stop()

    def open(self, stream_id: str, transport: str, last_event_id: str | None) -> Subscription:
        """Subscribe a new connection, greeting a new viewer with the latest snapshot.

        Raises :class:`~emostream.fanout._hub.CapacityError` when the worker is full.
        """
        self.start()
        snapshot = None
        if last_event_id is None and not self.hub.has_buffered(stream_id):
            snapshot = self._redis_snapshot(stream_id)
        return self.hub.subscribe(
            stream_id, transport=transport, last_event_id=last_event_id, snapshot=snapshot
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
