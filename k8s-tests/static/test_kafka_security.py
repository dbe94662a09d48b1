"""Kafka authentication and TLS: Strimzi's SCRAM users with their ACLs, an external Kafka's
Secret, and plaintext where asked for."""

import chartlib
import pytest

from emostream.common.kafka import AGGREGATE_GROUP_PREFIX, FANOUT_GROUP

pytestmark = pytest.mark.chart

RELEASE = chartlib.RELEASE
CLUSTER = f"{RELEASE}-kafka"
CA_FILE = "/etc/emostream/kafka/ca.crt"
ROLES = ("ingest", "aggregate", "fanout")
#: An ACL as (resource type, resource name, pattern type, operation); the cluster has no name.
Acl = tuple[str, str | None, str | None, str]

EXTERNAL = [
    "kafka.provider=external",
    "kafka.external.bootstrapServers=kafka-0.data:9093\\,kafka-1.data:9093",
    "kafka.external.ports={9093}",
]


def documented_acls(reactions: str = "reactions", swarms: str = "swarms") -> dict[str, set[Acl]]:
    """The minimum each role needs, as docs/operations.md lists it."""
    cluster: Acl = ("cluster", None, None, "IdempotentWrite")
    return {
        "ingest": {
            ("topic", reactions, "literal", "Write"),
            ("topic", reactions, "literal", "Describe"),
            cluster,
        },
        "aggregate": {
            ("topic", reactions, "literal", "Read"),
            ("topic", reactions, "literal", "Describe"),
            ("topic", swarms, "literal", "Write"),
            ("topic", swarms, "literal", "Describe"),
            ("group", AGGREGATE_GROUP_PREFIX, "prefix", "Read"),
            cluster,
        },
        "fanout": {
            ("topic", swarms, "literal", "Read"),
            ("topic", swarms, "literal", "Describe"),
            ("group", FANOUT_GROUP, "prefix", "Read"),
        },
    }


def acls_of(user: chartlib.Obj) -> set[Acl]:
    """A KafkaUser's ACLs, one entry per operation; every rule must be an allow for any host."""
    rules = user["spec"]["authorization"]["acls"]
    found: set[Acl] = set()
    for rule in rules:
        assert rule.get("type", "allow") == "allow", rule
        assert rule.get("host", "*") == "*", rule
        resource = rule["resource"]
        pattern = resource.get("patternType", "literal") if "name" in resource else None
        found |= {
            (resource["type"], resource.get("name"), pattern, op) for op in rule["operations"]
        }
    assert len(found) == sum(len(r["operations"]) for r in rules), "duplicate ACLs"
    return found


def clients(objects: list[chartlib.Obj]) -> dict[str, list[tuple[chartlib.PodView, chartlib.Obj]]]:
    """The Kafka client containers by role."""
    by_role: dict[str, list[tuple[chartlib.PodView, chartlib.Obj]]] = {}
    for view, container in chartlib.kafka_clients(objects):
        by_role.setdefault(view.role, []).append((view, container))
    return by_role


def kafka_env(container: chartlib.Obj) -> dict[str, chartlib.Obj]:
    """The EMOSTREAM_KAFKA_* entries of a container, by name."""
    return {
        e["name"]: e for e in container.get("env") or [] if e["name"].startswith("EMOSTREAM_KAFKA_")
    }


def egress_kafka_ports(objects: list[chartlib.Obj], policy: str) -> set[int]:
    """The ports a client's NetworkPolicy lets it reach anywhere besides DNS, Redis and the API."""
    spec = chartlib.find(objects, "NetworkPolicy", policy)["spec"]
    return {
        p["port"]
        for rule in spec["egress"]
        if "to" not in rule
        for p in rule["ports"]
        if p["port"] not in (53, 6379, 443, 6443)
    }


@pytest.mark.parametrize("profile", [None, *chartlib.PROFILES], ids=["default", *chartlib.PROFILES])
def test_every_kafka_client_connects_as_its_listener_and_user_require(profile: str | None) -> None:
    """In every profile, ingest, fanout and the driver are Kafka clients, each with the protocol of
    its listener, its own credentials from a Secret and the CA mounted where TLS is on."""
    objects = list(chartlib.rendered(profile))
    assert set(clients(objects)) == set(ROLES)
    assert chartlib.check_kafka_clients(objects) == []


def test_strimzi_scram_tls_is_the_default() -> None:
    """A TLS listener on 9093 with SCRAM-SHA-512, simple authorization, the User Operator next to
    the Topic Operator, locked down the same way."""
    objects = list(chartlib.rendered(None))
    (kafka,) = chartlib.of_kind(objects, "Kafka")
    assert kafka["metadata"]["name"] == CLUSTER
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert (listener["port"], listener["tls"], listener["type"]) == (9093, True, "internal")
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    operators = kafka["spec"]["entityOperator"]
    assert operators["userOperator"]["resources"] == operators["topicOperator"]["resources"]
    template = operators["template"]
    assert template["userOperatorContainer"] == template["topicOperatorContainer"]
    assert template["userOperatorContainer"]["securityContext"]["readOnlyRootFilesystem"] is True


