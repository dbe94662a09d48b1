"""One Kafka connection setting, two client dialects: librdkafka's and Spark's Java client's."""

from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from emostream.common.errors import ConfigurationError
from emostream.common.kafka import CredentialCheck, KafkaConnection
from emostream.ingest.settings import IngestSettings


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """A file standing for a PEM CA bundle (its content is passed on, not parsed)."""
    path = tmp_path / "ca.crt"
    path.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    return path


def test_plaintext_is_only_the_address() -> None:
    """PLAINTEXT needs no credentials and sets nothing beyond the address and protocol."""
    kafka = KafkaConnection("k:9092")
    assert kafka.librdkafka() == {"bootstrap.servers": "k:9092", "security.protocol": "PLAINTEXT"}
    assert kafka.spark_options() == {
        "kafka.bootstrap.servers": "k:9092",
        "kafka.security.protocol": "PLAINTEXT",
    }
    assert "no authentication" in kafka.describe()


def test_sasl_ssl_says_the_same_to_both_clients(ca: Path) -> None:
    """SASL_SSL with SCRAM maps to librdkafka's keys and to a JAAS line plus a PEM truststore."""
    kafka = KafkaConnection("k:9093", "SASL_SSL", "SCRAM-SHA-512", "ingest", 'p"w\\d', str(ca))
    assert kafka.librdkafka() == {
        "bootstrap.servers": "k:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "ingest",
        "sasl.password": 'p"w\\d',
        "ssl.ca.location": str(ca),
    }
    spark = kafka.spark_options()
    assert spark["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert spark["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="ingest" password="p\\"w\\\\d";'
    )
    assert spark["kafka.ssl.truststore.type"] == "PEM"
    assert spark["kafka.ssl.truststore.certificates"] == ca.read_text()
    assert kafka.describe() == "SASL_SSL, SCRAM-SHA-512 as ingest"
    assert 'p"w' not in repr(kafka)


def test_plain_mechanism_uses_its_login_module() -> None:
    """SASL PLAIN gets the Java client's PlainLoginModule."""
    kafka = KafkaConnection("k:9093", "SASL_PLAINTEXT", "PLAIN", "u", "p")
    assert kafka.spark_options()["kafka.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
    )
    assert "ssl.ca.location" not in kafka.librdkafka()


@pytest.mark.parametrize(
    ("protocol", "user", "password", "message"),
    [
        ("SASL_SSL", None, "p", "needs EMOSTREAM_KAFKA_SASL_USERNAME"),
        ("SASL_PLAINTEXT", "u", None, "EMOSTREAM_KAFKA_SASL_PASSWORD"),
    ],
)
def test_sasl_without_credentials_is_a_start_up_error(
    protocol: str, user: str | None, password: str | None, message: str
) -> None:
    """A SASL protocol without a user name and password fails when the settings are read."""
    with pytest.raises(ConfigurationError, match=message):
        IngestSettings(
            kafka_security_protocol=protocol,
            kafka_sasl_username=user,
            kafka_sasl_password=password,
        )


def test_a_ca_needs_tls_and_a_file(tmp_path: Path, ca: Path) -> None:
    """A CA file with a protocol without TLS, or one that does not exist, is refused."""
    with pytest.raises(ConfigurationError, match="uses no TLS"):
        KafkaConnection("k:9092", ssl_ca_location=str(ca))
    with pytest.raises(ConfigurationError, match="names no readable file"):
        KafkaConnection("k:9093", "SSL", ssl_ca_location=str(tmp_path / "missing.crt"))


def test_settings_build_the_connection_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, ca: Path
) -> None:
    """The EMOSTREAM_KAFKA_* variables make the connection every client of the role uses."""
    monkeypatch.setenv("EMOSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("EMOSTREAM_KAFKA_SASL_USERNAME", "fanout")
    monkeypatch.setenv("EMOSTREAM_KAFKA_SASL_PASSWORD", "secret")
    monkeypatch.setenv("EMOSTREAM_KAFKA_SSL_CA_LOCATION", str(ca))
    kafka = IngestSettings().kafka()
    assert (kafka.security_protocol, kafka.sasl_username, kafka.sasl_password) == (
        "SASL_SSL",
        "fanout",
        "secret",
    )
    assert kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_a_refused_login_is_remembered_and_other_errors_are_not() -> None:
    """Only an authentication error becomes the refusal readiness reports, naming the user."""
    check = CredentialCheck(KafkaConnection("k:9093", "SASL_SSL", "SCRAM-SHA-512", "u", "p"))
    assert check.note(KafkaError(KafkaError._TRANSPORT)) is False
    assert check.refusal() is None
    assert check.note(KafkaError(KafkaError._AUTHENTICATION, "invalid credentials")) is True
    refusal = check.refusal()
    assert refusal is not None
    assert "'u'" in refusal
    assert "invalid credentials" in refusal
