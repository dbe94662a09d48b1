"""The pipeline through Kafka over SASL_SSL: each role logs in as its own SCRAM user and is held
to the ACLs docs/operations.md lists, the way a shared cluster's Kafka runs it.

The session broker's second listener does TLS with this run's own CA and SCRAM-SHA-512, and
enforces ACLs; this module makes the three users, grants them exactly the documented ACLs on
topics of its own, then runs real ingest and fanout servers and a Spark query as those users.
"""

import secrets
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from pyspark.sql import SparkSession

from emostream.client import EmostreamClient
from emostream.common.kafka import AGGREGATE_GROUP_PREFIX, FANOUT_GROUP, KafkaConnection
from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._producer import ReactionProducer
from emostream.ingest.app import create_app
from emostream.ingest.settings import IngestSettings
from emostream.localstack.kafka import ensure_topics
from emostream.localstack.process import ProcessDir
from tests.conftest import SecuredKafka, Topics
from tests.support.feeds import SwarmCollector
from tests.support.servers import start_role
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

ROLES = ("ingest", "aggregate", "fanout")

_TOPIC, _GROUP, _CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
_LITERAL, _PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
_READ, _WRITE, _DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE
_IDEMPOTENT = AclOperation.IDEMPOTENT_WRITE


Acl = tuple[ResourceType, str, ResourcePatternType, AclOperation]


def role_acls(topics: Topics) -> dict[str, list[Acl]]:
    """Each role's ACLs as docs/operations.md lists them: (resource, name, pattern, operation)."""
    return {
        "ingest": [
            (_TOPIC, topics.reactions, _LITERAL, _WRITE),
            (_TOPIC, topics.reactions, _LITERAL, _DESCRIBE),
            (_CLUSTER, "kafka-cluster", _LITERAL, _IDEMPOTENT),
        ],
        "aggregate": [
            (_TOPIC, topics.reactions, _LITERAL, _READ),
            (_TOPIC, topics.reactions, _LITERAL, _DESCRIBE),
            (_TOPIC, topics.swarms, _LITERAL, _WRITE),
            (_TOPIC, topics.swarms, _LITERAL, _DESCRIBE),
            (_GROUP, AGGREGATE_GROUP_PREFIX, _PREFIXED, _READ),
            (_CLUSTER, "kafka-cluster", _LITERAL, _IDEMPOTENT),
        ],
        "fanout": [
            (_TOPIC, topics.swarms, _LITERAL, _READ),
            (_TOPIC, topics.swarms, _LITERAL, _DESCRIBE),
            (_GROUP, FANOUT_GROUP, _PREFIXED, _READ),
        ],
    }


@pytest.fixture(scope="module")
def secured_topics(kafka_bootstrap: str) -> Topics:
    """Topics of this module only, so no plaintext query of the session writes to them."""
    tag = uuid.uuid4().hex[:8]
    names = Topics(reactions=f"test-{tag}-sasl-reactions", swarms=f"test-{tag}-sasl-swarms")
    ensure_topics(kafka_bootstrap, {names.reactions: 6, names.swarms: 3})
    return names


@pytest.fixture(scope="module")
def users(
    kafka_bootstrap: str, secured_kafka: SecuredKafka, secured_topics: Topics
) -> dict[str, str]:
    """A SCRAM-SHA-512 user per role (``<role>-<tag>``, fresh password) with its ACLs; made
    through the plaintext listener, whose clients are the broker's super users."""
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    tag = uuid.uuid4().hex[:6]
    passwords = {f"{role}-{tag}": secrets.token_urlsafe(18) for role in ROLES}
    sha512 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upserts = [UserScramCredentialUpsertion(u, sha512, p.encode()) for u, p in passwords.items()]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result()
    bindings = [
        AclBinding(kind, name, pattern, f"User:{role}-{tag}", "*", op, AclPermissionType.ALLOW)
        for role, acls in role_acls(secured_topics).items()
        for kind, name, pattern, op in acls
    ]
    for future in admin.create_acls(bindings).values():
        future.result()
    return {user.rsplit("-", 1)[0]: f"{user}:{password}" for user, password in passwords.items()}


