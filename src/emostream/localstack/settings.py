"""Settings of the local stack: where its state lives, which versions and ports it uses."""

from pathlib import Path

from pydantic import Field

from emostream.common import endpoints
from emostream.common.settings import CommonSettings


class StackSettings(CommonSettings):
    """Ports and versions of the one-machine stack; every child process is pointed at these."""

    stack_dir: Path = Field(
        Path(".emostream"), description="Pids, logs, Kafka data, Spark checkpoints and jar cache."
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka broker version (Maven Central).")
    kafka_port: int = Field(endpoints.KAFKA_PORT, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap: str = Field("512m", description="Broker JVM heap (-Xmx); two cores, two JVMs.")
    redis_port: int = Field(endpoints.REDIS_PORT, ge=1, le=65535)
    ingest_port: int = Field(endpoints.INGEST_PORT, ge=1, le=65535)
    fanout_port: int = Field(endpoints.FANOUT_PORT, ge=1, le=65535)
    aggregate_metrics_port: int = Field(endpoints.AGGREGATE_METRICS_PORT, ge=1, le=65535)
    reactions_partitions: int = Field(6, ge=1)
    swarms_partitions: int = Field(3, ge=1)
    ready_timeout_s: float = Field(180.0, gt=0, description="How long `up` waits for each part.")
