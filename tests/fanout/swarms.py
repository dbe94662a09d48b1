"""Swarm messages shaped like the aggregation's, for fanout tests."""

from typing import Any

from emostream.common.events import encode_json, now_ms
from emostream.fanout._swarm import Swarm
from tests.support import swarms
from tests.support.swarms import WINDOW_MS

BASE_MS = 1_764_000_000_000


def swarm_message(
    stream_id: str,
    batch: int,
    *,
    window: int = 0,
    counts: dict[str, int] | None = None,
    emitted_at: int | None = None,
) -> dict[str, Any]:
    """A swarm message as the aggregation writes it to Kafka (emitted now unless given)."""
    return swarms.swarm_message(
        stream_id,
        batch=batch,
        window_start_ms=BASE_MS + window * WINDOW_MS,
        counts=counts or {"❤️": 2500, "😂": 300},
        sentiment=0.9,
        emitted_at=emitted_at if emitted_at is not None else now_ms(),
    )


def make_swarm(stream_id: str, batch: int, **kwargs: Any) -> Swarm:
    """The fanout's view of :func:`swarm_message`, emitted at a fixed time so it compares equal."""
    kwargs.setdefault("emitted_at", BASE_MS)
    return Swarm.decode(encode_json(swarm_message(stream_id, batch, **kwargs)), fallback_time_ms=0)


def with_viewers(message: dict[str, Any], viewers: int) -> dict[str, Any]:
    """``message`` as a viewer receives it: unchanged but for the stream's viewer count."""
    return {**message, "viewers": viewers}
