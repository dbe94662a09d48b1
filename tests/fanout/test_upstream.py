"""The worker's swarm consumer, against an in-memory stand-in for confluent-kafka."""

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from confluent_kafka import OFFSET_END, TopicPartition

from emostream.common.events import encode_json
from emostream.fanout import _upstream as upstream_module
from emostream.fanout._hub import Hub
from emostream.fanout._upstream import Upstream
from emostream.fanout.settings import FanoutSettings
from tests.fanout.swarms import BASE_MS, swarm_message
from tests.support.waiting import wait_until

NOW = BASE_MS + 100_000


@dataclass
class FakeMessage:
    """The parts of ``confluent_kafka.Message`` the consumer reads."""

    payload: bytes
    ts: int = NOW

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self.payload

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts)

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0


@dataclass
class FakeConsumer:
    """Serves ``messages`` once, then nothing; records what it was asked."""

    topic: str
    messages: list[FakeMessage]
    partitions: int = 3
    config: dict[str, Any] = field(default_factory=dict)
    asked_times: list[TopicPartition] = field(default_factory=list)
    assigned: list[TopicPartition] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    #: Metadata requests made of this client.
    listed: int = 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.listed += 1
        found = SimpleNamespace(partitions=dict.fromkeys(range(self.partitions)), error=None)
        return SimpleNamespace(topics={topic: found})

    def offsets_for_times(self, wanted: list[TopicPartition], timeout: float) -> Any:
        self.asked_times = wanted
        # Partition 0 has messages inside the window from offset 5; the others have none.
        return [
            TopicPartition(tp.topic, tp.partition, 5 if tp.partition == 0 else -1) for tp in wanted
        ]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def poll(self, timeout: float) -> FakeMessage | None:
        batch = self.consume(1, timeout)
        return batch[0] if batch else None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        if not batch:
            time.sleep(0.01)
        return batch

    #: Next offset to read per partition, and the broker's end offset from the latest fetch.
    positions: dict[int, int] = field(default_factory=dict)
    high: dict[int, int] = field(default_factory=dict)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001))
            for tp in partitions
        ]

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached, "the lag must come from local state, not a broker request"
        return (0, self.high.get(tp.partition, -1))

    def close(self) -> None:
        self.closed.set()


def test_consumer_assigns_every_partition_from_the_replay_window() -> None:
    """All partitions are assigned at offsets_for_times(now - window), or at the end if empty."""
    settings = FanoutSettings(swarms_topic="sw", replay_window_s=60)
    hub = Hub(replay_window_s=60, replay_max_per_stream=10, queue_size=4, max_subscribers=4)
    fake = FakeConsumer("sw", [])
    upstream = Upstream(settings, hub, consumer_factory=lambda cfg: fake, clock=lambda: NOW)
    upstream.start()
    try:
        assert upstream.wait_ready(5)
        assert [(tp.partition, tp.offset) for tp in fake.asked_times] == [
            (p, NOW - 60_000) for p in range(3)
        ]
        assert [(tp.partition, tp.offset) for tp in fake.assigned] == [
            (0, 5),
            (1, OFFSET_END),
            (2, OFFSET_END),
        ]
    finally:
        upstream.stop()
    assert fake.closed.is_set()
    assert not upstream.ready


def test_consumer_publishes_valid_swarms_and_skips_invalid_ones() -> None:
    """Valid messages reach the hub (duplicates once); malformed ones are counted and skipped."""
    settings = FanoutSettings(swarms_topic="sw")
    hub = Hub(replay_window_s=60, replay_max_per_stream=10, queue_size=8, max_subscribers=4)
    sub = hub.subscribe("s", transport="sse")
    one, two = (encode_json(swarm_message("s", b, emitted_at=NOW)) for b in (1, 2))
    messages = [FakeMessage(one), FakeMessage(b"{not json"), FakeMessage(one), FakeMessage(two)]
    fake = FakeConsumer("sw", messages)
    upstream = Upstream(settings, hub, consumer_factory=lambda cfg: fake, clock=lambda: NOW)
    upstream.start()
    try:
        received = sub.take(timeout=5)
        if len(received) < 2:
            received += sub.take(timeout=5)
        assert [s.id for s in received] == [swarm_message("s", b)["id"] for b in (1, 2)]
        wait_until("4 consumed", lambda: upstream.stats.consumed == 4, 5, interval_s=0.01)
        assert upstream.stats.invalid == 1
        assert hub.stats.duplicates == 1
    finally:
        upstream.stop()


def test_consumer_reports_its_lag_and_the_age_of_the_last_swarm() -> None:
    """Lag is end offset minus position over read partitions; swarm lag is emit-to-consume."""
    settings = FanoutSettings(swarms_topic="sw")
    hub = Hub(replay_window_s=60, replay_max_per_stream=10, queue_size=8, max_subscribers=4)
    message = encode_json(swarm_message("s", 1, emitted_at=NOW - 250))
    fake = FakeConsumer("sw", [FakeMessage(message)])
    # Partition 0: 7 behind; partition 1: caught up; partition 2: not fetched yet.
    fake.positions = {0: 10, 1: 4}
    fake.high = {0: 17, 1: 4}
    upstream = Upstream(settings, hub, consumer_factory=lambda cfg: fake, clock=lambda: NOW)
    upstream.start()
    try:
        wait_until("a lag of 7", lambda: upstream.stats.lag_messages == 7, 5, interval_s=0.01)
        assert upstream.stats.last_swarm_lag_s == 0.25
        assert upstream.stats.restarts == 0
    finally:
        upstream.stop()


def test_partitions_come_from_a_client_that_never_fetches(monkeypatch: Any) -> None:
    """On the fetching consumer's connection a metadata request waits behind the fetch the
    broker holds open (up to 500 ms, and the swarms with it), so the partition lookups, at the
    start and at every refresh, go to a second client that is never assigned anything."""
    monkeypatch.setattr(upstream_module, "_METADATA_REFRESH_S", 0.01)
    settings = FanoutSettings(swarms_topic="sw")
    hub = Hub(replay_window_s=60, replay_max_per_stream=10, queue_size=8, max_subscribers=4)
    clients: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        clients.append(FakeConsumer("sw", []))
        return clients[-1]

    upstream = Upstream(settings, hub, consumer_factory=factory, clock=lambda: NOW)
    upstream.start()
    try:
        assert upstream.wait_ready(5)
        wait_until(
            "two refreshes after the first lookup",
            lambda: clients[1].listed >= 3,
            5,
            interval_s=0.01,
        )
    finally:
        upstream.stop()
    consumer, metadata = clients
    assert consumer.assigned
    assert consumer.listed == 0
    assert not metadata.assigned
    assert consumer.closed.is_set()
    assert metadata.closed.is_set()
    assert upstream.stats.restarts == 0
