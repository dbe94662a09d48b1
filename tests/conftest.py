"""Session-wide real services: one Kafka broker, one Redis, one Spark session for the whole run.

Each fixture reuses a running service named by ``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` /
``EMOSTREAM_REDIS_URL`` when set, and otherwise starts its own on free loopback ports under a
temporary directory, stopping it at the end. Topic names are unique per session, so a run can
share a broker with a live stack without either seeing the other's data.
"""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from emostream.localstack.jars import kafka_broker_jars, spark_kafka_jars
from emostream.localstack.kafka import ensure_topics
from emostream.localstack.process import ProcessDir
from tests.support.certs import make_broker_certificates
from tests.support.services import (
    JAR_CACHE,
    KAFKA_VERSION,
    local_broker,
    start_broker,
    start_redis,
)
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Topics:
    """This session's own topic names."""

    reactions: str
    swarms: str


#: Bounds meant for strangers on the internet, which the suite's own traffic (every test from
#: 127.0.0.1, many of them with a stream of their own) would trip; the tests of the bounds set
#: them explicitly. The registry's keys are this session's own, like the topics.
_SUITE_ENV = {
    "EMOSTREAM_REGISTRY_NEW_STREAMS_PER_MIN": "0",
    "EMOSTREAM_RATE_LIMIT_PER_ADDRESS_PER_S": "0",
    "EMOSTREAM_REGISTRY_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:streams:",
}


@pytest.fixture(scope="session", autouse=True)
def suite_env() -> Iterator[None]:
    """The suite's settings (see ``_SUITE_ENV``), for servers started here and apps alike."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _SUITE_ENV.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessDir]:
    """Pid files and logs of the services this session starts; all stopped at the end."""
    root = tmp_path_factory.mktemp("services")
    procs = ProcessDir(root / "run", root / "logs")
    yield procs
    for name in procs.names():
        procs.stop(name, grace_s=15)


@dataclass(frozen=True)
class SecuredKafka:
    """The session broker's SASL_SSL listener (SCRAM-SHA-512, ACLs enforced) and its CA."""

    bootstrap: str
    ca: Path


@dataclass(frozen=True)
class SessionKafka:
    """The session's broker: its plaintext address, and its secured listener if it has one."""

    bootstrap: str
    secured: SecuredKafka | None


@pytest.fixture(scope="session")
def session_kafka(processes: ProcessDir, tmp_path_factory: pytest.TempPathFactory) -> SessionKafka:
    """A real Kafka broker: reused from the environment (plaintext only) or started here with a
    SASL_SSL listener beside the plaintext one, its certificates made for this run."""
    given = os.environ.get("EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    if given:
        return SessionKafka(given, None)
    certs = make_broker_certificates(tmp_path_factory.mktemp("kafka-certs"))
    broker = local_broker(
        tmp_path_factory.mktemp("kafka"),
        jars=kafka_broker_jars(JAR_CACHE, KAFKA_VERSION),
        heap="384m",
        secured_keystore=certs.keystore,
    )
    bootstrap = start_broker(processes, broker, env=os.environ)
    assert broker.secured is not None
    return SessionKafka(bootstrap, SecuredKafka(f"127.0.0.1:{broker.secured.port}", certs.ca))


@pytest.fixture(scope="session")
def kafka_bootstrap(session_kafka: SessionKafka) -> str:
    """Bootstrap servers of the session's broker, plaintext."""
    return session_kafka.bootstrap


@pytest.fixture(scope="session")
def secured_kafka(session_kafka: SessionKafka) -> SecuredKafka:
    """The session broker's SASL_SSL listener (skips when the broker is reused from outside)."""
    if session_kafka.secured is None:
        pytest.skip(
            "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS names a broker of its own, without the SASL_SSL "
            "listener the suite's broker has"
        )
    return session_kafka.secured


@pytest.fixture(scope="session")
def redis_url(processes: ProcessDir, tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a real Redis (reused from the environment or started here)."""
    given = os.environ.get("EMOSTREAM_REDIS_URL")
    if given:
        return given
    return start_redis(processes, tmp_path_factory.mktemp("redis"), env=os.environ)


@pytest.fixture(scope="session")
def topics(kafka_bootstrap: str) -> Topics:
    """Fresh ``reactions`` (6 partitions) and ``swarms`` (3 partitions) topics for this session."""
    tag = uuid.uuid4().hex[:8]
    names = Topics(reactions=f"test-{tag}-reactions", swarms=f"test-{tag}-swarms")
    ensure_topics(kafka_bootstrap, {names.reactions: 6, names.swarms: 3})
    return names


@pytest.fixture(scope="session")
def service_env(kafka_bootstrap: str, redis_url: str, topics: Topics) -> dict[str, str]:
    """Environment for servers started as subprocesses, pointed at this session's services."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "EMOSTREAM_REDIS_URL": redis_url,
        "EMOSTREAM_REACTIONS_TOPIC": topics.reactions,
        "EMOSTREAM_SWARMS_TOPIC": topics.swarms,
    }


@pytest.fixture(scope="session")
def spark_jars() -> str:
    """The Spark Kafka connector jars, fetched once into the project's cache."""
    return ",".join(str(j) for j in spark_kafka_jars(JAR_CACHE, pyspark.__version__))


@pytest.fixture(scope="session")
def spark(spark_jars: str, processes: ProcessDir) -> Iterator[SparkSession]:
    """The one Spark session of the run (local mode, two cores, Kafka connector on its path).

    It depends on ``processes`` only so that it stops before the broker does.
    """
    from emostream.aggregate.job import build_session  # noqa: PLC0415
    from emostream.aggregate.settings import AggregateSettings  # noqa: PLC0415

    session = build_session(AggregateSettings(spark_master="local[2]", spark_jars=spark_jars))
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def aggregation(
    spark: SparkSession,
    kafka_bootstrap: str,
    redis_url: str,
    topics: Topics,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[StreamingQuery]:
    """The aggregation query running in the session's Spark on this session's topics."""
    from emostream.aggregate.job import start_query  # noqa: PLC0415
    from emostream.aggregate.settings import AggregateSettings  # noqa: PLC0415

    settings = AggregateSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        redis_url=redis_url,
        reactions_topic=topics.reactions,
        swarms_topic=topics.swarms,
        checkpoint_location=str(tmp_path_factory.mktemp("checkpoint")),
        query_name=f"swarms_{topics.reactions.replace('-', '_')}",
    )
    query = start_query(spark, settings)
    wait_until("aggregation query", lambda: query.lastProgress is not None, 180)
    yield query
    query.stop()
