"""The harness's Kafka broker secured as a shared cluster's: TLS, SCRAM users, ACLs.

Each run (each namespace) gets its own CA, broker certificate and random passwords, kept only in
Secrets of its namespace (:func:`secrets_manifest`):

- ``kafka-tls``: ``ca.crt``, and ``keystore.pem`` (the broker's unencrypted PKCS#8 key, its
  certificate, the CA's: Kafka's PEM keystore), mounted into the broker (kafka.yaml).
- ``kafka-admin``: ``username``, ``password`` of the super user. The broker gives it a
  SCRAM-SHA-512 credential when it formats its storage; the harness's own clients use it.
- the chart's ``kafka.external.existingSecret`` (named in values.yaml): one user per role,
  ``<role>-username`` / ``<role>-password``, and ``ca.crt``, as docs/operations.md asks of the
  Secret a user creates for an external Kafka.

The setup Job (:func:`setup_job`) then signs in as the admin and creates the role users' SCRAM
credentials, the ACLs each role needs (:data:`ACLS`, exactly those) and the chart's topics.
Every Kafka client the harness runs gets the documented ``EMOSTREAM_KAFKA_*`` variables and the
CA (:func:`client_env`, :func:`client_volume`), and a ``KAFKA`` dict of librdkafka's settings
made from them (:data:`CLIENT_PRELUDE`) before its script runs.
"""

import datetime
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emostream.common.kafka import AGGREGATE_GROUP_PREFIX, FANOUT_GROUP

HERE = Path(__file__).resolve().parent

#: How the chart reaches the broker (values.yaml): the harness's clients reach it the same way.
_EXTERNAL = yaml.safe_load((HERE / "values.yaml").read_text())["kafka"]["external"]
BOOTSTRAP: str = _EXTERNAL["bootstrapServers"]
SECURITY_PROTOCOL: str = _EXTERNAL["securityProtocol"]
SASL_MECHANISM: str = _EXTERNAL["saslMechanism"]
#: The Secret the chart reads each role's credentials and the CA from.
CLIENT_SECRET: str = _EXTERNAL["existingSecret"]

#: kafka.yaml's Service, the name every certificate name below starts with.
SERVICE = "kafka"
# Names of Secrets, not secrets.
TLS_SECRET = "kafka-tls"  # noqa: S105
ADMIN_SECRET = "kafka-admin"  # noqa: S105
ADMIN_USER = "admin"
#: Where a client Job finds the CA (the path the chart mounts it at, too).
CA_DIR = "/etc/emostream/kafka"
CA_FILE = f"{CA_DIR}/ca.crt"

#: The chart's topics (kafka.topics in its values.yaml) and their partitions.
REACTIONS, SWARMS = "reactions", "swarms"
TOPICS = {REACTIONS: 6, SWARMS: 3}
ROLES = ("ingest", "aggregate", "fanout")
#: Each role's user, named as Strimzi names the chart's KafkaUsers (<fullname>-<role>).
USERS = {role: f"emostream-{role}" for role in ROLES}
# The cluster resource: librdkafka calls its type BROKER; Kafka names it kafka-cluster.
_CLUSTER = ("BROKER", "kafka-cluster", "LITERAL")
#: The least each role needs (docs/operations.md): (resource type, name, pattern type, operations).
ACLS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "ingest": [
        ("TOPIC", REACTIONS, "LITERAL", ("WRITE", "DESCRIBE")),
        (*_CLUSTER, ("IDEMPOTENT_WRITE",)),
    ],
    "aggregate": [
        ("TOPIC", REACTIONS, "LITERAL", ("READ", "DESCRIBE")),
        ("TOPIC", SWARMS, "LITERAL", ("WRITE", "DESCRIBE")),
        ("GROUP", AGGREGATE_GROUP_PREFIX, "PREFIXED", ("READ",)),
        (*_CLUSTER, ("IDEMPOTENT_WRITE",)),
    ],
    "fanout": [
        ("TOPIC", SWARMS, "LITERAL", ("READ", "DESCRIBE")),
        ("GROUP", FANOUT_GROUP, "PREFIXED", ("READ",)),
    ],
}
#: How long the setup Job waits for the broker to answer and take its requests.
SETUP_WAIT_S = 240


