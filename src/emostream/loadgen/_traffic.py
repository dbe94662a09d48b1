"""The load test's traffic model, kept apart from Locust (importing Locust patches the process)."""

import random
from typing import Any

from emostream.common.events import now_ms
from emostream.loadgen.generator import BASE_WEIGHTS

_EMOJIS = list(BASE_WEIGHTS)
_EMOJI_WEIGHTS = list(BASE_WEIGHTS.values())


def zipf_weights(count: int, skew: float) -> list[float]:
    """Weight 1 / (k + 1) ** skew for the k-th most popular of ``count`` streams."""
    return [1 / (k + 1) ** skew for k in range(count)]


def reaction() -> dict[str, Any]:
    """One tap by a random viewer (random ids keep per-user rate limits out of the way)."""
    return {
        "user_id": f"load-{random.randrange(10_000_000)}",  # noqa: S311 - load, not security
        "emoji": random.choices(_EMOJIS, _EMOJI_WEIGHTS)[0],  # noqa: S311
        "ts": now_ms(),
    }
