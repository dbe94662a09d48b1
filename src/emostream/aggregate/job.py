"""Wiring of the aggregation job: session, source, windows, sink, metrics, graceful stop.

docs/aggregation.md explains the tuning below with measurements; in short, a micro-batch's fixed
costs (planning, two checkpoint log writes, state store commits, task scheduling) decide the
latency of a small batch, so the job keeps each of them small.
"""

import logging
import signal
import threading
import time
from types import FrameType

from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from emostream.aggregate._checkpoint import Checkpoint, is_local
from emostream.aggregate._metrics import BacklogProbe, ProgressListener, serve_metrics
from emostream.aggregate._scaling import (
    BacklogPolicy,
    ExecutorAutoscaler,
    ScalingRules,
    SparkExecutors,
)
from emostream.aggregate._sink import SwarmSink
from emostream.aggregate._transforms import swarm_updates
from emostream.aggregate._warmup import warm_up
from emostream.aggregate.settings import AggregateSettings
from emostream.common.kafka import AGGREGATE_GROUP_PREFIX
from emostream.common.logging import configure_logging

log = logging.getLogger(__name__)

_STATE = "org.apache.spark.sql.execution.streaming.state"
STATE_STORE_PROVIDERS = {
    "rocksdb": f"{_STATE}.RocksDBStateStoreProvider",
    "hdfs": f"{_STATE}.HDFSBackedStateStoreProvider",
}
CHECKPOINT_MANAGER_KEY = "spark.sql.streaming.checkpointFileManagerClass"
#: Renames through Java's file API. Spark's default for local paths renames through Hadoop's
#: FileContext, which on a local file system runs a `readlink` child process for every file
#: it renames (two per checkpoint file, with its checksum): tens of milliseconds per write.
LOCAL_CHECKPOINT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)
#: Hadoop's local file system writes a ``.crc`` side file beside every file it creates, and
#: without Hadoop's native library every created file costs a ``chmod`` child process: two per
#: checkpoint file. The raw local file system writes no side file (Spark checksums its own
#: checkpoint files), which halves them.
LOCAL_FILE_SYSTEM = {"spark.hadoop.fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem"}


def query_conf(settings: AggregateSettings) -> dict[str, str]:
    """Session settings the query depends on (Spark records the first three in its checkpoint)."""
    conf = {
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.sql.streaming.stateStore.providerClass": STATE_STORE_PROVIDERS[settings.state_store],
        # With changelog checkpointing a RocksDB store writes one small change file per
        # partition and batch; full snapshots are uploaded in the background.
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    }
    if is_local(settings.checkpoint_location):
        conf[CHECKPOINT_MANAGER_KEY] = LOCAL_CHECKPOINT_MANAGER
    return conf


def build_session(settings: AggregateSettings) -> SparkSession:
    """A Spark session sized for the aggregation (local mode unless told otherwise)."""
    builder = (
        SparkSession.builder.appName("emostream-aggregate")
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Adaptive execution is switched off for stateful queries anyway (with a warning).
        .config("spark.sql.adaptive.enabled", "false")
    )
    for key, value in query_conf(settings).items():
        builder = builder.config(key, value)
    if is_local(settings.checkpoint_location):
        for key, value in LOCAL_FILE_SYSTEM.items():
            builder = builder.config(key, value)
    if settings.spark_jars:
        builder = builder.config("spark.jars", settings.spark_jars)
    return builder.getOrCreate()


def start_query(spark: SparkSession, settings: AggregateSettings) -> StreamingQuery:
    """Start the streaming query: Kafka ``reactions`` -> windows -> :class:`SwarmSink`."""
    for key, value in query_conf(settings).items():
        spark.conf.set(key, value)
    if not is_local(settings.checkpoint_location):
        spark.conf.unset(CHECKPOINT_MANAGER_KEY)
    epoch = Checkpoint(spark, settings.checkpoint_location).swarm_epoch()
    kafka = settings.kafka()
    kafka.log_start("aggregation")
    source = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options())
        # Consumer groups under one prefix, so one ACL covers them (docs/operations.md).
        .option("groupIdPrefix", AGGREGATE_GROUP_PREFIX)
        .option("subscribe", settings.reactions_topic)
        .option("startingOffsets", settings.starting_offsets)
        .option("maxOffsetsPerTrigger", settings.max_offsets_per_trigger)
        .option("kafka.fetch.max.wait.ms", settings.kafka_fetch_max_wait_ms)
        .load()
    )
    updates = swarm_updates(
        source,
        settings.emojis,
        window_s=settings.window_s,
        watermark_s=settings.watermark_s,
        max_future_skew_s=settings.window_future_skew_s,
    )
    query = (
        updates.writeStream.queryName(settings.query_name)
        .outputMode("update")
        .foreachBatch(SwarmSink(settings, epoch))
        .option("checkpointLocation", settings.checkpoint_location)
        .trigger(processingTime=f"{settings.trigger_ms} milliseconds")
        .start()
    )
    log.info(
        "query started",
        extra={"query": settings.query_name, "checkpoint": settings.checkpoint_location},
    )
    return query


def stop_between_batches(query: StreamingQuery, grace_s: float) -> None:
    """Stop ``query``, waiting up to ``grace_s`` for the running micro-batch to finish first.

    Stopping interrupts a running batch. That is safe (the batch is replayed with the same
    swarm ids on restart) but noisy, so a planned stop waits for a gap between batches.
    """
    deadline = time.monotonic() + grace_s
    while query.isActive and time.monotonic() < deadline:
        if not query.status.get("isTriggerActive", False):
            break
        time.sleep(0.01)
    query.stop()


def executor_autoscaler(
    spark: SparkSession,
    settings: AggregateSettings,
    listener: ProgressListener,
    query: StreamingQuery,
) -> ExecutorAutoscaler:
    """The autoscaler that sizes the executors to the query's backlog (settings say its rules)."""
    rules = ScalingRules(
        minimum=settings.min_executors,
        maximum=settings.max_executors,
        target_backlog_s=settings.target_backlog_s,
        scale_up_window_s=settings.scale_up_stabilization_s,
        scale_down_window_s=settings.scale_down_stabilization_s,
    )
    return ExecutorAutoscaler(
        SparkExecutors(spark.sparkContext),
        BacklogPolicy(rules),
        backlog=lambda: listener.backlog(settings.query_name),
        between_batches=lambda: not query.status.get("isTriggerActive", False),
        period_s=settings.autoscale_period_s,
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
    warm_up(spark, settings)
    checkpoint = Checkpoint(spark, settings.checkpoint_location)
    listener = ProgressListener(lambda _name, batch: checkpoint.batch_watermark_ms(batch))
    spark.streams.addListener(listener)
    query = start_query(spark, settings)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    probe = BacklogProbe(settings.kafka(), listener, settings.backlog_probe_s)
    probe.start()
    autoscaler = None
    if settings.autoscale_executors:
        autoscaler = executor_autoscaler(spark, settings, listener, query)
        autoscaler.start()
    log.info("aggregation running", extra={"query": settings.query_name})
    failure = None
    try:
        while not stop.is_set() and query.isActive:
            query.awaitTermination(1)
        failure = query.exception()
    finally:
        if autoscaler is not None:
            autoscaler.stop()
        stop_between_batches(query, settings.stop_grace_s)
        probe.stop()
        spark.stop()
    if failure is not None:
        raise SystemExit(f"streaming query failed: {failure}")