@dataclass(frozen=True)
class SecretKey:
    """A key of a Secret in the run's namespace, for an environment variable."""

    secret: str
    key: str


#: An environment variable's value: given, or read from a Secret.
EnvValue = str | SecretKey


@dataclass(frozen=True)
class Identity:
    """Who a client Job signs in to the broker as."""

    username: EnvValue
    password: EnvValue


ADMIN = Identity(SecretKey(ADMIN_SECRET, "username"), SecretKey(ADMIN_SECRET, "password"))


def role(name: str) -> Identity:
    """The user the chart's ``name`` role (ingest, aggregate, fanout) signs in as."""
    return Identity(
        SecretKey(CLIENT_SECRET, f"{name}-username"), SecretKey(CLIENT_SECRET, f"{name}-password")
    )


def env_var(name: str, value: EnvValue) -> dict[str, Any]:
    """A container's environment variable."""
    if isinstance(value, SecretKey):
        ref = {"name": value.secret, "key": value.key}
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}
    return {"name": name, "value": value}


def client_env(identity: Identity) -> dict[str, EnvValue]:
    """The settings of a Kafka client signing in as ``identity`` (docs/operations.md)."""
    return {
        "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
        "EMOSTREAM_KAFKA_SECURITY_PROTOCOL": SECURITY_PROTOCOL,
        "EMOSTREAM_KAFKA_SASL_MECHANISM": SASL_MECHANISM,
        "EMOSTREAM_KAFKA_SASL_USERNAME": identity.username,
        "EMOSTREAM_KAFKA_SASL_PASSWORD": identity.password,
        "EMOSTREAM_KAFKA_SSL_CA_LOCATION": CA_FILE,
    }


