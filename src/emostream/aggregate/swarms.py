"""Aggregated window rows -> swarm messages (pure Python, the fanout's wire format)."""

from collections.abc import Mapping, Sequence
from typing import Any

from emostream.aggregate.transforms import count_column
from emostream.common.emoji import sentiment_index, swarm_of
from emostream.common.events import iso_utc, swarm_id


def swarm_message(
    row: Mapping[str, Any],
    *,
    emojis: Sequence[str],
    batch_id: int,
    divisor: int,
    valence: Mapping[str, float],
    emitted_at_ms: int,
) -> dict[str, Any]:
    """The swarm of one (stream, window) update: running counts, swarm sizes, sentiment, timing."""
    counts = {e: int(row[count_column(i)]) for i, e in enumerate(emojis) if row[count_column(i)]}
    return {
        "id": swarm_id(batch_id, int(row["window_start_ms"])),
        "stream_id": row["stream_id"],
        "window_start": iso_utc(int(row["window_start_ms"])),
        "window_end": iso_utc(int(row["window_end_ms"])),
        "counts": counts,
        "swarm": swarm_of(counts, divisor),
        "sentiment": sentiment_index(counts, valence),
        "first_receive_ms": row["first_receive_ms"],
        "last_receive_ms": row["last_receive_ms"],
        "emitted_at": emitted_at_ms,
    }
