"""Prometheus metrics of fanout, correct with any number of gunicorn workers.

Nothing is written to a metric per delivery: in multiprocess mode every ``inc()`` or
``observe()`` takes a lock and writes a file-backed page, which at tens of thousands of writes a
second cost more than the writes themselves. So the feeds count swarms sent in plain integers
(:attr:`FanoutMetrics.delivered`), the write latencies are observed on a sample of connections
(one in ``latency_sample_every``, every write of those), and failed writes (rare) are counted
as they happen. What the feeds, the hub, the consumer and presence count (messages sent,
connections, drops, consumed messages) is copied into the metrics by :meth:`FanoutMetrics.sync`,
at each scrape and every presence period.

Under gunicorn, a scrape of any worker reports the whole pod
(:class:`~emostream.common.metrics.ServerMetrics`); other workers' state values are at most one
presence period old.

Per-stream series are left out on purpose: stream ids are unbounded and come and go, and in
multiprocess mode a series once written can never be removed, so a label per stream would grow
without limit. Per-stream viewer counts live in Redis (see ``_presence``); the metrics give the
totals and the largest stream.
"""

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from emostream.common.metrics import ServerMetrics
from emostream.common.tokens import REASONS as TOKEN_REASONS
from emostream.fanout._hub import EVICTION_REASONS, TRANSPORTS, Hub
from emostream.fanout._presence import PresenceStats
from emostream.fanout._upstream import UpstreamStats

#: From "instant" to "a viewer would notice": the end-to-end budget is about one second.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: A tap shows up on screens after a window closes and a micro-batch runs, so the
#: reaction-to-viewer budget is a few seconds; finer below 1 s, up to a stalled pipeline's 30 s.
_EVENT_TO_VIEWER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30)
#: Why a subscription ended (values of the ``reason`` label, declared so rates start at zero).
END_REASONS = ("overflow", "drain", "shutdown", "closed")
#: Running totals kept by the hub, the consumer and presence, mirrored into counters by
#: :meth:`FanoutMetrics.sync`: (source, attribute) -> (metric name, help).
_MIRRORED_TOTALS = {
    ("hub", "rejected"): (
        "emostream_fanout_rejected_connections",
        "Connections answered 503 because the worker was full or draining.",
    ),
    ("hub", "published"): (
        "emostream_fanout_swarms_published",
        "Distinct swarms put in replay buffers and offered to viewers.",
    ),
    ("hub", "duplicates"): (
        "emostream_fanout_upstream_duplicates",
        "Swarms dropped because their id was already delivered (replayed micro-batches).",
    ),
    ("hub", "stale"): (
        "emostream_fanout_upstream_stale",
        "Swarms dropped because their id is older than the stream's latest micro-batch.",
    ),
    ("hub", "forgotten"): (
        "emostream_fanout_replay_streams_forgotten",
        "Replay buffers dropped because their stream ended (and had no viewers in the worker).",
    ),
    ("upstream", "consumed"): (
        "emostream_fanout_upstream_messages_consumed",
        "Messages read from the swarms topic.",
    ),
    ("upstream", "invalid"): (
        "emostream_fanout_upstream_invalid",
        "Messages of the swarms topic skipped as malformed.",
    ),
    ("upstream", "restarts"): (
        "emostream_fanout_upstream_restarts",
        "Times the swarm consumer was recreated after a failure.",
    ),
    ("presence", "refreshes"): (
        "emostream_fanout_presence_refreshes",
        "Viewer counts reported to and read back from Redis.",
    ),
    ("presence", "failures"): (
        "emostream_fanout_presence_refresh_failures",
        "Presence refreshes that failed (Redis unreachable or slow); feeds go on with the last "
        "known counts.",
    ),
}


@dataclass(frozen=True)
class StateSources:
    """Where :meth:`FanoutMetrics.sync` reads the worker's state from."""

    hub: Hub
    upstream: Callable[[], UpstreamStats | None]
    presence: Callable[[], PresenceStats | None]
    ready: Callable[[], bool]
    draining: Callable[[], bool]


