"""Prometheus metrics of ingest, correct with any number of gunicorn workers.

Ingest scales on its own load signal, so the request and event counters here are what an
autoscaler and the Grafana dashboard read, and they must cover every worker process, not just
the one that happens to answer a scrape: :class:`~emostream.common.metrics.ServerMetrics` sees
to that.
"""

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from emostream.common.metrics import ServerMetrics
from emostream.common.tokens import REASONS as TOKEN_REASONS

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
    "rate_limited",
    "backpressure",
    "token",
    "stream_not_live",
    "live_stream_cap",
    "new_stream_rate",
)

APIS = ("send_emoji", "v1")
CLAMP_DIRECTIONS = ("future", "past")
#: Values of the ``method`` label; any other method counts as ``other``.
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
#: Why a request went through without a rate-limit check.
UNCHECKED_REASONS = ("redis_down",)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics(ServerMetrics):
    """The ``emostream_ingest_*`` metrics.

    ``multiprocess_dir`` is the directory prometheus_client's multiprocess mode uses (it must be
    set in the environment before prometheus_client is imported; gunicorn_conf does that).
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        super().__init__(multiprocess_dir, "ingest")
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
            "Reactions refused, by reason (bad field, body, rate limit, or backpressure).",
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
        self.unchecked = Counter(
            "emostream_ingest_rate_limit_unchecked_requests",
            "Requests whose rate limit was decided by their process alone, not checked against "
            "the buckets shared through Redis, because Redis failed (redis_down).",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "emostream_ingest_producer_queue_depth",
            "Messages in the Kafka producers' local queues, not yet acknowledged (sum over the "
            "workers).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.delivery_latency = Gauge(
            "emostream_ingest_delivery_latency_seconds",
            "Time from produce to the broker's acknowledgement, by stage (queue: waiting in the "
            "producer for a batch; outbuf: a request waiting to be sent; rtt: the broker's "
            "answer) and quantile over librdkafka's last statistics window; the worst worker.",
            ["stage", "quantile"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.delivery_errors = Counter(
            "emostream_ingest_delivery_errors",
            "Messages Kafka did not acknowledge (lost unless resent), by librdkafka error name.",
            ["error"],
            registry=r,
        )
        self.token_rejections = Counter(
            "emostream_ingest_token_rejections",
            "Requests whose sender token was refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.live_streams = Gauge(
            "emostream_ingest_registry_live_streams",
            "Streams the stream registry holds live, as this deployment last read it.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.registry_limit = Gauge(
            "emostream_ingest_registry_limit",
            "The stream registry's bounds, by bound (live_streams; new_streams_per_min per "
            "client); with registry_live_streams, how close a flood of streams is to the cap.",
            ["bound"],
            registry=r,
            multiprocess_mode="livemax",
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        for api in APIS:
            self.accepted.labels(api)
        for direction in CLAMP_DIRECTIONS:
            self.clamped.labels(direction)
        for reason in UNCHECKED_REASONS:
            self.unchecked.labels(reason)
        for reason in TOKEN_REASONS:
            self.token_rejections.labels(reason)
        # The usual way an accepted event is lost (Kafka away longer than the delivery timeout).
        self.delivery_errors.labels("_MSG_TIMED_OUT")
        # Label lookups cost more than the increments, and (route, method, status) are few.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def count_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered request: its route template, method, status code and duration."""
        if method not in HTTP_METHODS:
            method = "other"  # a client cannot add label values at will
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(status)),
                self.request_seconds.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)
