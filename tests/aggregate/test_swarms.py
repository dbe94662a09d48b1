"""Aggregated rows become swarm messages with the contract's fields."""

from typing import Any

from emostream.aggregate._swarms import swarm_message
from emostream.aggregate._transforms import count_column
from emostream.common.emoji import DEFAULT_VALENCE

EMOJIS = ("❤️", "😂", "😡")


def _row(counts: tuple[int, ...]) -> dict[str, object]:
    row: dict[str, object] = {
        "stream_id": "final",
        "window_start_ms": 1_764_000_000_000,
        "window_end_ms": 1_764_000_002_000,
        "first_receive_ms": 1_764_000_000_010,
        "last_receive_ms": 1_764_000_001_990,
    }
    row.update({count_column(i): n for i, n in enumerate(counts)})
    return row


EPOCH = 1_763_999_000_000


def _message(
    counts: tuple[int, ...], batch: int, emitted: int, epoch: int = EPOCH
) -> dict[str, Any]:
    return swarm_message(
        _row(counts),
        emojis=EMOJIS,
        batch_id=batch,
        epoch_ms=epoch,
        divisor=1000,
        valence=DEFAULT_VALENCE,
        emitted_at_ms=emitted,
    )


def test_message_carries_counts_swarm_sentiment_and_window() -> None:
    """2,500 hearts and 300 laughs give swarm 3 and 1 and a positive sentiment."""
    msg = _message((2500, 300, 0), batch=7, emitted=1)
    assert msg["stream_id"] == "final"
    assert msg["counts"] == {"❤️": 2500, "😂": 300}
    assert msg["swarm"] == {"❤️": 3, "😂": 1}
    assert msg["window_start"] == "2025-11-24T16:00:00.000Z"
    assert msg["window_end"] == "2025-11-24T16:00:02.000Z"
    assert 0.9 < msg["sentiment"] <= 1.0


def test_same_batch_and_window_give_the_same_id() -> None:
    """A replayed micro-batch republishes identical ids, so fanout can drop the duplicate."""
    a = _message((1, 0, 0), batch=7, emitted=1)
    b = _message((1, 0, 0), batch=7, emitted=2)
    c = _message((1, 0, 0), batch=8, emitted=2)
    assert a["id"] == b["id"] < c["id"]


def test_a_new_checkpoint_epoch_outranks_later_batches_of_the_old_one() -> None:
    """Batch 0 of a fresh checkpoint still sorts after batch 500 of the previous one."""
    old = _message((1, 0, 0), batch=500, emitted=1)
    new = _message((1, 0, 0), batch=0, emitted=2, epoch=EPOCH + 60_000)
    assert old["id"] < new["id"]
    assert new["id"].startswith(f"{EPOCH + 60_000}.000000000000-")
