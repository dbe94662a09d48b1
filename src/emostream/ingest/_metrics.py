"""Prometheus metrics of ingest, in a registry per app so each test sees only its own counts.

Ingest scales on its own load signal, so the request and event counters here are what an
autoscaler and the Grafana dashboard read. With several gunicorn workers each process keeps its
own registry; a scrape sees the worker that answered it.
"""

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Values of the ``reason`` label of rejected events, declared up front so rates start at zero.
REJECT_REASONS = (
    "malformed_json",
    "media_type",
    "too_large",
    "shape",
    "batch_size",
    "user_id",
    "emoji",
    "timestamp",
    "stream_id",
    "backpressure",
)
APIS = ("send_emoji", "v1")
CLAMP_DIRECTIONS = ("future", "past")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The ``emostream_ingest_*`` metrics and the registry that holds them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "emostream_ingest_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "emostream_ingest_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.accepted = Counter(
            "emostream_ingest_events_accepted",
            "Reactions enqueued for Kafka, by API (send_emoji or v1).",
            ["api"],
            registry=r,
        )
        self.rejected = Counter(
            "emostream_ingest_events_rejected",
            "Reactions refused, by reason (bad field, body, or backpressure).",
            ["reason"],
            registry=r,
        )
        self.clamped = Counter(
            "emostream_ingest_events_clamped",
            "Reactions whose event time was outside the trusted window and was set to receive "
            "time, by direction (future or past).",
            ["direction"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "emostream_ingest_producer_queue_depth",
            "Messages in the Kafka producer's local queue (not yet acknowledged).",
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "emostream_ingest_delivery_latency_seconds",
            "Time from produce() to the broker's acknowledgement.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_errors = Counter(
            "emostream_ingest_delivery_errors",
            "Messages Kafka did not acknowledge (lost unless resent), by librdkafka error name.",
            ["error"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for api in APIS:
            self.accepted.labels(api)
        for direction in CLAMP_DIRECTIONS:
            self.clamped.labels(direction)

    def track_queue_depth(self, depth: Callable[[], int]) -> None:
        """Read the queue depth gauge from ``depth`` at each scrape."""
        self.queue_depth.set_function(lambda: float(depth()))

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
