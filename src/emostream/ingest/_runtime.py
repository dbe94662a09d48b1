"""Everything one ingest worker owns: settings, metrics, the Kafka sink and the rate limit.

Creating it opens no connection (gunicorn may fork after the app is made): the producer and
the Redis client connect on the first request that needs them.
"""

import logging
from typing import Protocol

from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._producer import ReactionProducer, ReactionSink
from emostream.ingest._ratelimit import RateLimiter, Verdict
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


class RateLimit(Protocol):
    """What the routes need of the rate limiter (:class:`RateLimiter`, or a stand-in in tests)."""

    def acquire(self, users: dict[str, int]) -> Verdict:
        """Charge the reactions of each user; the verdict says whether all fit."""

    def retry_after_header(self, verdict: Verdict) -> str:
        """The Retry-After value of a refused request."""


class IngestRuntime:
    """The worker's shared state, created once per app.

    ``sink`` replaces the Kafka producer and ``limiter`` the Redis rate limit, for tests of the
    HTTP layer alone.
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        sink: ReactionSink | None = None,
        limiter: RateLimit | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = IngestMetrics(settings.metrics_dir)
        self.sink: ReactionSink = sink or ReactionProducer(settings, self.metrics)
        self.limiter: RateLimit = limiter or RateLimiter(settings, self.metrics)

    def flush(self, why: str) -> None:
        """Deliver what was accepted before the worker exits, within the shutdown bound."""
        remaining = self.sink.flush(self.settings.shutdown_flush_timeout_s)
        log.info("worker flushed its Kafka producer", extra={"why": why, "remaining": remaining})
