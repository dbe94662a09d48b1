"""The streaming query end to end inside Spark: Kafka reactions in, swarms out, Redis snapshot."""

import time
import uuid

import orjson
import pytest
import redis
from confluent_kafka import Consumer, Producer
from pyspark.sql.streaming.query import StreamingQuery

from emostream.common.events import Reaction, now_ms
from emostream.common.keys import latest_swarm_key
from tests.conftest import Topics

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, stream: str, mix: dict[str, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    for emoji, count in mix.items():
        for _ in range(count):
            n += 1
            t = now_ms()
            r = Reaction(uuid.uuid4().hex, stream, f"user-{n}", emoji, t, t)
            producer.produce(topic, key=r.user_id.encode(), value=r.encode())
    assert producer.flush(10) == 0


def _final_counts(bootstrap: str, topic: str, stream: str, expected_total: int) -> dict[str, int]:
    """Sum over windows of each window's last (final) counts, once they add up or time runs out."""
    group = uuid.uuid4().hex
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    windows: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            swarm = orjson.loads(msg.value())
            if swarm["stream_id"] == stream:
                windows[swarm["window_start"]] = swarm["counts"]
            totals: dict[str, int] = {}
            for counts in windows.values():
                for emoji, n in counts.items():
                    totals[emoji] = totals.get(emoji, 0) + n
            if sum(totals.values()) >= expected_total:
                return totals
    finally:
        consumer.close()
    return totals


def test_exact_counts_reach_swarms_and_redis(
    aggregation: StreamingQuery, kafka_bootstrap: str, redis_url: str, topics: Topics
) -> None:
    """Every reaction is counted exactly once and the latest swarm is kept in Redis."""
    stream = f"job-{uuid.uuid4().hex[:8]}"
    _produce(kafka_bootstrap, topics.reactions, stream, {"👏": 120, "😡": 30})
    totals = _final_counts(kafka_bootstrap, topics.swarms, stream, 150)
    assert totals == {"👏": 120, "😡": 30}
    snapshot = redis.Redis.from_url(redis_url).get(latest_swarm_key(stream))
    assert snapshot is not None
    assert orjson.loads(snapshot)["stream_id"] == stream
