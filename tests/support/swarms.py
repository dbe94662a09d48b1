"""Swarm messages shaped like the aggregation's, for the fanout's tests and its benchmark.

The aggregation writes each swarm as a :class:`emostream.common.events.SwarmMessage`, its
``swarm`` member made by the swarm rule (:func:`emostream.common.emoji.swarm_of`). The messages
made here have every member of it but the receive times (``first_receive_ms``,
``last_receive_ms``): without them the fanout does not time a swarm from its reactions, so a
test adds them only where it checks that timing.
"""

from typing import Any

from emostream.common.emoji import swarm_of
from emostream.common.events import iso_utc, swarm_id
from emostream.common.settings import CommonSettings

#: The length of these messages' windows.
WINDOW_MS = 2000
#: The swarm rule's divisor, the aggregation's default.
SWARM_DIVISOR: int = CommonSettings.model_fields["swarm_divisor"].default


def swarm_message(
    stream_id: str,
    *,
    batch: int,
    window_start_ms: int,
    counts: dict[str, int],
    sentiment: float,
    emitted_at: int,
    epoch_ms: int = 0,
) -> dict[str, Any]:
    """The swarm of one window of ``stream_id`` with ``counts``, written by micro-batch ``batch``
    (of the checkpoint created at ``epoch_ms``, if any) at ``emitted_at`` (epoch ms)."""
    return {
        "id": swarm_id(batch, window_start_ms, epoch_ms),
        "stream_id": stream_id,
        "window_start": iso_utc(window_start_ms),
        "window_end": iso_utc(window_start_ms + WINDOW_MS),
        "counts": counts,
        "swarm": swarm_of(counts, SWARM_DIVISOR),
        "sentiment": sentiment,
        "emitted_at": emitted_at,
    }
