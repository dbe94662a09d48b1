"""Run the aggregation's plan a few times on synthetic reactions before the real query starts.

A fresh driver spends its first micro-batches generating and JIT-compiling code, loading the
state store and starting the Python ``foreachBatch`` path: on two cores the first batches that
carry data took about 10, 5 and 3 s, so the first reactions after a start reached viewers
late. The warm-up pays that cost before the job reports itself running. It runs the same
transformations (:func:`swarm_updates`) as a streaming query over Spark's ``rate`` source, with
a throw-away checkpoint, and builds the swarm messages of each batch without publishing them:
nothing reaches Kafka or Redis, and the real query's checkpoint is never touched.
"""

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from emostream.aggregate._swarms import swarm_message
from emostream.aggregate._transforms import swarm_updates
from emostream.aggregate.settings import AggregateSettings
from emostream.common.events import now_ms

log = logging.getLogger(__name__)

WARM_UP_QUERY = "emostream-warm-up"
_STREAMS = 8


def synthetic_reactions(
    spark: SparkSession, emojis: Sequence[str], rows_per_second: int
) -> DataFrame:
    """A stream shaped like the Kafka source: a ``value`` column holding reaction JSON."""
    rate = spark.readStream.format("rate").option("rowsPerSecond", rows_per_second).load()
    n = F.col("value")
    ms = F.unix_millis(F.col("timestamp"))
    emoji = F.element_at(F.array(*[F.lit(e) for e in emojis]), (n % len(emojis) + 1).cast("int"))
    reaction = F.struct(
        F.concat(F.lit("warm-up-"), n.cast("string")).alias("id"),
        F.concat(F.lit("warm-up-"), (n % _STREAMS).cast("string")).alias("stream_id"),
        n.cast("string").alias("user_id"),
        emoji.alias("emoji"),
        ms.alias("ts"),
        ms.alias("rts"),
    )
    return rate.select(F.to_json(reaction).cast("binary").alias("value"))


def warm_up(spark: SparkSession, settings: AggregateSettings) -> int:
    """Run :attr:`~AggregateSettings.warm_up_batches` micro-batches with data; return how many ran.

    Gives up after ``warm_up_timeout_s``: a slow warm-up only delays the start, it never stops it.
    """
    wanted = settings.warm_up_batches
    if wanted == 0:
        return 0
    started = time.monotonic()
    checkpoint = tempfile.mkdtemp(prefix="emostream-warm-up-")
    batches_with_data = 0

    def build_swarms(batch: DataFrame, batch_id: int) -> None:
        nonlocal batches_with_data
        rows = batch.collect()
        for row in rows:
            swarm_message(
                row.asDict(),
                emojis=settings.emojis,
                batch_id=batch_id,
                epoch_ms=0,
                divisor=settings.swarm_divisor,
                valence=settings.emoji_valence,
                emitted_at_ms=now_ms(),
            )
        if rows:
            batches_with_data += 1

    updates = swarm_updates(
        synthetic_reactions(spark, settings.emojis, rows_per_second=1000),
        settings.emojis,
        window_s=settings.window_s,
        watermark_s=settings.watermark_s,
        max_future_skew_s=settings.window_future_skew_s,
    )
    query = (
        updates.writeStream.queryName(WARM_UP_QUERY)
        .outputMode("update")
        .foreachBatch(build_swarms)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime=f"{settings.trigger_ms} milliseconds")
        .start()
    )
    try:
        deadline = started + settings.warm_up_timeout_s
        while batches_with_data < wanted and time.monotonic() < deadline and query.isActive:
            time.sleep(0.05)
    finally:
        query.stop()
        shutil.rmtree(checkpoint, ignore_errors=True)
    log.info(
        "warmed up",
        extra={"batches": batches_with_data, "seconds": round(time.monotonic() - started, 1)},
    )
    return batches_with_data
