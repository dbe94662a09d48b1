"""Wiring of the aggregation job: session, source, windows, sink, metrics, graceful stop."""

import logging
import signal
import threading
from types import FrameType

from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from emostream.aggregate.metrics import ProgressListener, serve_metrics
from emostream.aggregate.settings import AggregateSettings
from emostream.aggregate.sink import SwarmSink
from emostream.aggregate.transforms import parse_reactions, window_counts
from emostream.common.logging import configure_logging

log = logging.getLogger(__name__)


def build_session(settings: AggregateSettings) -> SparkSession:
    """A Spark session sized for the aggregation (local mode unless told otherwise)."""
    builder = (
        SparkSession.builder.appName("emostream-aggregate")
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if settings.spark_jars:
        builder = builder.config("spark.jars", settings.spark_jars)
    return builder.getOrCreate()


def start_query(spark: SparkSession, settings: AggregateSettings) -> StreamingQuery:
    """Start the streaming query: Kafka ``reactions`` -> windows -> :class:`SwarmSink`."""
    source = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .option("subscribe", settings.reactions_topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("maxOffsetsPerTrigger", settings.max_offsets_per_trigger)
        .load()
    )
    counts = window_counts(
        parse_reactions(source), settings.emojis, settings.window_s, settings.watermark_s
    )
    return (
        counts.writeStream.queryName(settings.query_name)
        .outputMode("update")
        .foreachBatch(SwarmSink(settings))
        .option("checkpointLocation", settings.checkpoint_location)
        .trigger(processingTime=f"{settings.trigger_ms} milliseconds")
        .start()
    )


def main() -> None:
    """Run until SIGTERM/SIGINT, then stop the query between micro-batches."""
    settings = AggregateSettings()
    configure_logging(settings.log_level)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on signal", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    spark = build_session(settings)
    spark.sparkContext.setLogLevel("WARN")
    spark.streams.addListener(ProgressListener())
    query = start_query(spark, settings)
    serve_metrics(settings.metrics_port)
    log.info("aggregation running", extra={"query": settings.query_name})
    try:
        while not stop.is_set() and query.isActive:
            query.awaitTermination(1)
    finally:
        query.stop()
        spark.stop()
    if query.exception() is not None:
        raise SystemExit(f"streaming query failed: {query.exception()}")
