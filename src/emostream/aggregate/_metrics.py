"""Prometheus metrics of the aggregation, fed by a ``StreamingQueryListener`` in the driver.

Every series but ``emostream_aggregate_query_active`` carries the streaming query's name as
``query``. The backlog (Kafka records not yet
processed) is the aggregation's scaling signal: the Spark Kafka source commits no consumer-group
offsets, so no external lag exporter can see it. Spark reports it only when a micro-batch ends,
so :class:`BacklogProbe` also refreshes it from Kafka every few seconds; that way it keeps
growing while the query is stopped, restarting or stuck in a long batch.
"""

import logging
import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from wsgiref.simple_server import WSGIServer

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, start_http_server
from pyspark import SparkContext
from pyspark.sql.streaming.listener import JStreamingQueryListener, StreamingQueryListener

from emostream.aggregate._transforms import INPUT_METRICS
from emostream.common.kafka import AGGREGATE_GROUP_PREFIX, KafkaConnection

log = logging.getLogger(__name__)

_Q = ("query",)
# Unlabelled: the local stack's readiness probe looks for this exact sample.
QUERY_ACTIVE = Gauge("emostream_aggregate_query_active", "1 while the streaming query runs.")
INPUT_RATE = Gauge(
    "emostream_aggregate_input_rows_per_second", "Records/s arriving, last batch.", _Q
)
PROCESS_RATE = Gauge(
    "emostream_aggregate_processed_rows_per_second", "Records/s processed, last batch.", _Q
)
BATCH_DURATION = Gauge(
    "emostream_aggregate_batch_duration_seconds", "Duration of the last micro-batch.", _Q
)
BACKLOG = Gauge(
    "emostream_aggregate_offsets_behind_latest",
    "Records in the reactions topic not yet processed, summed over partitions.",
    _Q,
)
MAX_PARTITION_BACKLOG = Gauge(
    "emostream_aggregate_max_offsets_behind_latest",
    "Records not yet processed in the partition furthest behind.",
    _Q,
)
WATERMARK = Gauge(
    "emostream_aggregate_watermark_seconds", "Event-time watermark (epoch seconds).", _Q
)
STATE_ROWS = Gauge("emostream_aggregate_state_rows", "Open (stream, window) rows held.", _Q)
ROWS = Counter("emostream_aggregate_input_rows", "Records read from Kafka.", _Q)
INVALID = Counter(
    "emostream_aggregate_invalid_records", "Records dropped as unparseable or incomplete.", _Q
)
FUTURE = Counter(
    "emostream_aggregate_future_events",
    "Reactions whose event time was too far ahead: clamped to receive time, or dropped.",
    (*_Q, "action"),
)
LATE_ROWS = Counter(
    "emostream_aggregate_late_rows",
    "Reactions dropped by the watermark (their window had already closed).",
    _Q,
)
BATCHES = Counter("emostream_aggregate_batches", "Completed micro-batches.", _Q)
# Where the drain time goes: a micro-batch's wall time by Spark's phase, and the state store's
# work, which runs in the tasks (one store per state partition), so it is task time.
BATCH_PHASES = Counter(
    "emostream_aggregate_batch_phase_seconds",
    "Wall time of micro-batches by phase, as Spark reports it (durationMs: triggerExecution is "
    "the whole batch, addBatch the job on the executors, walCommit and commitOffsets the "
    "checkpoint writes, queryPlanning, latestOffset and getBatch the driver's own work).",
    ("query", "phase"),
)
STATE_STORE = Counter(
    "emostream_aggregate_state_store_seconds",
    "Task time of the state stores by operation (update, remove, commit), summed over the "
    "state partitions.",
    ("query", "operation"),
)

#: ``(query name, batch id) -> watermark ms`` of a micro-batch, read from its checkpoint.
WatermarkLookup = Callable[[str, int], int | None]
#: ``(topic, partition) -> offset``
Offsets = dict[tuple[str, int], int]


def _epoch_ms(iso: str | None) -> int:
    if not iso:
        return 0
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _offsets(offset: Any) -> Offsets:
    """A Kafka source offset as Spark's progress JSON holds it: ``{"topic": {"partition": n}}``."""
    if not isinstance(offset, dict):
        return {}
    return {
        (topic, int(p)): int(o)
        for topic, parts in offset.items()
        if isinstance(parts, dict)
        for p, o in parts.items()
    }


def records_behind(latest: Mapping[tuple[str, int], int], position: Offsets) -> list[int]:
    """Per partition, how many records lie between ``position`` and ``latest``."""
    return [max(0, latest[tp] - position.get(tp, 0)) for tp in latest]


