"""The stream registry against a real Redis: caps in open mode, the admin calls, the mirror."""

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from emostream.common.registry import Admission, RegistryConfig, StreamRegistry
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def config(redis_url: str) -> RegistryConfig:
    """Open mode with small caps, under keys of this test's own."""
    return RegistryConfig(
        mode="open",
        redis_url=redis_url,
        key_prefix=f"test-{uuid.uuid4().hex[:8]}:streams:",
        refresh_s=0.2,
        max_live_streams=5,
        new_streams_per_min=3,
    )


@pytest.fixture
def registries(config: RegistryConfig) -> Iterator[list[StreamRegistry]]:
    """Registries made by ``make`` (stopped at the end)."""
    made: list[StreamRegistry] = []
    yield made
    for registry in made:
        registry.stop()


def make(
    registries: list[StreamRegistry], config: RegistryConfig, **changes: object
) -> StreamRegistry:
    """A registry of ``config`` with ``changes``, as another process would have it."""
    registry = StreamRegistry(RegistryConfig(**{**config.__dict__, **changes}))
    registries.append(registry)
    return registry


def test_open_mode_admits_new_streams_within_the_caps(
    config: RegistryConfig, registries: list[StreamRegistry]
) -> None:
    """New streams per client per minute, then live streams in all, are capped."""
    registry = make(registries, config)
    assert [registry.admit(f"s{i}", "client-a").admission for i in range(4)] == [
        Admission.LIVE,
        Admission.LIVE,
        Admission.LIVE,
        Admission.CLIENT_CAP,
    ]
    refused = registry.admit("s3", "client-a")
    assert refused.admission is Admission.CLIENT_CAP
    assert 0 < refused.retry_after_s <= 60
    # A live stream needs no admission, whoever reacts to it.
    assert registry.admit("s0", "client-a").admission is Admission.LIVE
    assert registry.admit("s3", "client-b").admission is Admission.LIVE
    assert registry.admit("s4", "client-b").admission is Admission.LIVE
    assert registry.admit("s5", "client-c").admission is Admission.LIVE_CAP
    assert registry.live_count() == 5


def test_closed_mode_takes_only_opened_streams_and_every_process_sees_the_change(
    config: RegistryConfig, registries: list[StreamRegistry]
) -> None:
    """open/close on one process reach another within a refresh; unknown streams are refused
    without asking Redis."""
    admin = make(registries, config, mode="closed")
    other = make(registries, config, mode="closed")
    assert other.admit("final", "c").admission is Admission.NOT_LIVE
    assert admin.open("final") is True
    assert admin.open("final") is False
    assert admin.admit("final", "c").admission is Admission.LIVE
    wait_until(
        "the other process sees the stream opened",
        lambda: other.admit("final", "c").admission is Admission.LIVE,
        timeout_s=5,
    )
    assert admin.close("final") is True
    assert admin.close("final") is False
    assert admin.admit("final", "c").admission is Admission.NOT_LIVE
    wait_until("the other process sees it closed", lambda: not other.is_live("final"), 5)


def test_idle_open_streams_end_and_touched_ones_stay(
    config: RegistryConfig, registries: list[StreamRegistry]
) -> None:
    """A stream without reactions for idle_s stops being live; one with reactions stays."""
    registry = make(registries, config, idle_s=1.5)
    registry.admit("busy", "c")
    registry.admit("quiet", "c")
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        registry.admit("busy", "c")
        time.sleep(0.2)
    assert registry.is_live("busy")
    assert not registry.is_live("quiet")


def test_opened_streams_do_not_idle_out(
    config: RegistryConfig, registries: list[StreamRegistry]
) -> None:
    """A stream opened through the admin API stays live until closed, in open mode too."""
    registry = make(registries, config, idle_s=0.5)
    registry.open("pinned")
    time.sleep(1.5)
    assert registry.is_live("pinned")


def test_a_live_stream_costs_no_round_trip(
    config: RegistryConfig, registries: list[StreamRegistry], redis_url: str
) -> None:
    """Known streams are answered from memory: Redis sees no command per admission."""
    registry = make(registries, config, refresh_s=60)
    registry.admit("s", "c")
    before = _commands(redis_url)
    for _ in range(1000):
        assert registry.admit("s", "c").admission is Admission.LIVE
    # INFO itself counts; nothing else ran.
    assert _commands(redis_url) - before <= 2


def test_redis_down_admits_new_streams_unchecked_up_to_the_cap(config: RegistryConfig) -> None:
    """Without Redis, open mode fails open (counted), still within the live-stream cap."""
    registry = StreamRegistry(
        RegistryConfig(**{**config.__dict__, "redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    )
    try:
        verdicts = [registry.admit(f"s{i}", "c").admission for i in range(6)]
    finally:
        registry.stop()
    assert verdicts == [Admission.LIVE] * 5 + [Admission.LIVE_CAP]
    assert registry.unchecked == 5


def _commands(redis_url: str) -> int:
    info = redis.Redis.from_url(redis_url).info("stats")
    return int(info["total_commands_processed"])
