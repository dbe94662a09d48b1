"""The window transformations on a real Spark session, over static DataFrames."""

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from emostream.aggregate._transforms import (
    bound_event_times,
    count_column,
    decode_reactions,
    parse_reactions,
    window_counts,
    window_end_ms,
)
from emostream.common.events import Reaction, now_ms

pytestmark = pytest.mark.integration

EMOJIS = ("❤️", "😂")
T0 = 1_764_000_000_000  # a window boundary for 2 s windows


def _kafka_rows(spark: SparkSession, values: list[bytes]) -> DataFrame:
    return spark.createDataFrame([(v,) for v in values], "value binary")


def _reaction(stream: str, emoji: str, ts: int, rts: int | None = None) -> bytes:
    return Reaction("id", stream, "u", emoji, ts, ts + 5 if rts is None else rts).encode()


def _bounded(spark: SparkSession, values: list[bytes], skew_ms: int = 1000) -> DataFrame:
    return bound_event_times(parse_reactions(_kafka_rows(spark, values)), skew_ms)


def test_counts_per_stream_and_tumbling_window(spark: SparkSession) -> None:
    """Each (stream, 2 s window) row holds the count of every configured emoji."""
    values = [
        *[_reaction("a", "❤️", T0 + 100) for _ in range(3)],
        _reaction("a", "😂", T0 + 1999),
        _reaction("a", "😂", T0 + 2000),  # first instant of the next window
        _reaction("b", "❤️", T0 + 500),
    ]
    rows = window_counts(_bounded(spark, values), EMOJIS, 2.0, 2.0).collect()
    got = {
        (r["stream_id"], r["window_start_ms"]): (r[count_column(0)], r[count_column(1)])
        for r in rows
    }
    assert got == {("a", T0): (3, 1), ("a", T0 + 2000): (0, 1), ("b", T0): (1, 0)}
    first = next(r for r in rows if r["stream_id"] == "a" and r["window_start_ms"] == T0)
    assert first["window_end_ms"] == T0 + 2000
    assert (first["first_receive_ms"], first["last_receive_ms"]) == (T0 + 105, T0 + 2004)


def test_unparseable_records_are_dropped(spark: SparkSession) -> None:
    """Garbage and records missing required fields never reach the counts."""
    values = [b"not json", b'{"stream_id": "a"}', _reaction("a", "😂", T0)]
    parsed = parse_reactions(_kafka_rows(spark, values)).collect()
    assert [(r["stream_id"], r["emoji"]) for r in parsed] == [("a", "😂")]
    flags = [r["valid"] for r in decode_reactions(_kafka_rows(spark, values)).collect()]
    assert flags == [False, False, True]


def test_event_time_ahead_of_receive_time_is_clamped(spark: SparkSession) -> None:
    """A client clock running fast counts at the receive time, as ingest would do."""
    now = now_ms()
    values = [
        _reaction("a", "❤️", now + 500, now),  # within the allowed skew: kept as sent
        _reaction("a", "❤️", now + 3_600_000, now),  # an hour fast: receive time instead
    ]
    rows = _bounded(spark, values).collect()
    assert [(r["event_ms"], r["clamped"], r["ahead"]) for r in rows] == [
        (now + 500, False, False),
        (now, True, False),
    ]


def test_receive_time_ahead_of_the_batch_clock_is_flagged(spark: SparkSession) -> None:
    """A record whose receive time is itself in the future is flagged to be dropped."""
    future = now_ms() + 3_600_000
    rows = _bounded(spark, [_reaction("a", "❤️", future, future)]).collect()
    assert [(r["clamped"], r["ahead"]) for r in rows] == [(False, True)]


def test_window_end_matches_sparks_tumbling_window(spark: SparkSession) -> None:
    """The histogram of window ends uses exactly the windows the aggregation uses."""
    df = spark.createDataFrame([(t,) for t in (T0, T0 + 1, T0 + 1999, T0 + 2000)], "ms long")
    rows = df.select(
        window_end_ms(F.col("ms"), 2000).alias("mine"),
        F.unix_millis(F.window(F.timestamp_millis("ms"), "2 seconds").end).alias("spark"),
    ).collect()
    assert [r["mine"] for r in rows] == [r["spark"] for r in rows]