class _CounterMirror:
    """Advances a counter to a running total kept elsewhere (counters only go up by deltas)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen: dict[tuple[str, ...], int] = {}

    def declare(self, *labels: str) -> None:
        """Create the labelled series at zero, so its rate is defined before the first event."""
        self._counter.labels(*labels)

    def set_total(self, total: int, *labels: str) -> None:
        delta = total - self._seen.get(labels, 0)
        if delta > 0:
            (self._counter.labels(*labels) if labels else self._counter).inc(delta)
            self._seen[labels] = total


class FanoutMetrics(ServerMetrics):
    """The ``emostream_fanout_*`` metrics.

    ``multiprocess_dir`` is the directory of prometheus_client's multiprocess mode (it must be
    in the environment before prometheus_client is imported; gunicorn_conf sees to that).
    """

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        super().__init__(multiprocess_dir, "fanout")
        self._sources: StateSources | None = None
        r = self.registry

        def mirror(name: str, documentation: str, labels: tuple[str, ...] = ()) -> _CounterMirror:
            return _CounterMirror(Counter(name, documentation, labels, registry=r))

        #: Swarms written to viewers by this worker, by transport; the feeds add to it and
        #: sync() copies it into ``emostream_fanout_messages_sent_total``.
        self.delivered: dict[str, int] = dict.fromkeys(TRANSPORTS, 0)
        self._sent = mirror(
            "emostream_fanout_messages_sent",
            "Swarms written to viewers, by transport.",
            ("transport",),
        )
        # Observed on the sampled connections, at each write.
        self.delivery_lag = Histogram(
            "emostream_fanout_delivery_lag_seconds",
            "From the aggregation emitting a swarm to fanout writing it to a viewer's socket, "
            "on a sample of connections (live swarms only; a resumed backlog measures the "
            "viewer's absence, not the pipeline).",
            ["transport"],
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.event_to_viewer = Histogram(
            "emostream_fanout_event_to_viewer_seconds",
            "From ingest receiving the newest reaction a live swarm counts to fanout writing "
            "the swarm to a viewer's socket, on a sample of connections: how long a tap takes "
            "to reach the screens.",
            ["transport"],
            buckets=_EVENT_TO_VIEWER_BUCKETS,
            registry=r,
        )
        # Counted as it happens.
        self.write_failures = Counter(
            "emostream_fanout_write_failures",
            "Feeds ended because a write to the viewer timed out or failed other than by the "
            "viewer closing (it stopped reading, or its host vanished), by transport.",
            ["transport"],
            registry=r,
        )
        self.viewers_left = Counter(
            "emostream_fanout_viewers_left",
            "Feeds ended by the viewer closing its connection (a WebSocket close, or a write "
            "meeting its reset), by transport: ordinary churn, not a failure.",
            ["transport"],
            registry=r,
        )
        self.token_rejections = Counter(
            "emostream_fanout_token_rejections",
            "Feed requests refused for a missing, malformed, expired or wrong viewer token, by "
            "reason.",
            ["reason"],
            registry=r,
        )

        # Copied from the worker's state by sync().
        self.connections = Gauge(
            "emostream_fanout_connections",
            "Open streaming connections, by transport.",
            ["transport"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.stream_subscriptions = Gauge(
            "emostream_fanout_stream_subscriptions",
            "Streams with at least one viewer, counted once per worker that serves them.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.max_stream_viewers = Gauge(
            "emostream_fanout_max_stream_viewers",
            "Viewers, across every pod, of the most watched stream this pod serves.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.streams = Gauge(
            "emostream_fanout_streams",
            "Streams with a replay buffer or a viewer in a worker (the most of any worker); "
            'replay_max_streams bounds it (emostream_fanout_replay_limit{bound="streams"}).',
            registry=r,
            multiprocess_mode="livemax",
        )
        self.replay_bytes = Gauge(
            "emostream_fanout_replay_bytes",
            "Bytes of swarms in a worker's replay buffers (the most of any worker; text in "
            "memory plus a fixed overhead per swarm); replay_max_bytes bounds it "
            '(emostream_fanout_replay_limit{bound="bytes"}).',
            registry=r,
            multiprocess_mode="livemax",
        )
        self.replay_limit = Gauge(
            "emostream_fanout_replay_limit",
            "A worker's replay memory bounds: bound=streams is replay_max_streams, bound=bytes "
            "replay_max_bytes.",
            ["bound"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.draining = Gauge(
            "emostream_fanout_draining",
            "1 while a worker is draining its feeds after SIGTERM.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.upstream_ready = Gauge(
            "emostream_fanout_upstream_ready",
            "1 when every live worker reads every partition of the swarms topic.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.upstream_lag_messages = Gauge(
            "emostream_fanout_upstream_lag_messages",
            "Swarm messages in Kafka not yet consumed (end offset minus position, summed over "
            "partitions; the most of any worker).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.upstream_last_lag = Gauge(
            "emostream_fanout_upstream_last_swarm_lag_seconds",
            "From the aggregation emitting the latest consumed swarm to fanout consuming it "
            "(the most of any worker).",
            registry=r,
            multiprocess_mode="livemax",
        )
        self._slow = mirror(
            "emostream_fanout_slow_client_disconnects",
            "Connections closed because their queue overflowed, by transport.",
            ("transport",),
        )
        self._ended = mirror(
            "emostream_fanout_feeds_ended",
            "Feeds ended, by transport and reason (overflow: too slow; drain: SIGTERM; "
            "shutdown: worker stopped; closed: the viewer left or its write failed).",
            ("transport", "reason"),
        )
        self._evictions = mirror(
            "emostream_fanout_replay_evictions",
            "Replay memory dropped to keep a worker within a bound, by the bound (reason: "
            "streams or bytes): buffers of whole streams without viewers, or, when every "
            "buffered stream has viewers, single swarms trimmed from the largest buffers. A "
            "viewer resuming onto the worker misses what was dropped.",
            ("reason",),
        )
        #: Unlabelled running totals: (source, its attribute) -> the counter that mirrors it.
        self._totals = {
            key: mirror(name, documentation)
            for key, (name, documentation) in _MIRRORED_TOTALS.items()
        }
        for transport in TRANSPORTS:
            self._sent.declare(transport)
            self.delivery_lag.labels(transport)
            self.event_to_viewer.labels(transport)
            self.write_failures.labels(transport)
            self.viewers_left.labels(transport)
            self.connections.labels(transport)
            self._slow.declare(transport)
            for reason in END_REASONS:
                self._ended.declare(transport, reason)
        for reason in TOKEN_REASONS:
            self.token_rejections.labels(reason)
        for reason in EVICTION_REASONS:
            self._evictions.declare(reason)

    def track(self, sources: StateSources) -> None:
        """Where :meth:`sync` reads the worker's state from."""
        self._sources = sources

    def sync(self) -> None:
        """Copy the worker's state into the metrics (in multiprocess mode: into its files)."""
        for transport, n in self.delivered.items():
            self._sent.set_total(n, transport)
        src = self._sources
        if src is None:
            return
        hub = src.hub
        for transport, n in hub.connections().items():
            self.connections.labels(transport).set(n)
        self.stream_subscriptions.set(len(hub.viewer_counts()))
        self.streams.set(hub.stream_count())
        self.replay_bytes.set(hub.replay_bytes())
        for bound, limit in hub.replay_limits.items():
            self.replay_limit.labels(bound).set(limit)
        self.draining.set(1 if src.draining() else 0)
        self.upstream_ready.set(1 if src.ready() else 0)
        stats = hub.stats
        for transport in TRANSPORTS:
            self._slow.set_total(stats.slow_disconnects[transport], transport)
        for (transport, reason), n in list(stats.ended.items()):
            self._ended.set_total(n, transport, reason)
        for reason in EVICTION_REASONS:
            self._evictions.set_total(stats.evictions[reason], reason)
        up = src.upstream() or UpstreamStats()
        self.upstream_lag_messages.set(up.lag_messages)
        self.upstream_last_lag.set(up.last_swarm_lag_s)
        presence = src.presence()
        sources = {"hub": stats, "upstream": up, "presence": presence}
        for (source, attribute), counter in self._totals.items():
            if (values := sources[source]) is not None:
                counter.set_total(getattr(values, attribute))
        if presence is not None:
            self.max_stream_viewers.set(presence.max_viewers)
        else:
            self.max_stream_viewers.set(max(hub.viewer_counts().values(), default=0))

    def exposition(self) -> tuple[bytes, str]:
        """The worker's state, synced first, and every worker's metrics in the text format."""
        self.sync()
        return super().exposition()
