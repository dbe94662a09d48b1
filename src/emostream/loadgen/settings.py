"""Settings of the Locust load test (the ingest address is Locust's own ``--host``)."""

from pydantic import Field

from emostream.common import endpoints
from emostream.common.settings import CommonSettings


class LoadSettings(CommonSettings):
    """Who the simulated audience is: how many streams, how skewed, how big the batches."""

    fanout_url: str = Field(endpoints.FANOUT_URL, description="Where viewers listen.")
    load_streams: int = Field(20, ge=1, description="Number of live streams (stream-0 ...).")
    load_zipf_s: float = Field(
        1.1, ge=0, description="Popularity skew: stream k gets weight 1 / (k + 1) ** s."
    )
    load_batch_size: int = Field(100, ge=1, le=500, description="Reactions per batch request.")
    load_listen_s: float = Field(60.0, gt=0, description="How long a viewer stays connected.")
