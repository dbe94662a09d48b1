"""Settings of the simulated audience: the Locust load test (the ingest address is Locust's
own ``--host``) and ``emostream generate``."""

from pydantic import Field, SecretStr

from emostream.common import endpoints
from emostream.common.settings import CommonSettings
from emostream.common.tokens import mint


class LoadSettings(CommonSettings):
    """Who the simulated audience is: how many streams, how skewed, how big the batches."""

    fanout_url: str = Field(endpoints.FANOUT_URL, description="Where viewers listen.")
    load_streams: int = Field(20, ge=1, description="Number of live streams (stream-0 ...).")
    load_zipf_s: float = Field(
        1.1, ge=0, description="Popularity skew: stream k gets weight 1 / (k + 1) ** s."
    )
    load_batch_size: int = Field(100, ge=1, le=500, description="Reactions per batch request.")
    load_listen_s: float = Field(60.0, gt=0, description="How long a viewer stays connected.")

    load_token: SecretStr | None = Field(
        None,
        description="A token sent with every request (Authorization: Bearer): a sender token "
        "without sub (a platform backend's, so the simulated user ids count) whose "
        "emostream.send and emostream.view cover the streams.",
    )
    load_token_secret: SecretStr | None = Field(
        None,
        description="Or the deployment's HS256 token secret, to mint such a token for the run.",
    )
    load_admin_token: SecretStr | None = Field(
        None,
        description="The admin token: the streams are opened first (a closed stream registry).",
    )

    def token(self, ttl_s: int = 86_400) -> str | None:
        """The token to send with: given, or minted with the secret (None without either)."""
        if self.load_token is not None:
            return self.load_token.get_secret_value()
        if self.load_token_secret is None:
            return None
        return mint(self.load_token_secret.get_secret_value(), send=["*"], view=["*"], ttl_s=ttl_s)

    def admin_token(self) -> str | None:
        """The admin token, if the streams must be opened."""
        return self.load_admin_token.get_secret_value() if self.load_admin_token else None
