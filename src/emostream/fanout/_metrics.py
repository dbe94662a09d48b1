"""Prometheus metrics of fanout, in a registry per app so each test sees only its own counts.

Counts the hub and the consumer already keep (connections, drops, consumed messages) are read at
scrape time by a collector instead of being updated on the hot path; only what happens per write
(messages sent, delivery lag) is counted as it happens. With several gunicorn workers each
process keeps its own registry; a scrape sees the worker that answered it.
"""

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from emostream.fanout._hub import TRANSPORTS, Hub
from emostream.fanout._upstream import UpstreamStats

#: From "instant" to "a viewer would notice": the end-to-end budget is about one second.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class _StateCollector(Collector):
    """Gauges and counters read from the hub and the consumer when Prometheus scrapes."""

    def __init__(
        self,
        hub: Hub,
        upstream: Callable[[], UpstreamStats | None],
        ready: Callable[[], bool],
    ) -> None:
        self._hub = hub
        self._upstream = upstream
        self._ready = ready

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "emostream_fanout_connections",
            "Open streaming connections, by transport.",
            labels=["transport"],
        )
        for transport, n in self._hub.connections().items():
            connections.add_metric([transport], n)
        yield connections

        stats = self._hub.stats
        slow = CounterMetricFamily(
            "emostream_fanout_slow_client_disconnects",
            "Connections closed because their queue overflowed, by transport.",
            labels=["transport"],
        )
        for transport in TRANSPORTS:
            slow.add_metric([transport], stats.slow_disconnects[transport])
        yield slow
        yield CounterMetricFamily(
            "emostream_fanout_rejected_connections",
            "Connections answered 503 because the worker was full or stopping.",
            value=stats.rejected,
        )
        yield GaugeMetricFamily(
            "emostream_fanout_streams",
            "Streams with a replay buffer or a viewer in this worker.",
            value=self._hub.stream_count(),
        )
        yield CounterMetricFamily(
            "emostream_fanout_swarms_published",
            "Distinct swarms put in replay buffers and offered to viewers.",
            value=stats.published,
        )
        yield CounterMetricFamily(
            "emostream_fanout_upstream_duplicates",
            "Swarms dropped because their id was already delivered (replayed micro-batches).",
            value=stats.duplicates,
        )
        yield CounterMetricFamily(
            "emostream_fanout_upstream_stale",
            "Swarms dropped because their id is older than the stream's latest micro-batch.",
            value=stats.stale,
        )

        up = self._upstream() or UpstreamStats()
        yield CounterMetricFamily(
            "emostream_fanout_upstream_messages_consumed",
            "Messages read from the swarms topic.",
            value=up.consumed,
        )
        yield CounterMetricFamily(
            "emostream_fanout_upstream_invalid",
            "Messages of the swarms topic skipped as malformed.",
            value=up.invalid,
        )
        yield CounterMetricFamily(
            "emostream_fanout_upstream_restarts",
            "Times the swarm consumer was recreated after a failure.",
            value=up.restarts,
        )
        yield GaugeMetricFamily(
            "emostream_fanout_upstream_ready",
            "1 when every partition of the swarms topic is assigned and read.",
            value=1.0 if self._ready() else 0.0,
        )


class FanoutMetrics:
    """The ``emostream_fanout_*`` metrics and the registry that holds them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.messages_sent = Counter(
            "emostream_fanout_messages_sent",
            "Swarms written to viewers, by transport.",
            ["transport"],
            registry=self.registry,
        )
        self.delivery_lag = Histogram(
            "emostream_fanout_delivery_lag_seconds",
            "From the aggregation emitting a swarm to fanout writing it to a viewer (live "
            "swarms only; a resumed backlog measures the viewer's absence, not the pipeline).",
            ["transport"],
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        for transport in TRANSPORTS:
            self.messages_sent.labels(transport)
            self.delivery_lag.labels(transport)

    def track(
        self,
        hub: Hub,
        upstream: Callable[[], UpstreamStats | None],
        ready: Callable[[], bool],
    ) -> None:
        """Expose the hub's and the consumer's own counts at each scrape."""
        self.registry.register(_StateCollector(hub, upstream, ready))

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in the Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
