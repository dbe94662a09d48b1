"""Settings shared by every role, read once from ``EMOSTREAM_*`` environment variables.

Each role subclasses :class:`CommonSettings` with its own fields; nothing else in the code base
reads ``os.environ``. Complex values (the emoji valence map) are given as JSON.
"""

from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emostream.common import endpoints
from emostream.common.emoji import DEFAULT_VALENCE

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class CommonSettings(BaseSettings):
    """Where Kafka and Redis are, the topic names, and the emoji rules every role must agree on."""

    model_config = SettingsConfigDict(env_prefix="EMOSTREAM_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        endpoints.KAFKA_BOOTSTRAP_SERVERS, description="Comma-separated Kafka bootstrap servers."
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
