"""Settings of the ingest service, read once from ``EMOSTREAM_*`` environment variables."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from emostream.common import endpoints
from emostream.common.settings import ServerSettings

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
SenderTokens = Literal["off", "optional", "required"]


class IngestSettings(ServerSettings):
    """Request limits, event-time bounds, Kafka producer tuning and server sizing of ingest."""

    # Request limits.
    max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest request body accepted; larger gets 413."
    )
    max_batch: int = Field(
        500, ge=1, le=10_000, description="Most reactions in one POST to the batch route."
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description='Origins whose pages may post reactions from the browser (JSON list; ["*"] '
        "allows any); apps, servers and same-origin pages need none.",
    )

    # Event time: a client's clock is trusted only within these bounds.
    max_future_skew_s: float = Field(
        5.0,
        ge=0,
        description="An event time further ahead of the server clock is clamped to receive time.",
    )
    max_past_age_s: float = Field(
        60.0,
        gt=0,
        description="An event time older than this is clamped to receive time, so one bad clock "
        "can never hold back or push forward the aggregation's watermark.",
    )

    # Kafka producer (librdkafka) tuning.
    # 25 ms rather than librdkafka's 5: at 20,000 reactions/s over two workers and six
    # partitions, 5 ms made record batches of a handful of reactions, and the broker's
    # per-batch work took about a tenth of a core more, which the aggregation then lacked
    # (docs/aggregation.md, "Levers, measured"). A reaction waits up to 25 ms longer to be
    # readable, against a micro-batch of several hundred milliseconds.
    producer_linger_ms: int = Field(
        25, ge=0, le=60_000, description="How long the producer waits to fill a batch (linger.ms)."
    )
    producer_batch_bytes: int = Field(
        131_072, ge=1024, description="Upper bound on a message batch in bytes (batch.size)."
    )
    producer_compression: Compression = Field(
        "lz4", description="Batch compression codec (compression.type)."
    )
    producer_queue_max_messages: int = Field(
        100_000,
        ge=1,
        description="Messages the local queue holds before produce() raises BufferError "
        "(queue.buffering.max.messages); a full queue turns into 503 + Retry-After.",
    )
    producer_queue_max_kbytes: int = Field(
        65_536,
        ge=1,
        description="Kilobytes the local queue holds (queue.buffering.max.kbytes).",
    )
    producer_delivery_timeout_ms: int = Field(
        300_000,
        ge=1000,
        description="How long an accepted message may wait for the broker (retried meanwhile) "
        "before it counts as a delivery error and is lost (message.timeout.ms): the longest "
        "Kafka outage ingest rides out without losing what it already acknowledged.",
    )
    producer_stats_interval_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="How often librdkafka reports its statistics, which feed the delivery "
        "latency metrics (statistics.interval.ms); 0 turns them off.",
    )
    produce_retry_s: float = Field(
        0.1,
        ge=0,
        le=5,
        description="How long a request waits for room in a full local queue before it is "
        "answered 503.",
    )
    retry_after_s: int = Field(
        1, ge=1, description="Retry-After seconds sent with a 503 when Kafka cannot take more."
    )

    # Per-user rate limit, shared by every worker and replica through Redis.
    rate_limit_per_s: float = Field(
        50.0,
        ge=0,
        description="Reactions per second one user id may send, sustained; 0 turns the limit off. "
        "Well above what a person can tap, well below what a runaway script sends.",
    )
    rate_limit_burst: int = Field(
        500,
        ge=1,
        description="Reactions one rested user id may send at once (the bucket size); at least "
        "max_batch, so any valid request can pass.",
    )
    rate_limit_key_prefix: str = Field(
        "emostream:ratelimit:",
        min_length=1,
        description="Prefix of the per-user Redis keys.",
    )
    rate_limit_sync_s: float = Field(
        0.05,
        gt=0,
        le=5,
        description="How often each process reconciles its copy of the rate-limit buckets with "
        "the shared ones in Redis. A user spread over P processes may get (P - 1) x (burst + "
        "rate x this) reactions more than the rate once, then waits them off (docs/ingest.md).",
    )
    rate_limit_timeout_s: float = Field(
        0.5,
        gt=0,
        le=5,
        description="Time limit of one reconciling round trip to Redis (connect or answer); past "
        "it the round's charges stay local and each process limits on its own.",
    )
    rate_limit_retry_s: float = Field(
        1.0,
        gt=0,
        description="After Redis failed, how long until the next reconciling round tries again.",
    )

    rate_limit_per_address_per_s: float = Field(
        1000.0,
        ge=0,
        description="Reactions per second one client address may send, sustained, when the "
        "request carries no sender token (a body's user_id is whatever the sender says); 0 turns "
        "it off. Behind a proxy, set forwarded_for_hops, or every client shares its address.",
    )
    rate_limit_per_address_burst: int = Field(
        2000,
        ge=1,
        description="Reactions one rested client address may send at once; at least max_batch.",
    )
    forwarded_for_hops: int = Field(
        0,
        ge=0,
        le=10,
        description="Proxies in front of ingest whose X-Forwarded-For entries are trusted: the "
        "client address is the entry this many hops from the end. 0: the peer's own address.",
    )

    # Who may send: signed sender tokens (JWTs; the token_* settings say how they are checked).
    sender_tokens: SenderTokens = Field(
        "off",
        description="off: the body's user_id is the sender; optional: a request with a token "
        "sends as its sub, one without as the body says; required: every request needs a token "
        "whose emostream.send claim covers the stream (401/403 otherwise).",
    )
    # The stream registry (registry_* settings shared with fanout).
    registry_new_streams_per_min: int = Field(
        120,
        ge=0,
        description="Open mode: most streams one client (token subject, else address) may bring "
        "into being per minute; beyond it ingest answers 429. 0 turns the cap off.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the admin API (PUT and DELETE /v1/streams/<id>); unset, "
        "the admin API answers 403. Required in closed mode.",
    )

    # Readiness and shutdown.
    readiness_cache_s: float = Field(
        3.0, ge=0, description="How long a Kafka readiness probe result is reused."
    )
    readiness_timeout_s: float = Field(
        1.0, gt=0, description="Time limit of one Kafka metadata request made by /readyz."
    )
    shutdown_flush_timeout_s: float = Field(
        10.0,
        ge=0,
        description="How long a stopping worker waits for queued events to reach Kafka.",
    )

    # Server sizing and the metrics port, read by gunicorn_conf.
    # One per core plus one (three on the two-core target): a worker is one interpreter, and
    # its threads take turns, so two leave part of the machine idle (docs/ingest.md, "gunicorn
    # configuration").
    workers: int = Field(3, ge=1, description="gunicorn worker processes.")
    metrics_port: int = Field(
        endpoints.INGEST_METRICS_PORT,
        ge=1,
        le=65535,
        description="Port of ingest's Prometheus /metrics (every worker's), on metrics_host; the "
        "public port answers /metrics with 404.",
    )
    threads: int = Field(8, ge=1, description="Request threads per gunicorn worker (gthread).")
    graceful_timeout_s: int = Field(
        20,
        ge=1,
        description="How long gunicorn lets a stopping worker finish requests and flush; must "
        "exceed shutdown_flush_timeout_s.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "IngestSettings":
        if self.graceful_timeout_s <= self.shutdown_flush_timeout_s:
            raise ValueError(
                "graceful_timeout_s must exceed shutdown_flush_timeout_s, or gunicorn kills "
                "workers before their queued events reach Kafka"
            )
        if self.rate_limit_per_s > 0 and self.rate_limit_burst < self.max_batch:
            raise ValueError(
                "rate_limit_burst must be at least max_batch, or a valid batch of one user's "
                "reactions could never pass the rate limit"
            )
        if self.rate_limit_per_address_per_s > 0 and self.rate_limit_per_address_burst < (
            self.max_batch
        ):
            raise ValueError("rate_limit_per_address_burst must be at least max_batch")
        if self.sender_tokens != "off" and not self.token_keys().configured:
            raise ValueError(
                "sender tokens need a key: set token_secret, token_public_key or token_jwks_url"
            )
        if self.registry_mode == "closed" and self.admin_token is None:
            raise ValueError(
                "the closed stream registry needs admin_token, or no stream could ever be opened"
            )
        if self.producer_queue_max_messages < self.max_batch:
            raise ValueError(
                "producer_queue_max_messages must be at least max_batch, or a full batch could "
                "never be enqueued whole"
            )
        return self