@pytest.fixture(scope="module")
def role_env(
    service_env: dict[str, str],
    secured_kafka: SecuredKafka,
    secured_topics: Topics,
    users: dict[str, str],
) -> Callable[[str], dict[str, str]]:
    """The environment of a process that reaches this module's topics as ``role``'s user."""

    def env(role: str) -> dict[str, str]:
        user, password = users[role].split(":", 1)
        return {
            **service_env,
            "EMOSTREAM_REACTIONS_TOPIC": secured_topics.reactions,
            "EMOSTREAM_SWARMS_TOPIC": secured_topics.swarms,
            "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": secured_kafka.bootstrap,
            "EMOSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EMOSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "EMOSTREAM_KAFKA_SASL_USERNAME": user,
            "EMOSTREAM_KAFKA_SASL_PASSWORD": password,
            "EMOSTREAM_KAFKA_SSL_CA_LOCATION": str(secured_kafka.ca),
        }

    return env


@pytest.fixture(scope="module")
def client(
    spark: SparkSession,
    processes: ProcessDir,
    role_env: Callable[[str], dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmostreamClient]:
    """Ingest, the Spark query and fanout, each logged in as its own user."""
    from emostream.aggregate.job import start_query  # noqa: PLC0415
    from emostream.aggregate.settings import AggregateSettings  # noqa: PLC0415

    with pytest.MonkeyPatch.context() as patch:
        for name, value in role_env("aggregate").items():
            patch.setenv(name, value)
        settings = AggregateSettings(
            checkpoint_location=str(tmp_path_factory.mktemp("sasl-checkpoint")),
            query_name=f"swarms_sasl_{uuid.uuid4().hex[:8]}",
        )
    query = start_query(spark, settings)
    try:
        ingest = start_role(processes, "sasl-ingest", "ingest", "gthread", role_env("ingest"))
        fanout = start_role(processes, "sasl-fanout", "fanout", "gevent", role_env("fanout"))
        yield EmostreamClient(ingest_url=ingest.url, fanout_url=fanout.url)
    finally:
        query.stop()
        for name in ("sasl-ingest", "sasl-fanout"):
            processes.stop(name, grace_s=15)


def test_reactions_cross_a_secured_kafka_exactly(client: EmostreamClient) -> None:
    """Reactions posted to ingest arrive at fanout as exact counts, every hop over SASL_SSL."""
    stream = f"sasl-{uuid.uuid4().hex[:10]}"
    batch = [{"user_id": f"u{i}", "emoji": "🔥"} for i in range(1200)]
    batch += [{"user_id": f"v{i}", "emoji": "👏"} for i in range(150)]
    with SwarmCollector(client, stream, timeout=120) as feed:
        accepted = sum(client.send(stream, batch[i : i + 450]) for i in range(0, len(batch), 450))
        assert accepted == 1350
        wait_until("exact counts", lambda: feed.totals() == {"🔥": 1200, "👏": 150}, 120)


def test_a_wrong_password_is_refused_with_a_clear_error(
    secured_kafka: SecuredKafka, users: dict[str, str], secured_topics: Topics
) -> None:
    """Ingest with a wrong password is not ready, and /readyz says Kafka refused its login."""
    user = users["ingest"].split(":", 1)[0]
    wrong = secrets.token_urlsafe(12)
    settings = IngestSettings(
        kafka_bootstrap_servers=secured_kafka.bootstrap,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username=user,
        kafka_sasl_password=wrong,
        kafka_ssl_ca_location=str(secured_kafka.ca),
        reactions_topic=secured_topics.reactions,
    )
    producer = ReactionProducer(settings, IngestMetrics())
    http = create_app(settings, sink=producer).test_client()
    details: list[str] = []

    def refused() -> bool:
        reply = http.get("/readyz")
        assert reply.status_code == 503
        details.append(reply.get_json()["detail"])
        return "refused the credentials" in details[-1]

    try:
        wait_until("a clear refusal", refused, 30)
    finally:
        producer.close(timeout_s=1)
    assert user in details[-1]
    assert wrong not in details[-1]


def test_a_user_is_held_to_its_acls(
    secured_kafka: SecuredKafka, users: dict[str, str], secured_topics: Topics
) -> None:
    """Fanout's user may read swarms but not write reactions: the broker enforces the ACLs."""
    user, password = users["fanout"].split(":", 1)
    connection = KafkaConnection(
        secured_kafka.bootstrap, "SASL_SSL", "SCRAM-SHA-512", user, password, str(secured_kafka.ca)
    )
    errors: list[KafkaError] = []
    producer = Producer(
        {
            **connection.librdkafka(),
            "message.timeout.ms": 10_000,
            "on_delivery": lambda err, _msg: errors.append(err),
        }
    )
    producer.produce(secured_topics.reactions, b"{}")
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
