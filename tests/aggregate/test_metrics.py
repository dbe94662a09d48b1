"""The progress listener's arithmetic: backlog, late events, the watermark Spark filtered with."""

import math
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY

from emostream.aggregate._metrics import (
    ProgressListener,
    late_events,
    progress_from_json,
    records_behind,
)
from emostream.aggregate._transforms import INPUT_METRICS
from emostream.common.events import iso_utc

T0 = 1_764_000_000_000


def _progress(name: str, batch: int, watermark: int, **kw: Any) -> SimpleNamespace:
    end = kw.get("end", {"r": {"0": 10, "1": 20}})
    latest = kw.get("latest", end)
    observed = {
        "records": 5,
        "invalid": kw.get("invalid", 0),
        "clamped": 0,
        "ahead": 0,
        "window_ends": kw.get("window_ends", []),
    }
    return SimpleNamespace(
        name=name,
        id="query-id-" + name,
        batchId=batch,
        numInputRows=5,
        inputRowsPerSecond=float("nan"),
        processedRowsPerSecond=10.0,
        batchDuration=300,
        durationMs={"triggerExecution": 300, "addBatch": 250, "walCommit": 20},
        stateOperators=[
            SimpleNamespace(
                numRowsTotal=7, allUpdatesTimeMs=40, allRemovalsTimeMs=5, commitTimeMs=60
            )
        ],
        sources=[SimpleNamespace(endOffset=end, latestOffset=latest)],
        eventTime={"watermark": iso_utc(watermark)},
        observedMetrics={INPUT_METRICS: observed},
    )


def _value(metric: str, name: str) -> float:
    return REGISTRY.get_sample_value(metric, {"query": name}) or 0.0


def test_late_events_are_those_whose_window_ended_by_the_watermark() -> None:
    """A window ending exactly at the watermark is closed; one ending after it is open."""
    bins = [{"x": T0, "y": 3.0}, {"x": T0 + 2000, "y": 4.0}, {"x": T0 + 4000, "y": 1.0}]
    assert late_events(bins, T0 + 2000) == 7
    assert late_events(bins, T0 - 1) == 0
    assert late_events(None, T0) == 0


def test_backlog_is_the_records_between_position_and_latest() -> None:
    """Per partition, never negative; a partition not yet read counts from zero."""
    latest = {("r", 0): 100, ("r", 1): 50, ("r", 2): 7}
    assert records_behind(latest, {("r", 0): 90, ("r", 1): 60}) == [10, 0, 7]


def test_listener_filters_late_events_with_the_previous_batchs_watermark() -> None:
    """Spark drops events whose window ended by the previous batch's watermark, not this one's."""
    lookups: list[int] = []

    def lookup(_name: str, batch: int) -> int:
        lookups.append(batch)
        return T0 + 2000

    listener = ProgressListener(lookup)
    name = "metrics_unit_late"
    bins = [{"x": T0 + 2000, "y": 2.0}, {"x": T0 + 4000, "y": 5.0}]
    # First batch of this run: the previous watermark comes from the checkpoint.
    listener.onQueryProgress(
        SimpleNamespace(progress=_progress(name, 8, T0 + 4000, window_ends=bins))
    )
    assert lookups == [7]
    assert _value("emostream_aggregate_late_rows_total", name) == 2
    # Next batch: the previous batch's watermark (T0 + 4000) is known in memory.
    listener.onQueryProgress(
        SimpleNamespace(progress=_progress(name, 9, T0 + 6000, window_ends=bins))
    )
    assert lookups == [7]
    assert _value("emostream_aggregate_late_rows_total", name) == 2 + 7


def test_listener_records_backlog_rates_and_positions() -> None:
    """Backlog sums the partitions; a NaN rate becomes 0; positions feed the backlog probe."""
    listener = ProgressListener()
    name = "metrics_unit_backlog"
    p = _progress(
        name, 0, 0, end={"r": {"0": 10, "1": 20}}, latest={"r": {"0": 15, "1": 40}}, invalid=2
    )
    listener.onQueryProgress(SimpleNamespace(progress=p))
    assert _value("emostream_aggregate_offsets_behind_latest", name) == 25
    assert _value("emostream_aggregate_max_offsets_behind_latest", name) == 20
    assert _value("emostream_aggregate_input_rows_per_second", name) == 0
    assert _value("emostream_aggregate_invalid_records_total", name) == 2
    assert _value("emostream_aggregate_state_rows", name) == 7
    assert listener.positions()[name] == {("r", 0): 10, ("r", 1): 20}


def test_listener_sums_batch_phases_and_state_store_time() -> None:
    """Each batch adds its phases' wall time and its state stores' task time, in seconds."""
    listener = ProgressListener()
    name = "metrics_unit_phases"
    for batch in (1, 2):
        listener.onQueryProgress(SimpleNamespace(progress=_progress(name, batch, T0)))

    def phase(metric: str, label: str, value: str) -> float:
        return REGISTRY.get_sample_value(metric, {"query": name, label: value}) or 0.0

    assert phase("emostream_aggregate_batch_phase_seconds_total", "phase", "addBatch") == 0.5
    assert phase("emostream_aggregate_batch_phase_seconds_total", "phase", "walCommit") == 0.04
    assert phase("emostream_aggregate_state_store_seconds_total", "operation", "commit") == 0.12
    assert phase("emostream_aggregate_state_store_seconds_total", "operation", "update") == 0.08


def test_progress_from_spark_json_feeds_the_listener() -> None:
    """Spark's JSON of a progress (rates it cannot compute left out) records as the object does."""
    name = "from-json"
    doc = {
        "id": "query-id-json",
        "runId": "run",
        "name": name,
        "batchId": 3,
        "batchDuration": 300,
        "numInputRows": 5,
        "processedRowsPerSecond": 10.0,
        "durationMs": {"triggerExecution": 300, "addBatch": 250},
        "eventTime": {"watermark": iso_utc(T0)},
        "stateOperators": [
            {"numRowsTotal": 7, "allUpdatesTimeMs": 40, "allRemovalsTimeMs": 5, "commitTimeMs": 60}
        ],
        "sources": [{"endOffset": {"r": {"0": 10}}, "latestOffset": {"r": {"0": 25}}}],
        "observedMetrics": {
            INPUT_METRICS: {"records": 5, "invalid": 2, "clamped": 0, "ahead": 0, "window_ends": []}
        },
    }
    progress = progress_from_json(doc)
    assert math.isnan(progress.inputRowsPerSecond)
    listener = ProgressListener()
    listener.onQueryProgress(SimpleNamespace(progress=progress))
    assert _value("emostream_aggregate_invalid_records_total", name) == 2
    assert _value("emostream_aggregate_state_rows", name) == 7
    assert listener.positions()[name] == {("r", 0): 10}
    assert listener.backlog(name)[0] == 15
