"""Settings of the local stack: where its state lives, which versions and ports it uses."""

from pathlib import Path

from pydantic import Field, model_validator

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
    ingest_port: int = Field(
        endpoints.INGEST_PORT, ge=1, le=65535, description="Where clients reach ingest (nginx)."
    )
    ingest_upstream_port: int = Field(
        8001, ge=1, le=65535, description="Ingest's gunicorn, behind nginx on ingest_port."
    )
    fanout_port: int = Field(endpoints.FANOUT_PORT, ge=1, le=65535)
    # Each role's /metrics, on loopback ports of their own (the roles' metrics_port).
    ingest_metrics_port: int = Field(endpoints.INGEST_METRICS_PORT, ge=1, le=65535)
    fanout_metrics_port: int = Field(endpoints.FANOUT_METRICS_PORT, ge=1, le=65535)
    aggregate_metrics_port: int = Field(endpoints.AGGREGATE_METRICS_PORT, ge=1, le=65535)
    reactions_partitions: int = Field(6, ge=1)
    swarms_partitions: int = Field(3, ge=1)
    ready_timeout_s: float = Field(180.0, gt=0, description="How long `up` waits for each part.")

    # nginx in front of ingest, so slow clients cannot take gunicorn's threads (docs/ingest.md).
    ingest_proxy_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A client must send a request's whole header block within this, or nginx "
        "drops the connection (client_header_timeout).",
    )
    ingest_proxy_body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Longest pause between two reads of a request body, and of a response "
        "being sent, before nginx drops the connection (client_body_timeout, send_timeout).",
    )
    ingest_proxy_max_connections: int = Field(
        4096,
        ge=64,
        le=9000,
        description="Client connections nginx holds at once, stalled ones included "
        "(worker_connections); it opens up to twice as many files, within the 20,000 a process "
        "may have here.",
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> "StackSettings":
        if self.ingest_upstream_port == self.ingest_port:
            raise ValueError("ingest_upstream_port must differ from ingest_port (nginx's)")
        return self
