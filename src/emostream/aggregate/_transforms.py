"""Pure DataFrame transformations of the aggregation, testable on static DataFrames.

Counts are aggregated as one column per configured emoji, so every (stream, window) update is a
single row carrying the running counts of all emojis: exactly one swarm message per update, and
no second pass to gather a window's other emojis.

Event times are bounded before they reach the watermark. Spark keeps one watermark per query, the
largest event time seen minus the delay, so a single event stamped a minute ahead would close
every stream's open windows and make everyone else's reactions late. Ingest already clamps client
clocks; the job applies the same rule again (whatever wrote the record) and counts what it did.
"""

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

#: Only the fields the counts need: the parser steps over the others (the event and user ids)
#: without building a string for each.
REACTION_SCHEMA = StructType(
    [
        StructField("stream_id", StringType()),
        StructField("emoji", StringType()),
        StructField("ts", LongType()),
        StructField("rts", LongType()),
    ]
)

#: Name of the observed metrics of every micro-batch's input (``progress.observedMetrics``).
INPUT_METRICS = "emostream_input"
#: Window ends of a micro-batch's counted events, as (window end ms, events) bins.
#: Exact while a batch spans at most this many distinct windows (a few normally).
WINDOW_END_BINS = 128


def count_column(index: int) -> str:
    """Name of the count column of the ``index``-th configured emoji (emojis make poor names)."""
    return f"c{index}"


def decode_reactions(kafka_rows: DataFrame) -> DataFrame:
    """Kafka records -> typed reactions plus a ``valid`` flag (parseable, required fields set)."""
    parsed = kafka_rows.select(
        F.from_json(F.col("value").cast("string"), REACTION_SCHEMA).alias("r")
    ).select("r.*")
    valid = F.col("stream_id").isNotNull() & F.col("emoji").isNotNull() & F.col("ts").isNotNull()
    return parsed.withColumn("valid", F.coalesce(valid, F.lit(False)))


def parse_reactions(kafka_rows: DataFrame) -> DataFrame:
    """Kafka records -> typed reactions; unparseable records are dropped."""
    return decode_reactions(kafka_rows).where("valid").drop("valid")


def bound_event_times(reactions: DataFrame, max_future_skew_ms: int) -> DataFrame:
    """Add ``event_time`` and the flags ``clamped`` and ``ahead``.

    An event time more than ``max_future_skew_ms`` after its receive time (``rts``) becomes the
    receive time, as ingest does. A reaction whose time is still that far ahead of the
    micro-batch's clock (its receive time is bogus) is flagged ``ahead`` to be dropped. The
    batch's clock is ``current_timestamp()``, which Spark fixes per micro-batch and records in
    the offset log, so a replayed batch makes exactly the same decisions.
    """
    skew = F.lit(max_future_skew_ms)
    clamped = F.col("rts").isNotNull() & (F.col("ts") > F.col("rts") + skew)
    event_ms = F.when(clamped, F.col("rts")).otherwise(F.col("ts"))
    batch_ms = F.unix_millis(F.current_timestamp())
    return (
        reactions.withColumn("clamped", F.coalesce(clamped, F.lit(False)))
        .withColumn("event_ms", event_ms)
        .withColumn("ahead", F.coalesce(F.col("event_ms") > batch_ms + skew, F.lit(False)))
        .withColumn("event_time", F.timestamp_millis(F.col("event_ms")))
    )


def window_end_ms(event_ms: Column, window_ms: int) -> Column:
    """End of the tumbling window (aligned to the epoch, as Spark's ``window``) of ``event_ms``."""
    return event_ms - F.pmod(event_ms, F.lit(window_ms)) + F.lit(window_ms)


def observe_input(bounded: DataFrame, window_ms: int) -> DataFrame:
    """Attach the per-batch input metrics (:data:`INPUT_METRICS`) to ``bounded`` reactions.

    ``records`` read, ``invalid`` ones dropped (unparseable, incomplete, unknown emoji), event
    times ``clamped``, reactions dropped as ``ahead``, and ``window_ends``: a histogram of the
    counted events' window ends, from which the metrics listener counts the events Spark drops
    as late (their window ended at or before the previous micro-batch's watermark; Spark's own
    counter counts rows after its partial aggregation, one per late (stream, window)).
    """
    counted = F.col("valid") & ~F.col("ahead")
    return bounded.observe(
        INPUT_METRICS,
        F.count(F.lit(1)).alias("records"),
        F.count_if(~F.col("valid")).alias("invalid"),
        F.count_if(F.col("valid") & F.col("clamped")).alias("clamped"),
        F.count_if(F.col("valid") & F.col("ahead")).alias("ahead"),
        F.histogram_numeric(
            F.when(counted, window_end_ms(F.col("event_ms"), window_ms)), F.lit(WINDOW_END_BINS)
        ).alias("window_ends"),
    )


def emoji_index(emojis: Sequence[str]) -> Column:
    """Position of the row's emoji in ``emojis`` (null for any other emoji).

    Looked up once per event, so the per-emoji counts compare small integers instead of
    comparing every event's emoji string with each configured emoji.
    """
    pairs = [x for i, e in enumerate(emojis) for x in (F.lit(e), F.lit(i))]
    return F.element_at(F.create_map(*pairs), F.col("emoji"))


def window_counts(
    reactions: DataFrame, emojis: Sequence[str], window_s: float, watermark_s: float
) -> DataFrame:
    """Per (stream, tumbling event-time window): the count of each emoji and receive-time bounds."""
    counts: list[Column] = [
        F.count(F.when(F.col("emoji_index") == i, True)).alias(count_column(i))
        for i in range(len(emojis))
    ]
    if "emoji_index" not in reactions.columns:
        reactions = reactions.withColumn("emoji_index", emoji_index(emojis))
    return (
        reactions.withWatermark("event_time", f"{round(watermark_s * 1000)} milliseconds")
        .groupBy(F.window("event_time", f"{round(window_s * 1000)} milliseconds"), "stream_id")
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


def swarm_updates(
    kafka_rows: DataFrame,
    emojis: Sequence[str],
    *,
    window_s: float,
    watermark_s: float,
    max_future_skew_s: float,
) -> DataFrame:
    """The whole query: Kafka records -> observed, bounded reactions -> running window counts."""
    return decoded_counts(
        decode_reactions(kafka_rows),
        emojis,
        window_s=window_s,
        watermark_s=watermark_s,
        max_future_skew_s=max_future_skew_s,
    )


def decoded_counts(
    decoded: DataFrame,
    emojis: Sequence[str],
    *,
    window_s: float,
    watermark_s: float,
    max_future_skew_s: float,
) -> DataFrame:
    """The query after decoding: reactions with a ``valid`` flag (:func:`decode_reactions`'s
    columns) -> observed, bounded reactions -> running window counts."""
    decoded = decoded.withColumn("emoji_index", emoji_index(emojis))
    # An emoji outside the configured set counts nowhere, so it is as invalid as garbage.
    decoded = decoded.withColumn("valid", F.col("valid") & F.col("emoji_index").isNotNull())
    bounded = bound_event_times(decoded, round(max_future_skew_s * 1000))
    observed = observe_input(bounded, round(window_s * 1000))
    kept = observed.where(F.col("valid") & ~F.col("ahead"))
    return window_counts(kept, emojis, window_s, watermark_s)
