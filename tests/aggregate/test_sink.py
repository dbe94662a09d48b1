"""The sink's Redis snapshot: the latest swarm of each stream, kept for snapshot_ttl_s."""

from typing import Any, cast

from emostream.aggregate._sink import SwarmSink
from emostream.aggregate.settings import AggregateSettings
from emostream.common.events import SwarmMessage
from emostream.common.keys import latest_swarm_key
from tests.support.swarms import swarm_message


class _Producer:
    """Takes every message and acknowledges it at once."""

    def produce(self, topic: str, *, key: bytes, value: bytes, on_delivery: Any) -> None:
        on_delivery(None, None)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class _Redis:
    """Records the SETs of its pipelines: key -> (value, ex)."""

    def __init__(self) -> None:
        self.sets: dict[str, tuple[bytes, int]] = {}

    def pipeline(self, *, transaction: bool) -> "_Redis":
        return self

    def set(self, key: str, value: bytes, *, ex: int) -> None:
        self.sets[key] = (value, ex)

    def execute(self) -> None:
        return None


def test_snapshots_expire_after_the_configured_ttl() -> None:
    """Each stream's latest swarm is stored once per batch with snapshot_ttl_s as its expiry."""
    sink = SwarmSink(AggregateSettings(snapshot_ttl_s=42), epoch_ms=0)
    redis = _Redis()
    sink._producer = cast(Any, _Producer())
    sink._redis = cast(Any, redis)
    messages = [
        cast(
            SwarmMessage,
            swarm_message(
                stream,
                batch=1,
                window_start_ms=1_764_000_000_000 + w * 2000,
                counts={"❤️": 1},
                sentiment=0.9,
                emitted_at=1_764_000_005_000,
            ),
        )
        for stream in ("a", "b")
        for w in (0, 1)
    ]
    sink.publish(messages)
    assert set(redis.sets) == {latest_swarm_key("a"), latest_swarm_key("b")}
    assert {ex for _, ex in redis.sets.values()} == {42}


def test_snapshot_ttl_defaults_to_ten_minutes() -> None:
    """A snapshot greets new viewers only, so it outlives its stream's last swarm by 600 s."""
    assert AggregateSettings().snapshot_ttl_s == 600
