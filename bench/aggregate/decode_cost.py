"""What decoding a reaction costs the aggregation: ``python -m bench.aggregate.decode_cost``.

The job's own transformations (decode, bound event times, observe, count per window and stream)
run on the same Kafka-shaped rows, cached in memory so that neither Kafka nor the row generator
is timed, from three inputs:

- ``json``: the record value as ingest writes it, parsed with ``from_json`` (the job today);
- ``headers``: the same fields as record headers in a fixed order, read by position (one
  candidate format that needs no parse);
- ``typed``: the fields already typed, the floor of any format (no decoding at all).

Each is run ``--repeat`` times on ``local[2]``; the median counts. The figures say how much of
the job's per-row work a record format could save, not what the streaming job sustains (that is
``python -m bench.aggregate``: its Kafka source and micro-batches cost the same whatever the
format).
"""

import argparse
import statistics
import time
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from emostream.aggregate import _transforms as T
from emostream.aggregate.job import build_session
from emostream.aggregate.settings import AggregateSettings

#: The fields, in the order the ``headers`` input carries them.
FIELDS = ("stream_id", "emoji", "ts", "rts")


def kafka_rows(spark: SparkSession, rows: int, emojis: list[str]) -> DataFrame:
    """``rows`` reactions over 2,000 streams, as a JSON value (ingest's members) and as headers,
    plus the typed fields; cached."""
    now = int(time.time() * 1000)
    fields = spark.range(rows).select(
        F.concat(F.lit("s"), (F.col("id") % 2000).cast("string")).alias("stream_id"),
        F.element_at(
            F.array(*[F.lit(e) for e in emojis]), (F.col("id") % len(emojis) + 1).cast("int")
        ).alias("emoji"),
        (F.lit(now) + F.col("id") % 2000).alias("ts"),
        (F.lit(now) + F.col("id") % 1000).alias("rts"),
        F.col("id"),
    )
    value = F.to_json(
        F.struct(
            F.concat(F.lit("4f1c2a9e0b7d3e5a-"), F.col("id").cast("string")).alias("id"),
            "stream_id",
            F.concat(F.lit("u"), (F.col("id") * 7919 % 1_000_003).cast("string")).alias("user_id"),
            "emoji",
            "ts",
            "rts",
        )
    )
    headers = F.array(
        *[
            F.struct(
                F.lit(name).alias("key"), F.col(name).cast("string").cast("binary").alias("value")
            )
            for name in FIELDS
        ]
    )
    data = fields.select(
        value.cast("binary").alias("value"), headers.alias("headers"), *FIELDS
    ).cache()
    data.count()
    return data


def from_headers(rows: DataFrame) -> DataFrame:
    """Reactions read from headers by position, with the ``valid`` flag of ``decode_reactions``."""
    header = F.col("headers")

    def field(i: int) -> Column:
        return header[i]["value"].cast("string")

    parsed = rows.select(
        field(0).alias("stream_id"),
        field(1).alias("emoji"),
        field(2).cast("long").alias("ts"),
        field(3).cast("long").alias("rts"),
    )
    valid = F.col("stream_id").isNotNull() & F.col("emoji").isNotNull() & F.col("ts").isNotNull()
    return parsed.withColumn("valid", F.coalesce(valid, F.lit(False)))


def counted(reactions: DataFrame, emojis: list[str], s: AggregateSettings) -> DataFrame:
    """The job's transformations after decoding, as ``swarm_updates`` applies them."""
    return T.decoded_counts(
        reactions,
        emojis,
        window_s=s.window_s,
        watermark_s=s.watermark_s,
        max_future_skew_s=s.window_future_skew_s,
    )


def seconds(query: Callable[[], DataFrame], repeat: int) -> float:
    """Median wall time of running ``query()`` to the end (a no-op sink)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        query().write.format("noop").mode("overwrite").save()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


def main(argv: list[str] | None = None) -> int:
    """Time the three inputs and print rows/s for each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=700_000, help="rows (cached in the driver)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per input; the median counts")
    args = parser.parse_args(argv)
    settings = AggregateSettings(spark_master="local[2]")
    spark = build_session(settings)
    spark.sparkContext.setLogLevel("ERROR")
    emojis = list(settings.emojis)
    try:
        rows = kafka_rows(spark, args.rows, emojis)
        inputs = {
            "json (from_json, as the job reads today)": lambda: T.decode_reactions(rows),
            "headers (read by position)": lambda: from_headers(rows),
            "typed (no decoding: the floor)": lambda: rows.select(
                *FIELDS, F.lit(True).alias("valid")
            ),
        }
        _say(f"{args.rows:,} reactions, local[2], median of {args.repeat}:")
        for name, decode in inputs.items():
            took = seconds(lambda decode=decode: counted(decode(), emojis, settings), args.repeat)
            _say(f"  {name:42} {took:6.2f} s  {args.rows / took:>11,.0f} rows/s")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
