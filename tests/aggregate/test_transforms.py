"""The window transformations on a real Spark session, over static DataFrames."""

import pytest
from pyspark.sql import SparkSession

from emostream.aggregate.transforms import count_column, parse_reactions, window_counts
from emostream.common.events import Reaction

pytestmark = pytest.mark.integration

EMOJIS = ("❤️", "😂")
T0 = 1_764_000_000_000  # a window boundary for 2 s windows


def _kafka_rows(spark: SparkSession, values: list[bytes]):  # type: ignore[no-untyped-def]
    return spark.createDataFrame([(v,) for v in values], "value binary")


def _reaction(stream: str, emoji: str, ts: int) -> bytes:
    return Reaction("id", stream, "u", emoji, ts, ts + 5).encode()


def test_counts_per_stream_and_tumbling_window(spark: SparkSession) -> None:
    """Each (stream, 2 s window) row holds the count of every configured emoji."""
    values = [
        *[_reaction("a", "❤️", T0 + 100) for _ in range(3)],
        _reaction("a", "😂", T0 + 1999),
        _reaction("a", "😂", T0 + 2000),  # first instant of the next window
        _reaction("b", "❤️", T0 + 500),
    ]
    rows = window_counts(parse_reactions(_kafka_rows(spark, values)), EMOJIS, 2.0, 2.0).collect()
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
