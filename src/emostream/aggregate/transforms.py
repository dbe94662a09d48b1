"""Pure DataFrame transformations of the aggregation, testable on static DataFrames.

Counts are aggregated as one column per configured emoji, so every (stream, window) update is a
single row carrying the running counts of all emojis: exactly one swarm message per update, and
no second pass to gather a window's other emojis.
"""

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

REACTION_SCHEMA = StructType(
    [
        StructField("id", StringType()),
        StructField("stream_id", StringType()),
        StructField("user_id", StringType()),
        StructField("emoji", StringType()),
        StructField("ts", LongType()),
        StructField("rts", LongType()),
    ]
)


def count_column(index: int) -> str:
    """Name of the count column of the ``index``-th configured emoji (emojis make poor names)."""
    return f"c{index}"


def parse_reactions(kafka_rows: DataFrame) -> DataFrame:
    """Kafka records -> typed reactions with an ``event_time``; unparseable records are dropped."""
    parsed = kafka_rows.select(
        F.from_json(F.col("value").cast("string"), REACTION_SCHEMA).alias("r")
    ).select("r.*")
    return parsed.where(
        F.col("stream_id").isNotNull() & F.col("emoji").isNotNull() & F.col("ts").isNotNull()
    ).withColumn("event_time", F.timestamp_millis(F.col("ts")))


def window_counts(
    reactions: DataFrame, emojis: Sequence[str], window_s: float, watermark_s: float
) -> DataFrame:
    """Per (stream, tumbling event-time window): the count of each emoji and receive-time bounds."""
    counts: list[Column] = [
        F.count(F.when(F.col("emoji") == e, True)).alias(count_column(i))
        for i, e in enumerate(emojis)
    ]
    return (
        reactions.withWatermark("event_time", f"{int(watermark_s * 1000)} milliseconds")
        .groupBy(F.window("event_time", f"{int(window_s * 1000)} milliseconds"), "stream_id")
        .agg(
            *counts,
            F.min("rts").alias("first_receive_ms"),
            F.max("rts").alias("last_receive_ms"),
        )
        .select(
            "stream_id",
            F.unix_millis(F.col("window.start")).alias("window_start_ms"),
            F.unix_millis(F.col("window.end")).alias("window_end_ms"),
            *[count_column(i) for i in range(len(emojis))],
            "first_receive_ms",
            "last_receive_ms",
        )
    )