def late_events(window_ends: Any, watermark_ms: int) -> int:
    """Events of a batch whose window ended at or before ``watermark_ms``.

    ``window_ends`` is the batch's histogram of window ends (``x``) and event counts (``y``).
    """
    return round(sum(float(b["y"]) for b in window_ends or () if b["x"] <= watermark_ms))


def progress_from_json(d: Mapping[str, Any]) -> SimpleNamespace:
    """A micro-batch's progress, from Spark's JSON, with the attributes the listener reads.

    Spark leaves out a rate it cannot compute (NaN), so every field has a default.
    """
    return SimpleNamespace(
        id=d["id"],
        name=d.get("name"),
        batchId=d["batchId"],
        batchDuration=d.get("batchDuration", 0),
        numInputRows=d.get("numInputRows", 0),
        inputRowsPerSecond=d.get("inputRowsPerSecond", math.nan),
        processedRowsPerSecond=d.get("processedRowsPerSecond", math.nan),
        durationMs=d.get("durationMs", {}),
        eventTime=d.get("eventTime", {}),
        stateOperators=[
            SimpleNamespace(
                numRowsTotal=s.get("numRowsTotal", 0),
                allUpdatesTimeMs=s.get("allUpdatesTimeMs", 0),
                allRemovalsTimeMs=s.get("allRemovalsTimeMs", 0),
                commitTimeMs=s.get("commitTimeMs", 0),
            )
            for s in d.get("stateOperators", ())
        ],
        sources=[
            SimpleNamespace(endOffset=s.get("endOffset"), latestOffset=s.get("latestOffset"))
            for s in d.get("sources", ())
        ],
        observedMetrics=d.get("observedMetrics", {}),
    )


class _ProgressAsJson(JStreamingQueryListener):
    """Hands each progress to the Python listener decoded from Spark's JSON.

    PySpark's own conversion reads every field of the Java progress through Py4J, and the
    observed metrics through a JVM class looked up by name on every call, which scans each
    jar on the class path for it: the listener thread took 15-60 % of a core at one micro-batch
    a second. Two Py4J calls and a JSON parse do the same.
    """

    def onQueryProgress(self, jevent: Any) -> None:  # noqa: N802 - Spark's callback name
        progress = progress_from_json(orjson.loads(jevent.progress().json()))
        event: Any = SimpleNamespace(progress=progress)  # what the listener reads of an event
        self.pylistener.onQueryProgress(event)


