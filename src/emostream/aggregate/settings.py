"""Settings of the aggregation job."""

from pydantic import Field

from emostream.common.settings import CommonSettings


class AggregateSettings(CommonSettings):
    """Spark, window and output settings of the aggregation job."""

    spark_master: str = Field("local[2]", description="Spark master; local[*] on a laptop.")
    spark_jars: str = Field("", description="Comma-separated jar paths (the Kafka connector).")
    spark_driver_memory: str = Field("1g", description="Driver JVM heap in local mode.")
    shuffle_partitions: int = Field(4, ge=1, description="State partitions; small in local mode.")
    checkpoint_location: str = Field(
        ".emostream/checkpoints/aggregate",
        description="Where offsets and window state are checkpointed (path or s3a:// URL).",
    )
    window_s: float = Field(2.0, gt=0, description="Tumbling event-time window length.")
    watermark_s: float = Field(2.0, ge=0, description="How late an event may be and still count.")
    trigger_ms: int = Field(500, ge=50, description="Micro-batch interval: the update latency.")
    max_offsets_per_trigger: int = Field(
        200_000, ge=1, description="Upper bound on events read per micro-batch."
    )
    starting_offsets: str = Field(
        "earliest",
        pattern=r"^(earliest|latest)$",
        description="Where a query without a checkpoint starts; earliest loses nothing.",
    )
    metrics_port: int = Field(9108, ge=1, le=65535, description="Prometheus endpoint port.")
    query_name: str = Field("emostream-swarms", description="Streaming query name.")
