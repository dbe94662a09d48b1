"""Everything one ingest worker owns: settings, metrics, the Kafka sink, the rate limit, the
stream registry and the sender-token verifier.

Creating it opens no connection (gunicorn may fork after the app is made): the producer, the
Redis clients and the registry's refresh thread start with the first request that needs them.
"""

import logging
from typing import Protocol

from emostream.common.registry import StreamRegistry
from emostream.common.registry import Verdict as RegistryVerdict
from emostream.common.tokens import TokenVerifier
from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._producer import ReactionProducer, ReactionSink
from emostream.ingest._ratelimit import RateLimiter, Verdict
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


class RateLimit(Protocol):
    """What the routes need of the rate limiter (:class:`RateLimiter`, or a stand-in in tests)."""

    def acquire(self, users: dict[str, int], address: str | None = None) -> Verdict:
        """Charge the reactions of each user (and their sum to ``address``); the verdict says
        whether all fit."""

    def retry_after_header(self, verdict: Verdict) -> str:
        """The Retry-After value of a refused request."""


class Registry(Protocol):
    """What the routes need of the stream registry (:class:`StreamRegistry`, or a stand-in)."""

    def admit(self, stream_id: str, client: str) -> RegistryVerdict:
        """Whether a reaction from ``client`` to ``stream_id`` may be taken."""

    def open(self, stream_id: str) -> bool:
        """Make ``stream_id`` live; True if it was not."""

    def close(self, stream_id: str) -> bool:
        """End ``stream_id``; True if it was live."""

    def live_count(self) -> int:
        """How many streams are live."""


class IngestRuntime:
    """The worker's shared state, created once per app.

    ``sink`` replaces the Kafka producer, ``limiter`` the Redis rate limit and ``registry`` the
    Redis stream registry, for tests of the HTTP layer alone.
    """

    def __init__(
        self,
        settings: IngestSettings,
        *,
        sink: ReactionSink | None = None,
        limiter: RateLimit | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = IngestMetrics(settings.metrics_dir)
        self.sink: ReactionSink = sink or ReactionProducer(settings, self.metrics)
        self.limiter: RateLimit = limiter or RateLimiter(settings, self.metrics)
        self.registry: Registry = registry or StreamRegistry(
            settings.registry_config(settings.registry_new_streams_per_min)
        )
        self.tokens = (
            TokenVerifier(settings.token_keys()) if settings.sender_tokens != "off" else None
        )

    def exposition(self) -> tuple[bytes, str]:
        """The metrics of every worker in the Prometheus text format, and its content type:
        what the metrics port answers (:class:`emostream.common.apps.MetricsPort`)."""
        self.metrics.queue_depth.set(self.sink.queue_depth())
        self.metrics.live_streams.set(self.registry.live_count())
        return self.metrics.exposition()

    def flush(self, why: str) -> None:
        """Deliver what was accepted before the worker exits, within the shutdown bound."""
        remaining = self.sink.flush(self.settings.shutdown_flush_timeout_s)
        log.info("worker flushed its Kafka producer", extra={"why": why, "remaining": remaining})