def test_each_role_has_a_kafka_user_with_exactly_its_acls() -> None:
    """Three KafkaUsers of the cluster, SCRAM-SHA-512, each with the documented ACLs and no
    more; topic names follow config.*_topic."""
    for topics, values in [
        (("reactions", "swarms"), []),
        (("rx", "sw"), ["config.reactions_topic=rx", "config.swarms_topic=sw"]),
    ]:
        users = chartlib.of_kind(chartlib.render(values=values), "KafkaUser")
        assert {u["metadata"]["name"] for u in users} == {f"{RELEASE}-{r}" for r in ROLES}
        wanted = documented_acls(*topics)
        for user in users:
            role = user["metadata"]["name"].removeprefix(f"{RELEASE}-")
            assert user["metadata"]["labels"]["strimzi.io/cluster"] == CLUSTER
            assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
            assert user["spec"]["authorization"]["type"] == "simple"
            assert acls_of(user) == wanted[role], role


def test_without_the_aggregation_there_is_no_aggregate_user() -> None:
    """aggregate.enabled=false: users for ingest and fanout only."""
    users = chartlib.of_kind(chartlib.render(values=["aggregate.enabled=false"]), "KafkaUser")
    assert {u["metadata"]["name"] for u in users} == {f"{RELEASE}-ingest", f"{RELEASE}-fanout"}


