"""Event-time semantics on a real broker and the session's Spark: order, lateness, clocks.

One query on its own topics plays a timeline whose watermark the test controls (the watermark is
the largest event time seen minus 2 s, global to the query), then each test checks one aspect
of the swarms it published and the metrics it reported.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any

import pytest
from confluent_kafka import Producer
from pyspark.sql import SparkSession

from emostream.aggregate._metrics import ProgressListener
from emostream.common.events import Reaction, iso_utc, now_ms
from tests.aggregate.conftest import (
    QUERY_POLL_S,
    QUERY_WAIT_S,
    WINDOW_MS,
    Scenario,
    final_counts,
    make_scenario,
    watermark_ms,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

_ids = count()


def _r(stream: str, emoji: str, ts: int, rts: int | None = None) -> Reaction:
    n = next(_ids)
    return Reaction(f"e{n}", stream, f"u{n}", emoji, ts, ts + 50 if rts is None else rts)


@dataclass
class Timeline:
    """What the scenario published and counted."""

    w0: int
    now: int
    streams: dict[str, str]
    swarms: list[dict[str, Any]]
    expected: dict[tuple[str, str], dict[str, int]]
    late: float
    clamped: float
    dropped_ahead: float
    invalid: float
    max_watermark: int


def _metrics(sc: Scenario) -> tuple[float, float, float, float]:
    return (
        sc.metric("emostream_aggregate_late_rows_total"),
        sc.metric("emostream_aggregate_future_events_total", action="clamped"),
        sc.metric("emostream_aggregate_future_events_total", action="dropped"),
        sc.metric("emostream_aggregate_invalid_records_total"),
    )


@pytest.fixture(scope="module")
def timeline(
    spark: SparkSession,
    kafka_bootstrap: str,
    redis_url: str,
    listener: ProgressListener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Timeline]:
    """Run the scenario once: in-order and out-of-order, late, far-future and garbage input."""
    sc = make_scenario(spark, kafka_bootstrap, redis_url, tmp_path_factory.mktemp("event-time"))
    tag = uuid.uuid4().hex[:6]
    s = {k: f"{tag}-{k}" for k in "abcdef"}
    w0 = (now_ms() - 40_000) // WINDOW_MS * WINDOW_MS
    query = sc.start()
    try:
        # Out of order within one batch, and across windows.
        sc.produce(
            [
                _r(s["a"], "❤️", w0 + 100),
                _r(s["a"], "❤️", w0 + 1900),
                _r(s["a"], "❤️", w0 + 500),
                _r(s["a"], "😂", w0 + 1999),
                _r(s["a"], "❤️", w0 + 2100),
                _r(s["a"], "😂", w0 + 300),
            ]
        )
        sc.wait_processed(query, "first events processed")
        # Out of order across micro-batches: window w0 is still open (watermark w0 + 100).
        sc.produce([_r(s["a"], "👏", w0 + 1500)])
        sc.wait_processed(query, "straggler processed")
        # Move the watermark to w0 + 7000, and wait until a batch has run with it: Spark
        # drops an event as late when its window ended by the previous batch's watermark.
        sc.produce([_r(s["b"], "❤️", w0 + 9000)])
        wait_until(
            "watermark advanced",
            lambda: watermark_ms(query) >= w0 + 7000,
            QUERY_WAIT_S,
            interval_s=QUERY_POLL_S,
        )
        before = _metrics(sc)
        sc.produce(
            [
                *[_r(s["a"], "❤️", w0 + 700) for _ in range(5)],  # window w0: closed
                *[_r(s["a"], "😭", w0 + 2500) for _ in range(2)],  # window w0+2000: closed
                _r(s["a"], "👍", w0 + 6500),  # behind the watermark, but its window is open
                _r(s["c"], "👍", w0 + 8500),
            ]
        )
        sc.wait_processed(query, "late events processed")
        # A far-future event time (clamped to its receive time) and a bogus receive time
        # (dropped), then an ordinary slightly delayed reaction on another stream.
        now = now_ms()
        sc.produce([_r(s["d"], "❤️", now + 3_600_000, now), _r(s["e"], "😂", now + 3_600_000)])
        raw = Producer({"bootstrap.servers": kafka_bootstrap})
        raw.produce(sc.settings.reactions_topic, value=b"not json")
        assert raw.flush(10) == 0
        sc.produced += 1
        sc.wait_processed(query, "future events processed")
        sc.produce([_r(s["f"], "🔥", now_ms() - 1500)])
        sc.wait_processed(query, "last event processed")
        expected = {
            (s["a"], iso_utc(w0)): {"❤️": 3, "😂": 2, "👏": 1},
            (s["a"], iso_utc(w0 + 2000)): {"❤️": 1},
            (s["a"], iso_utc(w0 + 6000)): {"👍": 1},
            (s["b"], iso_utc(w0 + 8000)): {"❤️": 1},
            (s["c"], iso_utc(w0 + 8000)): {"👍": 1},
        }
        ours = set(s.values())
        swarms = sc.swarms(
            lambda got: (
                {k for k, _ in final_counts(got)} >= ours - {s["e"]}
                and all(final_counts(got).get(k) == v for k, v in expected.items())
            )
        )
        wait_until(
            "metrics recorded", lambda: _metrics(sc)[3] >= 1, QUERY_WAIT_S, interval_s=QUERY_POLL_S
        )
        after = _metrics(sc)
        yield Timeline(
            w0=w0,
            now=now,
            streams=s,
            swarms=[x for x in swarms if x["stream_id"] in ours],
            expected=expected,
            late=after[0] - before[0],
            clamped=after[1] - before[1],
            dropped_ahead=after[2] - before[2],
            invalid=after[3] - before[3],
            max_watermark=max(
                round(_iso_ms(p.eventTime.get("watermark"))) for p in query.recentProgress
            ),
        )
    finally:
        query.stop()


def _iso_ms(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000 if iso else 0.0


def test_out_of_order_events_within_the_watermark_count_exactly(timeline: Timeline) -> None:
    """Events arriving out of order, in one batch or across batches, land in their windows."""
    counts = final_counts(timeline.swarms)
    for key, expected in timeline.expected.items():
        assert counts[key] == expected, key


def test_late_events_are_dropped_and_counted(timeline: Timeline) -> None:
    """Events for windows already closed change no swarm and are counted one by one."""
    assert timeline.late == 7
    a_windows = {k[1] for k in final_counts(timeline.swarms) if k[0] == timeline.streams["a"]}
    assert a_windows == {iso_utc(timeline.w0 + d) for d in (0, 2000, 6000)}


def test_a_far_future_event_does_not_make_other_streams_late(timeline: Timeline) -> None:
    """A clock an hour fast is clamped, a bogus receive time is dropped; others still count."""
    counts = final_counts(timeline.swarms)
    s = timeline.streams
    assert [v for k, v in counts.items() if k[0] == s["d"]] == [{"❤️": 1}]
    assert [v for k, v in counts.items() if k[0] == s["f"]] == [{"🔥": 1}]
    assert not [k for k in counts if k[0] == s["e"]]
    assert (timeline.clamped, timeline.dropped_ahead, timeline.invalid) == (1, 1, 1)
    assert timeline.max_watermark <= timeline.now + 1000


def test_windows_without_events_emit_nothing(timeline: Timeline) -> None:
    """Every swarm carries at least one count; empty windows and no-data batches emit none."""
    assert timeline.swarms
    assert all(sum(x["counts"].values()) > 0 for x in timeline.swarms)
    assert len(final_counts(timeline.swarms)) == len(timeline.expected) + 2
