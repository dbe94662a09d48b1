"""Aggregated window rows -> swarm messages (pure Python, the fanout's wire format)."""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from emostream.aggregate._transforms import count_column
from emostream.common.emoji import sentiment_index, swarm_of
from emostream.common.events import SwarmMessage, iso_utc, swarm_id


@lru_cache(maxsize=64)
def _count_columns(n: int) -> tuple[str, ...]:
    return tuple(count_column(i) for i in range(n))


# A micro-batch's swarms share a handful of windows; format each bound once.
_window_bound = lru_cache(maxsize=4096)(iso_utc)


def swarm_message(
    row: Mapping[str, Any],
    *,
    emojis: Sequence[str],
    batch_id: int,
    epoch_ms: int,
    divisor: int,
    valence: Mapping[str, float],
    emitted_at_ms: int,
) -> SwarmMessage:
    """The swarm of one (stream, window) update: running counts, swarm sizes, sentiment, timing.

    Everything but ``emitted_at`` is a function of the row, the micro-batch id and the
    checkpoint's epoch, so a replayed micro-batch republishes identical swarms.
    """
    columns = _count_columns(len(emojis))
    counts = {e: int(n) for e, c in zip(emojis, columns, strict=True) if (n := row[c])}
    start = int(row["window_start_ms"])
    return {
        "id": swarm_id(batch_id, start, epoch_ms),
        "stream_id": row["stream_id"],
        "window_start": _window_bound(start),
        "window_end": _window_bound(int(row["window_end_ms"])),
        "counts": counts,
        "swarm": swarm_of(counts, divisor),
        "sentiment": sentiment_index(counts, valence),
        "first_receive_ms": row["first_receive_ms"],
        "last_receive_ms": row["last_receive_ms"],
        "emitted_at": emitted_at_ms,
    }
