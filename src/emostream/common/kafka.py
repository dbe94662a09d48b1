"""How every Kafka client connects: bootstrap servers, TLS and SASL, written down once.

Ingest's producer, fanout's consumer, the aggregation's sink and backlog probe speak
librdkafka's configuration; the aggregation's Spark query speaks the Java client's, prefixed
``kafka.``. Both come from one :class:`KafkaConnection`, built from the typed settings, so no
client can be secured differently from the others.

Spark gets the CA certificates inline (a PEM truststore) and the credentials as a JAAS line: the
options travel with the query plan to every executor, which therefore needs no mounted file.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from emostream.common.errors import ConfigurationError

if TYPE_CHECKING:
    from confluent_kafka import KafkaError

log = logging.getLogger(__name__)

#: Consumer groups, which the ACLs name: the aggregation's all start with this prefix (Spark's
#: generated ones and its backlog probe's), fanout's is this one. No group ever commits offsets.
AGGREGATE_GROUP_PREFIX = "emostream-aggregate"
FANOUT_GROUP = "emostream-fanout"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

#: The Java client's login module of each SASL mechanism.
_LOGIN_MODULES: dict[str, str] = {
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how a client proves who it is to them."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    #: A PEM file of the certificates that signed the brokers'; None trusts the system's.
    ssl_ca_location: str | None = None

    def __post_init__(self) -> None:
        if self.sasl and not (self.sasl_username and self.sasl_password):
            raise ConfigurationError(
                f"Kafka security protocol {self.security_protocol} needs "
                "EMOSTREAM_KAFKA_SASL_USERNAME and EMOSTREAM_KAFKA_SASL_PASSWORD"
            )
        if self.ssl_ca_location is not None:
            if not self.tls:
                raise ConfigurationError(
                    "EMOSTREAM_KAFKA_SSL_CA_LOCATION is set but the Kafka security protocol "
                    f"{self.security_protocol} uses no TLS (SSL or SASL_SSL does)"
                )
            if not Path(self.ssl_ca_location).is_file():
                raise ConfigurationError(
                    f"EMOSTREAM_KAFKA_SSL_CA_LOCATION names no readable file: "
                    f"{self.ssl_ca_location}"
                )

    @property
    def sasl(self) -> bool:
        """Whether clients authenticate with a user name and password."""
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """Whether the connection is encrypted."""
        return self.security_protocol.endswith("SSL")

    def librdkafka(self) -> dict[str, Any]:
        """The connection part of a confluent-kafka client's configuration."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl:
            config["sasl.mechanisms"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password
        if self.ssl_ca_location is not None:
            config["ssl.ca.location"] = self.ssl_ca_location
        return config

    def spark_options(self) -> dict[str, str]:
        """The same connection as options of Spark's Kafka source and sink (``kafka.*``)."""
        options = {
            "kafka.bootstrap.servers": self.bootstrap_servers,
            "kafka.security.protocol": self.security_protocol,
        }
        if self.sasl:
            options["kafka.sasl.mechanism"] = self.sasl_mechanism
            options["kafka.sasl.jaas.config"] = (
                f"{_LOGIN_MODULES[self.sasl_mechanism]} required "
                f"username={_jaas_quoted(self.sasl_username or '')} "
                f"password={_jaas_quoted(self.sasl_password or '')};"
            )
        if self.ssl_ca_location is not None:
            options["kafka.ssl.truststore.type"] = "PEM"
            options["kafka.ssl.truststore.certificates"] = Path(self.ssl_ca_location).read_text()
        return options

    def describe(self) -> str:
        """How the connection is secured, for start-up logs (never the password)."""
        if self.security_protocol == "PLAINTEXT":
            return "plaintext: no TLS, no authentication (for one machine only)"
        who = f", {self.sasl_mechanism} as {self.sasl_username}" if self.sasl else ""
        return f"{self.security_protocol}{who}"

    def log_start(self, client: str) -> None:
        """Say at start-up how ``client`` reaches Kafka; plaintext is said as a warning."""
        extra = {"client": client, "bootstrap": self.bootstrap_servers, "kafka": self.describe()}
        if self.security_protocol == "PLAINTEXT":
            log.warning("Kafka connection is plaintext", extra=extra)
        else:
            log.info("Kafka connection", extra=extra)


class CredentialCheck:
    """Turns Kafka refusing a client's login into a clear error log and readiness reason.

    librdkafka reports a refused SASL login only to the error callback, then keeps retrying, so
    a metadata request merely times out as a "transport failure". Pass :meth:`note` as the
    client's ``error_cb``; :meth:`refusal` says why the client is not ready.
    """

    #: How long a refusal counts, and how often it is logged again while it lasts.
    WINDOW_S = 30.0

    def __init__(self, connection: KafkaConnection) -> None:
        self._user = connection.sasl_username
        # No lock: callbacks may come from librdkafka's threads or gevent's pool, and a race
        # costs at most one more log line.
        self._last: tuple[float, str] | None = None
        self._logged_at = float("-inf")

    def note(self, err: "KafkaError") -> bool:
        """librdkafka error callback: remember an authentication error; True if it was one."""
        # Imported here: the settings import this module in gunicorn's master, which must not
        # load librdkafka before it forks its workers.
        from confluent_kafka import KafkaError  # noqa: PLC0415

        if err.code() != KafkaError._AUTHENTICATION:
            return False
        now = time.monotonic()
        why = (
            f"Kafka refused the credentials of user {self._user!r}: {err.str()} "
            "(check EMOSTREAM_KAFKA_SASL_USERNAME / _PASSWORD and the user on the brokers)"
        )
        self._last = (now, why)
        if now - self._logged_at < self.WINDOW_S:
            return True
        self._logged_at = now
        log.error("Kafka authentication failed", extra={"error": why})
        return True

    def refusal(self) -> str | None:
        """Why Kafka refused this client's login within the last ``WINDOW_S``, or None."""
        last = self._last
        if last is None or time.monotonic() - last[0] > self.WINDOW_S:
            return None
        return last[1]


def _jaas_quoted(value: str) -> str:
    """``value`` as a quoted JAAS option value (backslashes and quotes escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