@pytest.mark.parametrize("profile", [None, "full-values.yaml"], ids=["native", "operator"])
def test_each_client_reads_its_own_users_secret_and_the_cluster_ca(profile: str | None) -> None:
    """Every client pod (the SparkApplication's driver too) logs in as its role's KafkaUser with
    the password from that user's Secret, over TLS to 9093, trusting Strimzi's cluster CA."""
    objects = list(chartlib.rendered(profile))
    for role, found in clients(objects).items():
        for view, container in found:
            env = kafka_env(container)
            user = f"{RELEASE}-{role}"
            assert env["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"]["value"] == (
                f"{CLUSTER}-kafka-bootstrap.{chartlib.NAMESPACE}.svc:9093"
            )
            assert env["EMOSTREAM_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
            assert env["EMOSTREAM_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
            assert env["EMOSTREAM_KAFKA_SASL_USERNAME"]["value"] == user
            password = env["EMOSTREAM_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert password == {"name": user, "key": "password"}
            assert env["EMOSTREAM_KAFKA_SSL_CA_LOCATION"]["value"] == CA_FILE
            assert chartlib.mounted_secret_file(view, container, CA_FILE) == (
                f"{CLUSTER}-cluster-ca-cert",
                "ca.crt",
            )
    for policy in (f"{RELEASE}-ingest", f"{RELEASE}-fanout", f"{RELEASE}-aggregate-executor"):
        assert egress_kafka_ports(objects, policy) == {9093}, policy


def test_spark_executors_get_no_kafka_secrets() -> None:
    """The driver passes the connection to its executors inline: no credentials or CA on them."""
    (executor,) = chartlib.embedded_pods(chartlib.rendered(None))
    assert not [v for v in executor["spec"].get("volumes", []) if "secret" in v]
    app = chartlib.of_kind(chartlib.rendered("full-values.yaml"), "SparkApplication")[0]
    assert "env" not in app["spec"]["executor"]
    mounts = {m["name"] for m in app["spec"]["executor"].get("volumeMounts", [])}
    assert "kafka-ca" not in mounts


def test_security_none_keeps_plaintext() -> None:
    """kafka.strimzi.security=none: the plaintext listener on 9092, no authorization, no users,
    no User Operator; clients get PLAINTEXT and no credentials, CA or secret volume."""
    objects = chartlib.render(values=["kafka.strimzi.security=none"])
    (kafka,) = chartlib.of_kind(objects, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert (listener["port"], listener["tls"]) == (9092, False)
    assert "authentication" not in listener
    assert "authorization" not in kafka["spec"]["kafka"]
    assert "userOperator" not in kafka["spec"]["entityOperator"]
    assert not chartlib.of_kind(objects, "KafkaUser")
    for found in clients(objects).values():
        for view, container in found:
            env = kafka_env(container)
            assert set(env) == {
                "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS",
                "EMOSTREAM_KAFKA_SECURITY_PROTOCOL",
            }
            assert env["EMOSTREAM_KAFKA_SECURITY_PROTOCOL"]["value"] == "PLAINTEXT"
            assert env["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"]["value"].endswith(":9092")
            assert not [v for v in view.volumes if v["name"] == "kafka-ca"]
    assert egress_kafka_ports(objects, f"{RELEASE}-ingest") == {9092}
    assert chartlib.check_kafka_clients(objects) == []
    assert chartlib.schema_problems(objects) == []


def test_an_external_kafka_with_sasl_ssl_reads_the_existing_secret() -> None:
    """External SASL_SSL: each role's user name and password from its keys of existingSecret,
    the CA from its key ca.crt, mounted; no Strimzi objects."""
    objects = chartlib.render(
        values=[
            *EXTERNAL,
            "kafka.external.securityProtocol=SASL_SSL",
            "kafka.external.saslMechanism=SCRAM-SHA-256",
            "kafka.external.existingSecret=platform-kafka",
        ]
    )
    assert not {"Kafka", "KafkaUser", "KafkaTopic"} & {o["kind"] for o in objects}
    for role, found in clients(objects).items():
        for view, container in found:
            env = kafka_env(container)
            assert env["EMOSTREAM_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
            assert env["EMOSTREAM_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-256"
            for what in ("username", "password"):
                ref = env[f"EMOSTREAM_KAFKA_SASL_{what.upper()}"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "platform-kafka", "key": f"{role}-{what}"}
            assert env["EMOSTREAM_KAFKA_SSL_CA_LOCATION"]["value"] == CA_FILE
            assert chartlib.mounted_secret_file(view, container, CA_FILE) == (
                "platform-kafka",
                "ca.crt",
            )
    assert egress_kafka_ports(objects, f"{RELEASE}-ingest") == {9093}
    assert chartlib.check_kafka_clients(objects) == []


@pytest.mark.parametrize(
    ("values", "sasl", "ca"),
    [
        (["securityProtocol=SASL_PLAINTEXT", "existingSecret=k"], True, False),
        (["securityProtocol=SASL_SSL", "existingSecret=k", "caFromSecret=false"], True, False),
        (["securityProtocol=SSL", "existingSecret=k"], False, True),
        (["securityProtocol=SSL"], False, False),
        (["securityProtocol=PLAINTEXT"], False, False),
    ],
    ids=["sasl-plaintext", "sasl-ssl-system-cas", "ssl-own-ca", "ssl-system-cas", "plaintext"],
)
def test_an_external_kafka_gets_what_its_protocol_needs(
    values: list[str], sasl: bool, ca: bool
) -> None:
    """Credentials only with SASL_*, the CA file and its volume only with TLS and a CA in the
    Secret; no CA file means the images' system CAs."""
    objects = chartlib.render(values=[*EXTERNAL, *(f"kafka.external.{v}" for v in values)])
    for found in clients(objects).values():
        for view, container in found:
            env = kafka_env(container)
            assert ("EMOSTREAM_KAFKA_SASL_PASSWORD" in env) is sasl
            assert ("EMOSTREAM_KAFKA_SSL_CA_LOCATION" in env) is ca
            assert bool([v for v in view.volumes if v["name"] == "kafka-ca"]) is ca
    assert chartlib.check_kafka_clients(objects) == []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            [*EXTERNAL, "kafka.external.securityProtocol=SASL_SSL"],
            "kafka.external.securityProtocol=SASL_SSL needs kafka.external.existingSecret: a "
            "Secret with the keys ingest-username, ingest-password, aggregate-username",
        ),
        (
            [*EXTERNAL, "kafka.external.securityProtocol=SASL_PLAINTEXT"],
            "kafka.external.securityProtocol=SASL_PLAINTEXT needs kafka.external.existingSecret",
        ),
        (
            [*EXTERNAL, "kafka.external.existingSecret=k"],
            "kafka.external.existingSecret is read only with kafka.external.securityProtocol SSL,"
            " SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            [
                *EXTERNAL,
                "kafka.external.securityProtocol=SSL",
                "kafka.external.existingSecret=k",
                "kafka.external.caFromSecret=false",
            ],
            "holds only the CA (ca.crt), but kafka.external.caFromSecret is false",
        ),
        (
            [*EXTERNAL, "kafka.external.securityProtocol=TLS"],
            "at '/kafka/external/securityProtocol': value must be one of",
        ),
        (
            [*EXTERNAL, "kafka.external.saslMechanism=GSSAPI"],
            "at '/kafka/external/saslMechanism': value must be one of",
        ),
        (
            ["kafka.strimzi.security=tls"],
            "at '/kafka/strimzi/security': value must be one of 'scram-tls', 'none'",
        ),
        (
            ["config.kafka_security_protocol=SSL"],
            "at '/config': additional properties 'kafka_security_protocol' not allowed",
        ),
        (
            ["ingest.config.kafka_sasl_password=hunter2"],
            "at '/ingest/config': additional properties 'kafka_sasl_password' not allowed",
        ),
        (
            ["aggregate.config.kafka_ssl_ca_location=/ca.pem"],
            "at '/aggregate/config': additional properties 'kafka_ssl_ca_location' not allowed",
        ),
        (
            ["fanout.config.kafka_sasl_username=me"],
            "at '/fanout/config': additional properties 'kafka_sasl_username' not allowed",
        ),
        (
            ["config.kafka_sasl_mechanism=PLAIN"],
            "at '/config': additional properties 'kafka_sasl_mechanism' not allowed",
        ),
    ],
)
def test_incomplete_kafka_security_values_are_refused(values: list[str], message: str) -> None:
    """Credentials without a Secret, a Secret the protocol does not read, unknown protocols, and
    Kafka settings in a config section (the chart's to set) fail, naming the value to change."""
    result = chartlib.render_text(None, values)
    assert result.returncode != 0, f"{values} rendered"
    assert message in result.stderr
