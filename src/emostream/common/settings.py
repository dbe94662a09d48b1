"""Settings shared by every role, read once from ``EMOSTREAM_*`` environment variables.

Each role subclasses :class:`CommonSettings` with its own fields; nothing else in the code base
reads ``os.environ``. Complex values (the emoji valence map) are given as JSON.
"""

from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emostream.common import endpoints
from emostream.common.emoji import DEFAULT_VALENCE
from emostream.common.kafka import KafkaConnection, SaslMechanism, SecurityProtocol
from emostream.common.registry import Mode, RegistryConfig
from emostream.common.tokens import TokenKeys

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class CommonSettings(BaseSettings):
    """Where Kafka and Redis are, the topic names, and the emoji rules every role must agree on."""

    model_config = SettingsConfigDict(env_prefix="EMOSTREAM_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        endpoints.KAFKA_BOOTSTRAP_SERVERS, description="Comma-separated Kafka bootstrap servers."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT",
        description="How clients reach Kafka: PLAINTEXT (the one-machine stack), SSL, "
        "SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism of the SASL_* protocols."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name (SASL_* only).")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (SASL_* only).")
    kafka_ssl_ca_location: str | None = Field(
        None,
        description="PEM file of the CA certificates that signed the brokers' (SSL and SASL_SSL); "
        "unset trusts the system's.",
    )
    redis_url: str = Field(endpoints.REDIS_URL, description="Redis connection URL.")
    reactions_topic: TopicName = "reactions"
    swarms_topic: TopicName = "swarms"
    emoji_valence: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_VALENCE),
        description="The accepted emoji set, each with its sentiment valence in [-1, 1] (JSON).",
    )
    swarm_divisor: int = Field(1000, ge=1, description="swarm[e] = ceil(count[e] / divisor).")
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")

    @field_validator("emoji_valence")
    @classmethod
    def _valence_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("the emoji set must not be empty")
        bad = {e: v for e, v in value.items() if not -1.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"valences must lie in [-1, 1]: {bad}")
        return value

    @model_validator(mode="after")
    def _kafka_connection_complete(self) -> "CommonSettings":
        self.kafka()
        return self

    def kafka(self) -> KafkaConnection:
        """How this process's Kafka clients connect (raises ConfigurationError when incomplete)."""
        password = self.kafka_sasl_password
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=password.get_secret_value() if password else None,
            ssl_ca_location=self.kafka_ssl_ca_location,
        )

    @property
    def emojis(self) -> tuple[str, ...]:
        """The accepted emojis in their configured order."""
        return tuple(self.emoji_valence)


class ServerSettings(CommonSettings):
    """Settings of a role served by gunicorn with several worker processes (ingest, fanout)."""

    # metrics_dir comes from prometheus_client's own variable; in code it is set by name.
    model_config = SettingsConfigDict(**CommonSettings.model_config, validate_by_name=True)

    metrics_dir: str | None = Field(
        None,
        # prometheus_client reads this variable itself when it is imported; reading the same one
        # here keeps the app's idea of the mode and the library's the same.
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR"),
        description="PROMETHEUS_MULTIPROC_DIR: where each worker process keeps its metrics "
        "(prometheus_client's multiprocess mode), so /metrics covers every worker. "
        "gunicorn_conf makes a fresh directory when it is unset; an app without it (tests) keeps "
        "its metrics in memory.",
    )
    metrics_host: str = Field(
        endpoints.LOCAL_HOST,
        min_length=1,
        description="Address the metrics port listens on, beside gunicorn's --bind; /metrics is "
        "served there only (0.0.0.0 in a pod, so Prometheus can scrape it).",
    )

    # Signed tokens (JWTs): how they are checked. See emostream.common.tokens for the claims.
    token_secret: SecretStr | None = Field(
        None, description="Shared secret of HS256 tokens (one of the three token keys)."
    )
    token_public_key: str | None = Field(
        None, description="PEM public key of RS256 or ES256 tokens (one of the three token keys)."
    )
    token_jwks_url: str | None = Field(
        None,
        description="JWKS URL whose keys sign RS256 or ES256 tokens, fetched and cached (one of "
        "the three token keys).",
    )
    token_issuer: str | None = Field(None, description="When set, tokens must carry this iss.")
    token_audience: str | None = Field(None, description="When set, tokens must carry this aud.")
    token_leeway_s: float = Field(
        30.0, ge=0, le=300, description="Clock skew allowed when checking exp and nbf."
    )
    token_max_ttl_s: int = Field(
        86_400,
        ge=1,
        description="Tokens expiring further ahead than this are refused (403), so a leaked token "
        "cannot be valid for long even if it was minted with a long lifetime.",
    )

    # The stream registry: which streams are live (emostream.common.registry).
    registry_mode: Mode = Field(
        "open",
        description="open: a stream comes into being with its first reaction, within the caps; "
        "closed: only streams opened through ingest's admin API are live.",
    )
    registry_max_live_streams: int = Field(
        10_000,
        ge=1,
        description="Open mode: most streams live at once; a reaction that would create one more "
        "is answered 429.",
    )
    registry_idle_s: float = Field(
        300.0,
        gt=0,
        description="Open mode: a stream without a reaction for this long stops being live.",
    )
    registry_refresh_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each process refreshes its copy of the live streams from Redis: "
        "how long a stream opened or closed elsewhere takes to be seen here.",
    )
    registry_key_prefix: str = Field(
        "emostream:streams:", min_length=1, description="Prefix of the registry's Redis keys."
    )

    def token_keys(self) -> TokenKeys:
        """How this process checks tokens."""
        return TokenKeys(
            secret=self.token_secret.get_secret_value() if self.token_secret else None,
            public_key=self.token_public_key,
            jwks_url=self.token_jwks_url,
            issuer=self.token_issuer,
            audience=self.token_audience,
            leeway_s=self.token_leeway_s,
            max_ttl_s=self.token_max_ttl_s,
        )

    def registry_config(self, new_streams_per_min: int = 0) -> RegistryConfig:
        """The stream registry's settings."""
        return RegistryConfig(
            mode=self.registry_mode,
            redis_url=self.redis_url,
            key_prefix=self.registry_key_prefix,
            refresh_s=self.registry_refresh_s,
            idle_s=self.registry_idle_s,
            max_live_streams=self.registry_max_live_streams,
            new_streams_per_min=new_streams_per_min,
        )
