"""Prometheus metrics of the aggregation, fed by a ``StreamingQueryListener`` in the driver.

The backlog (offsets behind latest) is the aggregation's scaling signal: the Spark Kafka source
commits no consumer-group offsets, so no external lag exporter can see it.
"""

import logging
from typing import Any

from prometheus_client import Counter, Gauge, start_http_server
from pyspark.sql.streaming.listener import StreamingQueryListener

log = logging.getLogger(__name__)

QUERY_ACTIVE = Gauge("emostream_aggregate_query_active", "1 while the streaming query runs.")
INPUT_RATE = Gauge("emostream_aggregate_input_rows_per_second", "Rows/s arriving, last batch.")
PROCESS_RATE = Gauge("emostream_aggregate_processed_rows_per_second", "Rows/s processed.")
BATCH_DURATION = Gauge("emostream_aggregate_batch_duration_seconds", "Last micro-batch duration.")
BACKLOG = Gauge(
    "emostream_aggregate_offsets_behind_latest", "Kafka records not yet read (max per partition)."
)
STATE_ROWS = Gauge("emostream_aggregate_state_rows", "Window state rows held.")
ROWS = Counter("emostream_aggregate_input_rows", "Reactions read from Kafka.")
LATE_ROWS = Counter("emostream_aggregate_late_rows", "Reactions dropped behind the watermark.")
BATCHES = Counter("emostream_aggregate_batches", "Completed micro-batches.")


class ProgressListener(StreamingQueryListener):
    """Copies each micro-batch's progress into the gauges and counters above."""

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Mark the query active."""
        QUERY_ACTIVE.set(1)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Record rates, duration, backlog and state size of the finished micro-batch."""
        p = event.progress
        BATCHES.inc()
        ROWS.inc(p.numInputRows)
        INPUT_RATE.set(p.inputRowsPerSecond or 0.0)
        PROCESS_RATE.set(p.processedRowsPerSecond or 0.0)
        BATCH_DURATION.set(p.batchDuration / 1000)
        for state in p.stateOperators:
            STATE_ROWS.set(state.numRowsTotal)
            LATE_ROWS.inc(state.numRowsDroppedByWatermark)
        for source in p.sources:
            behind = (source.metrics or {}).get("maxOffsetsBehindLatest")
            if behind is not None:
                BACKLOG.set(float(behind))

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Nothing to record while idle."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802 - Spark's callback name
        """Mark the query stopped."""
        QUERY_ACTIVE.set(0)


def serve_metrics(port: int) -> None:
    """Expose the metrics on ``port`` (all interfaces, so Prometheus can scrape the driver pod)."""
    start_http_server(port)
    log.info("metrics endpoint up", extra={"port": port})