def client_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """The CA as a pod volume and its container mount (at :data:`CA_DIR`)."""
    volume = {
        "name": "kafka-ca",
        "secret": {"secretName": TLS_SECRET, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    }
    return volume, {"name": "kafka-ca", "mountPath": CA_DIR, "readOnly": True}


#: Runs before a client Job's script: ``KAFKA``, librdkafka's connection settings from the
#: documented variables, to be merged into each client's configuration. (Spelt out here rather
#: than taken from the image's emostream package, so it works with any image version.)
CLIENT_PRELUDE = """
import os as _os
KAFKA = {
    "bootstrap.servers": _os.environ["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"],
    "security.protocol": _os.environ["EMOSTREAM_KAFKA_SECURITY_PROTOCOL"],
    "sasl.mechanisms": _os.environ["EMOSTREAM_KAFKA_SASL_MECHANISM"],
    "sasl.username": _os.environ["EMOSTREAM_KAFKA_SASL_USERNAME"],
    "sasl.password": _os.environ["EMOSTREAM_KAFKA_SASL_PASSWORD"],
    "ssl.ca.location": _os.environ["EMOSTREAM_KAFKA_SSL_CA_LOCATION"],
}
"""

#: The setup Job's script, as the admin: the role users' SCRAM credentials, the ACLs and the
#: topics, each step idempotent, all of it again until the broker takes it (it may still be
#: starting) or SETUP_WAIT_S is up. SETUP is :func:`setup_spec`; each role's password comes
#: from the variable the spec names.
SETUP = """
import json, os, sys, time
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic, ResourcePatternType,
    ResourceType, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion)

spec = json.loads(os.environ["SETUP"])
admin = AdminClient(KAFKA)

def setup():
    mechanism = ScramMechanism[spec["mechanism"].replace("-", "_")]
    upserts = [
        UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096),
                                     os.environ[variable].encode())
        for user, variable in spec["users"].items()]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result()
    bindings = [
        AclBinding(ResourceType[a["type"]], a["name"], ResourcePatternType[a["pattern"]],
                   f"User:{a['user']}", "*", AclOperation[a["operation"]], AclPermissionType.ALLOW)
        for a in spec["acls"]]
    for future in admin.create_acls(bindings).values():
        future.result()
    existing = admin.list_topics(timeout=10).topics
    wanted = [NewTopic(name, num_partitions=n, replication_factor=1)
              for name, n in spec["topics"].items() if name not in existing]
    for future in (admin.create_topics(wanted).values() if wanted else []):
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

deadline = time.monotonic() + spec["wait_s"]
while True:
    try:
        setup()
        break
    except KafkaException as exc:
        if time.monotonic() > deadline:
            sys.exit(f"Kafka setup failed: {exc}")
        print(f"Kafka not ready yet: {exc}", flush=True)
        time.sleep(2)
print(f"users {sorted(spec['users'])}, {len(spec['acls'])} ACLs, topics {spec['topics']}")
"""


def setup_spec() -> dict[str, Any]:
    """What the setup Job creates: users (each with the variable holding its password), ACLs
    (one per operation) and topics."""
    acls = [
        {"user": USERS[r], "type": kind, "name": name, "pattern": pattern, "operation": op}
        for r, rules in ACLS.items()
        for kind, name, pattern, operations in rules
        for op in operations
    ]
    users = {USERS[r]: f"PASSWORD_{r.upper()}" for r in ROLES}
    return {
        "mechanism": SASL_MECHANISM,
        "users": users,
        "acls": acls,
        "topics": TOPICS,
        "wait_s": SETUP_WAIT_S,
    }


def setup_env() -> dict[str, EnvValue]:
    """The setup Job's own variables: the spec, and each role's password from the chart's
    Secret."""
    passwords: dict[str, EnvValue] = {
        f"PASSWORD_{r.upper()}": SecretKey(CLIENT_SECRET, f"{r}-password") for r in ROLES
    }
    return {"SETUP": json.dumps(setup_spec()), **passwords}


def secrets_manifest(namespace: str) -> str:
    """The run's three Secrets (module docstring), with a new CA, certificate and passwords."""
    ca, keystore = _certificates(namespace)
    clients = {"ca.crt": ca}
    for r in ROLES:
        clients[f"{r}-username"] = USERS[r]
        clients[f"{r}-password"] = _password()
    items = [
        _secret(TLS_SECRET, {"ca.crt": ca, "keystore.pem": keystore}),
        _secret(ADMIN_SECRET, {"username": ADMIN_USER, "password": _password()}),
        _secret(CLIENT_SECRET, clients),
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "e2e-kafka"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "Opaque",
        "stringData": data,
    }


def _password() -> str:
    # URL-safe characters only: the password also goes into StorageTool's --add-scram syntax.
    return secrets.token_urlsafe(24)


def broker_names(namespace: str) -> list[str]:
    """Every name a client may reach the broker by: the Service's, short to fully qualified
    (values.yaml's bootstrap uses the short one, the broker advertises <service>.<ns>.svc)."""
    return [
        SERVICE,
        f"{SERVICE}.{namespace}",
        f"{SERVICE}.{namespace}.svc",
        f"{SERVICE}.{namespace}.svc.cluster.local",
    ]


def _certificates(namespace: str) -> tuple[str, str]:
    """A CA of the run's own, and the broker's keystore: its PKCS#8 key, its certificate for
    :func:`broker_names`, the CA's certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"emostream e2e CA {namespace}")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = broker_names(namespace)
    cert = (
        _builder(_name(names[2]), ca_name, key.public_key(), now)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ca_pem = ca_cert.public_bytes(pem)
    return ca_pem.decode(), (key_pem + cert.public_bytes(pem) + ca_pem).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    # A week: a run takes under an hour, EMOSTREAM_E2E_KEEP=1 keeps its namespace for a look.
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
    )
