"""Settings of the fanout service, read once from ``EMOSTREAM_*`` environment variables."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from emostream.common import endpoints
from emostream.common.settings import ServerSettings

#: How long gunicorn keeps an idle HTTP connection open for a next request (read by
#: gunicorn_conf). Kept short: feeds hold their own connections, and a stopping worker waits
#: for idle ones to time out before it exits.
KEEPALIVE_S = 2
#: What a worker needs after its drain period: idle connections to time out, gunicorn's
#: one-second check, stopping the consumer and withdrawing presence.
DRAIN_MARGIN_S = KEEPALIVE_S + 2.0


class FanoutSettings(ServerSettings):
    """Delivery pacing, per-connection limits, the replay window and server sizing of fanout."""

    # Delivery.
    heartbeat_s: float = Field(
        15.0,
        gt=0,
        le=15,
        description="Longest silence on an idle SSE connection before a `: hb` comment (and the "
        "WebSocket ping interval); the contract promises at least one every 15 s.",
    )
    retry_ms: int = Field(
        2000,
        ge=0,
        description="Reconnection delay hint sent to SSE clients as the first `retry:` field.",
    )
    replay_window_s: float = Field(
        60.0,
        gt=0,
        description="How long swarms stay in a worker's replay buffer, so a viewer that "
        "reconnects with Last-Event-ID within this time misses nothing.",
    )
    replay_max_per_stream: int = Field(
        4096,
        ge=1,
        description="Most swarms a stream's replay buffer holds, whatever their age; bounds "
        "memory if one stream emits far faster than expected.",
    )
    replay_max_streams: int = Field(
        10_000,
        ge=1,
        description="Most streams one worker keeps a replay buffer for; past it, the buffers of "
        "streams without viewers here are dropped, least recently published first (a viewer "
        "resuming one of them onto this worker misses what it had not seen). Bounds memory "
        "under a flood of stream ids; streams with viewers are always kept.",
    )
    replay_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=1,
        description="Most bytes of buffered swarms one worker keeps (each counted as its text "
        "in memory plus a fixed overhead); past it, streams without viewers are dropped as for "
        "replay_max_streams, and only when every buffered stream has viewers are the oldest "
        "swarms of the largest buffers trimmed.",
    )
    client_queue_size: int = Field(
        256,
        ge=1,
        description="Swarms waiting for one connection; a connection that falls this far behind "
        "is disconnected (it resumes from the replay buffer) so it never slows others.",
    )
    write_timeout_s: float = Field(
        30.0,
        gt=0,
        description="How long one write to a client socket may block before the client counts "
        "as stuck and its connection is closed.",
    )
    max_connections: int = Field(
        5000,
        ge=1,
        description="Streaming connections (SSE and WebSocket) one worker serves; more are "
        "answered 503 with Retry-After.",
    )
    busy_retry_after_s: int = Field(
        5,
        ge=1,
        description="Retry-After seconds sent with a 503 when a worker is full or stopping.",
    )
    ws_max_message_bytes: int = Field(
        4096,
        ge=128,
        description="Largest message a WebSocket client may send (the feed is one-way; clients "
        "have nothing to say beyond control frames).",
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to read the feeds from other sites (JSON list; ["*"] allows '
        "any); the built-in viewer page is same-origin and needs none.",
    )

    latency_sample_every: int = Field(
        16,
        ge=1,
        description="Time the writes of one feed in this many (a worker's first feed of each "
        "transport, then every Nth) for the delivery latency histograms; 1 times every feed. "
        "Each observation is a locked write to a metrics file, too dear for every one of tens "
        "of thousands of deliveries a second.",
    )

    # Viewer presence: a per-stream viewer count across every worker and pod, kept in Redis.
    presence_enabled: bool = Field(
        True,
        description="Count each stream's viewers across all fanout processes in Redis and "
        'publish the count as "viewers" in every swarm.',
    )
    presence_refresh_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="How often a worker reports its viewer counts to Redis and reads the totals.",
    )
    presence_ttl_s: float = Field(
        10.0,
        gt=0,
        description="How long a worker's reported count stays valid without a refresh; a worker "
        "that dies without withdrawing its counts stops counting after this long.",
    )

    # Graceful drain on SIGTERM.
    drain_s: float = Field(
        5.0,
        ge=0,
        description="On SIGTERM, the period over which a worker closes its feeds, each at a "
        "uniformly random moment, so viewers reconnect elsewhere spread out, not all at once.",
    )

    # Viewer tokens (JWTs; the token_* settings say how they are checked).
    viewer_tokens: Literal["off", "required"] | None = Field(
        None,
        description="required: a feed needs a token whose emostream.view claim covers the "
        "stream (?token= or Authorization: Bearer); off: feeds are open to anyone. Unset: "
        "required exactly when a token key or viewer_token_secret is set.",
    )
    viewer_token_secret: SecretStr | None = Field(
        None,
        description="Secret of the viewer tokens of earlier releases, <expiry>.<HMAC-SHA256>; "
        "while set, those are accepted beside JWTs (see docs/operations.md on the transition).",
    )

    # Latest snapshot for new viewers when the replay buffer has none.
    snapshot_from_redis: bool = Field(
        True, description="Greet a new viewer with the latest swarm stored in Redis."
    )
    redis_timeout_s: float = Field(
        0.5, gt=0, description="Time limit of a Redis snapshot read; a slow Redis is skipped."
    )

    # Upstream Kafka consumer (one per worker process).
    consume_batch: int = Field(
        500, ge=1, le=100_000, description="Most swarm messages taken from Kafka in one call."
    )
    consume_timeout_s: float = Field(
        0.5,
        gt=0,
        le=5,
        description="How long one consume call waits for messages; bounds how quickly a "
        "stopping worker notices.",
    )
    upstream_retry_s: float = Field(
        2.0, gt=0, description="Pause before reconnecting after the Kafka consumer failed."
    )
    kafka_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Time limit of the consumer's metadata and offset lookups at start-up.",
    )

    # Server sizing and the metrics port, read by gunicorn_conf.
    workers: int = Field(
        1,
        ge=1,
        description="gunicorn worker processes; each holds its own Kafka consumer and buffers.",
    )
    metrics_port: int = Field(
        endpoints.FANOUT_METRICS_PORT,
        ge=1,
        le=65535,
        description="Port of fanout's Prometheus /metrics (every worker's), on metrics_host; the "
        "public port answers /metrics with 404.",
    )
    graceful_timeout_s: int = Field(
        10,
        ge=1,
        description="How long gunicorn lets a stopping worker close its feeds (clients resume "
        "elsewhere with Last-Event-ID); must exceed drain_s by at least drain_margin_s.",
    )

    @model_validator(mode="after")
    def _queue_fits_in_window(self) -> "FanoutSettings":
        if self.replay_max_per_stream < self.client_queue_size:
            raise ValueError(
                "replay_max_per_stream must be at least client_queue_size, or a client dropped "
                "for being slow could not resume from the replay buffer"
            )
        return self

    @model_validator(mode="after")
    def _drain_fits_in_grace(self) -> "FanoutSettings":
        if self.drain_s + DRAIN_MARGIN_S > self.graceful_timeout_s:
            raise ValueError(
                f"graceful_timeout_s ({self.graceful_timeout_s}) must be at least drain_s "
                f"({self.drain_s}) + {DRAIN_MARGIN_S} s, or gunicorn kills the worker before "
                "its last feeds are closed cleanly"
            )
        return self

    @model_validator(mode="after")
    def _presence_outlives_a_refresh(self) -> "FanoutSettings":
        if self.presence_ttl_s < 2 * self.presence_refresh_s:
            raise ValueError(
                "presence_ttl_s must be at least twice presence_refresh_s, or one slow refresh "
                "would make a live worker's viewers vanish from the count"
            )
        return self

    @model_validator(mode="after")
    def _tokens_have_a_key(self) -> "FanoutSettings":
        if self.viewer_tokens == "required" and not (
            self.token_keys().configured or self.viewer_token_secret
        ):
            raise ValueError(
                "viewer tokens need a key: set token_secret, token_public_key or token_jwks_url"
            )
        return self

    @property
    def viewer_tokens_required(self) -> bool:
        """Whether feeds need a viewer token."""
        if self.viewer_tokens is not None:
            return self.viewer_tokens == "required"
        return self.token_keys().configured or self.viewer_token_secret is not None

    @property
    def worker_connections(self) -> int:
        """gunicorn's per-worker connection cap: the feeds plus room for probes and 503s."""
        return self.max_connections + 100
