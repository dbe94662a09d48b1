"""A single-node Apache Kafka broker in KRaft mode, run straight from its Maven jars.

The broker is its own controller. Storage is formatted once (``meta.properties`` marks it) so
data survives restarts; topics are created idempotently through the admin API.
"""

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from emostream.common.errors import StackError

log = logging.getLogger(__name__)
# Probing a broker that is still starting makes librdkafka report refused connections; expected.
_quiet = logging.getLogger(f"{__name__}.probe")
_quiet.setLevel(logging.CRITICAL)

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.org.name = org.apache.kafka
logger.org.level = WARN
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = INFO
"""


@dataclass(frozen=True)
class SecuredListener:
    """A second listener speaking SASL_SSL with SCRAM-SHA-512, and ACLs enforced on it.

    The one-machine stack has none: it talks plaintext. The test suite adds one to its broker
    to run Emostream's clients the way a shared cluster makes them run. Clients of the plaintext
    listener are super users (the ACLs bind only the SCRAM users), so its admin tools keep working.
    """

    port: int
    #: PEM file holding the broker's private key (unencrypted PKCS#8) and its certificate chain.
    keystore: Path


@dataclass(frozen=True)
class KafkaBroker:
    """Files and command line of one local KRaft broker."""

    jars: Path
    data_dir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    secured: SecuredListener | None = None

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers string for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        """The broker's server.properties, written by :meth:`prepare`."""
        return self.data_dir / "server.properties"

    def _properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str((self.data_dir / "logs").resolve()),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A laptop stack keeps a few hours of data, not a week.
            "log.retention.hours": "6",
        }
        if self.secured is not None:
            props.update(self._secured_properties(self.secured))
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _secured_properties(self, secured: SecuredListener) -> dict[str, str]:
        address = f"SASL_SSL://127.0.0.1:{secured.port}"
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},{address},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},{address}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,"
            "CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            # The broker checks SCRAM credentials kept in the cluster's metadata.
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(secured.keystore.resolve()),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The plaintext listener's and the controller's clients.
            "super.users": "User:ANONYMOUS",
        }

    def prepare(self) -> None:
        """Write the config and format storage the first time; later calls change nothing."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._properties())
        (self.data_dir / "log4j2.properties").write_text(_LOG4J2)
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        java = _java()
        cluster_id = subprocess.run(
            [java, "-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        fmt = subprocess.run(
            [
                java, "-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "format",
                "-t", cluster_id, "-c", str(self.config_file), "--standalone",
            ],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{fmt.stdout}{fmt.stderr}")
        log.info("formatted Kafka storage", extra={"dir": str(self.data_dir)})

    def command_after_prepare(self) -> list[str]:
        """Prepare config and storage, then return the command line."""
        self.prepare()
        return self.command()

    def command(self) -> list[str]:
        """The broker's command line."""
        log4j = (self.data_dir / "log4j2.properties").resolve()
        return [
            _java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true",
            "-cp", f"{self.jars.resolve()}/*", "kafka.Kafka", str(self.config_file.resolve()),
        ]  # fmt: skip


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java 17 or newer is required: apt-get install -y openjdk-17-jre-headless")
    return java


def kafka_ready(bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    try:
        config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _quiet}
        admin = AdminClient(config)
        md = admin.list_topics(timeout=2)
    except KafkaException:
        return False
    return bool(md.brokers)


def ensure_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    """Create each topic with its partition count unless it exists already."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    wanted = [
        NewTopic(name, num_partitions=n, replication_factor=1)
        for name, n in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=30).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StackError(f"cannot create topic {name}: {exc}") from exc
        log.info("created topic", extra={"topic": name})
