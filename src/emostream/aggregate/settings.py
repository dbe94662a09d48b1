"""Settings of the aggregation job."""

from typing import Literal

from pydantic import Field, model_validator

from emostream.common import endpoints
from emostream.common.settings import CommonSettings


class AggregateSettings(CommonSettings):
    """Spark, window and output settings of the aggregation job."""

    spark_master: str = Field("local[2]", description="Spark master; local[*] on a laptop.")
    spark_jars: str = Field("", description="Comma-separated jar paths (the Kafka connector).")
    spark_driver_memory: str = Field("1g", description="Driver JVM heap in local mode.")
    shuffle_partitions: int = Field(
        2,
        ge=1,
        description="State partitions: one task each per micro-batch. One per core in local "
        "mode; fixed by the checkpoint (a new value needs a new checkpoint).",
    )
    state_store: Literal["hdfs", "rocksdb"] = Field(
        "hdfs",
        description="Window state store: Spark's default (state in the JVM heap, one delta file "
        "per partition and batch), or RocksDB with changelog checkpointing (state off-heap; "
        "for a very large number of open windows).",
    )
    checkpoint_location: str = Field(
        ".emostream/checkpoints/aggregate",
        description="Where offsets and window state are checkpointed: a local or mounted "
        "path, or a Hadoop URL (s3a://bucket/path, hdfs://...).",
    )
    window_s: float = Field(2.0, gt=0, description="Tumbling event-time window length.")
    watermark_s: float = Field(2.0, ge=0, description="How late an event may be and still count.")
    window_future_skew_s: float = Field(
        1.0,
        ge=0,
        description="An event time this far ahead of its receive time is replaced by the "
        "receive time; a reaction still ahead of the micro-batch's clock by more is dropped. "
        "Keep it well below watermark_s: the watermark follows the largest event time seen.",
    )
    trigger_ms: int = Field(500, ge=0, description="Micro-batch interval: the update latency.")
    max_offsets_per_trigger: int = Field(
        500_000,
        ge=1,
        description="Upper bound on events read per micro-batch. Only a backlog reaches it; "
        "larger batches spread each batch's fixed cost over more events and catch up faster.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        0,
        ge=0,
        le=500,
        description="fetch.max.wait.ms of the source's Kafka consumers. Each task's consumer "
        "prefetches past the batch's last offset and the next batch waits for that fetch, so "
        "Kafka's default (500 ms) delays every small batch.",
    )
    starting_offsets: str = Field(
        "earliest",
        pattern=r"^(earliest|latest)$",
        description="Where a query without a checkpoint starts; earliest loses nothing.",
    )
    metrics_host: str = Field(
        endpoints.LOCAL_HOST,
        min_length=1,
        description="Address the Prometheus endpoint listens on (0.0.0.0 in a pod, so "
        "Prometheus can scrape it).",
    )
    metrics_port: int = Field(
        endpoints.AGGREGATE_METRICS_PORT, ge=1, le=65535, description="Prometheus endpoint port."
    )
    snapshot_ttl_s: int = Field(
        600,
        ge=1,
        description="How long Redis keeps a stream's latest swarm after its last update. The "
        "snapshot only greets a new viewer with the stream's recent mood (resumes come from "
        "fanout's replay buffers and Kafka holds the rest), and a swarm older than this says "
        "little about now; a short life keeps Redis from filling with the snapshots of "
        "streams that ended.",
    )
    backlog_probe_s: float = Field(
        5.0,
        gt=0,
        description="How often the backlog gauge is refreshed from Kafka between micro-batches "
        "(so it keeps growing while the query is stopped or stuck).",
    )
    stop_grace_s: float = Field(
        20.0,
        ge=0,
        description="On SIGTERM, how long to wait for the running micro-batch to finish before "
        "interrupting it.",
    )
    query_name: str = Field("emostream-swarms", description="Streaming query name.")
    warm_up_batches: int = Field(
        3,
        ge=0,
        description="Micro-batches of synthetic reactions run through the query's plan before "
        "the real query starts (0: none), so the first real reactions are not slowed by code "
        "generation and JIT compilation.",
    )
    warm_up_timeout_s: float = Field(
        60.0, gt=0, description="Longest warm-up; the job starts anyway when it runs out."
    )

    # Executors that follow the reactions backlog (a cluster master only; see _scaling).
    autoscale_executors: bool = Field(
        False,
        description="Add and remove executors as the reactions backlog grows and drains (needs "
        "a cluster master and Spark's dynamic allocation off; the chart sets both).",
    )
    min_executors: int = Field(1, ge=0, description="Executors always kept.")
    max_executors: int = Field(1, ge=1, description="Most executors the backlog may add.")
    target_backlog_s: float = Field(
        10.0,
        gt=0,
        description="Seconds of backlog (records behind at the measured processing rate) the "
        "current executors may hold; more adds executors in proportion, like an HPA target.",
    )
    scale_up_stabilization_s: float = Field(
        15.0,
        ge=0,
        description="Executors are added only up to the lowest count wanted over this window, "
        "so a spike shorter than it adds none.",
    )
    scale_down_stabilization_s: float = Field(
        60.0,
        ge=0,
        description="Executors are removed only down to the highest count wanted over this "
        "window, so a lull shorter than it removes none.",
    )
    autoscale_period_s: float = Field(
        5.0, gt=0, description="How often the executor count is reconsidered."
    )

    @model_validator(mode="after")
    def _executor_bounds(self) -> "AggregateSettings":
        if self.min_executors > self.max_executors:
            raise ValueError(
                f"min_executors ({self.min_executors}) exceeds max_executors ({self.max_executors})"
            )
        return self