class ProgressListener(StreamingQueryListener):
    """Copies each micro-batch's progress into the metrics above, and remembers positions."""

    def __init__(self, watermark_lookup: WatermarkLookup | None = None) -> None:
        super().__init__()
        self._lookup = watermark_lookup
        self._lock = threading.Lock()
        self._watermarks: dict[str, tuple[int, int]] = {}
        self._positions: dict[str, Offsets] = {}
        self._backlogs: dict[str, int] = {}
        self._rates: dict[str, float] = {}

    @property
    def _jlistener(self) -> Any:
        """The Java side of this listener, fed through :class:`_ProgressAsJson`."""
        if not hasattr(self, "_jlistenerobj"):
            wrapper = SparkContext._jvm.PythonStreamingQueryListenerWrapper  # type: ignore[union-attr]
            self._jlistenerobj = wrapper(_ProgressAsJson(self))
        return self._jlistenerobj

    def positions(self) -> dict[str, Offsets]:
        """Per query name, the end offsets of its last completed micro-batch."""
        with self._lock:
            return {name: dict(offsets) for name, offsets in self._positions.items()}

    def backlog(self, name: str) -> tuple[int, float]:
        """The query's records behind the latest offsets, and the records/s its last micro-batch
        with input processed: what the executor autoscaler reads."""
        with self._lock:
            return self._backlogs.get(name, 0), self._rates.get(name, 0.0)

    def note_backlog(self, name: str, behind: list[int]) -> None:
        """Record a backlog measurement (per partition) of the query ``name``."""
        with self._lock:
            self._backlogs[name] = sum(behind)
        BACKLOG.labels(name).set(sum(behind))
        MAX_PARTITION_BACKLOG.labels(name).set(max(behind, default=0))

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Mark the query active."""
        QUERY_ACTIVE.set(1)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Record rates, duration, backlog, lateness and state size of the finished batch."""
        try:
            self._record(event.progress)
        except Exception:  # a listener must never break the query: log instead
            log.exception("could not record query progress")

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Nothing to record while idle."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Mark the query stopped."""
        QUERY_ACTIVE.set(0)

    def _record(self, p: Any) -> None:
        name = p.name or str(p.id)
        BATCHES.labels(name).inc()
        ROWS.labels(name).inc(p.numInputRows)
        INPUT_RATE.labels(name).set(_finite(p.inputRowsPerSecond))
        PROCESS_RATE.labels(name).set(_finite(p.processedRowsPerSecond))
        if p.numInputRows > 0:
            with self._lock:
                self._rates[name] = _finite(p.processedRowsPerSecond)
        BATCH_DURATION.labels(name).set(p.batchDuration / 1000)
        for phase, ms in (p.durationMs or {}).items():
            BATCH_PHASES.labels(name, phase).inc(ms / 1000)
        for state in p.stateOperators:
            STATE_ROWS.labels(name).set(state.numRowsTotal)
            for operation, ms in (
                ("update", state.allUpdatesTimeMs),
                ("remove", state.allRemovalsTimeMs),
                ("commit", state.commitTimeMs),
            ):
                STATE_STORE.labels(name, operation).inc(ms / 1000)
        self._record_backlog(name, p.sources)
        watermark = _epoch_ms((p.eventTime or {}).get("watermark"))
        WATERMARK.labels(name).set(watermark / 1000)
        previous = self._previous_watermark(str(p.id), name, p.batchId, watermark)
        observed = (p.observedMetrics or {}).get(INPUT_METRICS)
        if observed is not None:
            INVALID.labels(name).inc(observed["invalid"])
            FUTURE.labels(name, "clamped").inc(observed["clamped"])
            FUTURE.labels(name, "dropped").inc(observed["ahead"])
            LATE_ROWS.labels(name).inc(late_events(observed["window_ends"], previous))

    def _record_backlog(self, name: str, sources: Any) -> None:
        end: Offsets = {}
        latest: Offsets = {}
        for source in sources:
            end.update(_offsets(source.endOffset))
            latest.update(_offsets(source.latestOffset))
        if not end:
            return
        with self._lock:
            self._positions[name] = end
        if not latest:  # a replayed batch reports no latest offsets; the probe fills in
            return
        self.note_backlog(name, records_behind(latest, end))

    def _previous_watermark(self, query_id: str, name: str, batch_id: int, current: int) -> int:
        """The watermark Spark filtered late events with: the previous micro-batch's."""
        with self._lock:
            last = self._watermarks.get(query_id)
            self._watermarks[query_id] = (batch_id, current)
        if batch_id == 0:
            return 0
        if last is not None and last[0] == batch_id - 1:
            return last[1]
        # The first batch after a (re)start: the previous batch ran in another run (or process).
        found = self._lookup(name, batch_id - 1) if self._lookup is not None else None
        return current if found is None else found


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0


class BacklogProbe:
    """Refreshes the backlog gauge from Kafka's latest offsets every ``interval_s`` seconds.

    Positions come from the listener (the end offsets of each query's last completed batch),
    so the probe measures exactly what a restarted query still has to read.
    """

    def __init__(self, kafka: KafkaConnection, listener: ProgressListener, interval_s: float):
        self._kafka = kafka
        self._listener = listener
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-probe", daemon=True)
        self._consumer: Consumer | None = None

    def start(self) -> None:
        """Start probing in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and close the Kafka client."""
        self._stop.set()
        self._thread.join(timeout=self._interval_s + 10)

    def refresh(self) -> None:
        """Set every known query's backlog from Kafka's current latest offsets."""
        for name, position in self._listener.positions().items():
            latest = self._latest(position)
            if latest:
                self._listener.note_backlog(name, records_behind(latest, position))

    def _latest(self, position: Offsets) -> Offsets:
        if self._consumer is None:
            self._consumer = Consumer(
                {
                    **self._kafka.librdkafka(),
                    "group.id": f"{AGGREGATE_GROUP_PREFIX}-backlog-probe",
                    "enable.auto.commit": False,
                }
            )
        latest: Offsets = {}
        try:
            for topic, partition in position:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=5, cached=False
                )
                latest[(topic, partition)] = high
        except KafkaException as exc:
            log.warning("could not read latest offsets", extra={"error": str(exc)})
            return {}
        return latest

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval_s):
                self.refresh()
        finally:
            if self._consumer is not None:
                self._consumer.close()


def serve_metrics(port: int, addr: str) -> WSGIServer:
    """Expose the metrics on ``addr:port`` (``metrics_host``: loopback on a laptop, every
    interface in a pod, where Prometheus scrapes it)."""
    server, _thread = start_http_server(port, addr)
    log.info("metrics endpoint up", extra={"host": addr, "port": port})
    return server
