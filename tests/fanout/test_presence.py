"""Viewer presence against a real Redis: per-worker entries, totals, expiry, fail-open."""

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from emostream.fanout._presence import Presence, presence_key
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A Redis client of the session's Redis."""
    with redis.Redis.from_url(redis_url) as r:
        yield r


def worker(client: redis.Redis, counts: dict[str, int], ttl_s: float = 5.0) -> Presence:
    """One worker's presence, reporting the (mutable) ``counts``."""
    return Presence(lambda: client, lambda: dict(counts), ttl_s=ttl_s)


def stream() -> str:
    """A stream id no other test uses."""
    return f"p-{uuid.uuid4().hex[:10]}"


def test_counts_of_all_workers_add_up(client: redis.Redis) -> None:
    """Each worker sees the stream's viewers on every worker, its own counted as they are now."""
    s = stream()
    a_counts, b_counts = {s: 2}, {s: 3}
    a, b = worker(client, a_counts), worker(client, b_counts)
    assert a.refresh()
    assert b.refresh()
    assert a.refresh()
    assert a.viewers(s, local=2) == 5
    assert b.viewers(s, local=3) == 5
    # A local change shows at once; the other worker learns it at its next refresh.
    assert a.viewers(s, local=4) == 7
    a_counts[s] = 4
    a.refresh()
    b.refresh()
    assert b.viewers(s, local=3) == 7
    assert client.hlen(presence_key(s)) == 2
    assert 0 < client.pttl(presence_key(s)) <= 5000


def test_a_worker_that_stops_serving_a_stream_withdraws_its_entry(client: redis.Redis) -> None:
    """When a worker's last viewer of a stream leaves, its entry is deleted at the next refresh."""
    s = stream()
    a_counts, b_counts = {s: 2}, {s: 1}
    a, b = worker(client, a_counts), worker(client, b_counts)
    a.refresh()
    b.refresh()
    del a_counts[s]
    a.refresh()
    b.refresh()
    assert b.viewers(s, local=1) == 1
    assert client.hkeys(presence_key(s)) == [b.me.encode()]
    assert b.withdraw()
    assert not client.exists(presence_key(s))


def test_a_dead_workers_entry_expires(client: redis.Redis) -> None:
    """A worker that dies without withdrawing stops counting once its entry's TTL has passed."""
    s = stream()
    dead, alive = worker(client, {s: 7}, ttl_s=0.4), worker(client, {s: 1}, ttl_s=0.4)
    dead.refresh()
    alive.refresh()
    assert alive.viewers(s, local=1) == 8
    time.sleep(0.5)
    alive.refresh()
    assert alive.viewers(s, local=1) == 1
    assert client.hkeys(presence_key(s)) == [alive.me.encode()]


def test_one_round_trip_per_refresh_whatever_the_number_of_streams(client: redis.Redis) -> None:
    """All streams of a refresh travel in one pipeline."""
    streams = [stream() for _ in range(20)]
    p = worker(client, dict.fromkeys(streams, 1))
    p.refresh()  # loads the script
    before = client.info("commandstats")
    p.refresh()
    after = client.info("commandstats")

    def calls(stats: dict[str, dict[str, int]], command: str) -> int:
        return stats.get(f"cmdstat_{command}", {}).get("calls", 0)

    # One EVALSHA per stream, pipelined; no SCRIPT EXISTS/LOAD round trip before them.
    assert calls(after, "evalsha") - calls(before, "evalsha") == 20
    assert calls(after, "script|exists") == calls(before, "script|exists")
    assert calls(after, "script|load") == calls(before, "script|load")


def test_the_script_is_reloaded_after_redis_forgot_it(client: redis.Redis) -> None:
    """A flushed script cache (Redis restarted) costs one reload, not a failed refresh."""
    s = stream()
    p = worker(client, {s: 2})
    assert p.refresh()
    client.script_flush()
    assert p.refresh()
    assert p.viewers(s, local=2) == 2


def test_redis_down_is_fail_open_and_counted() -> None:
    """Without Redis, counts fall back to the local viewers and each failure is counted."""
    dead = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    p = Presence(lambda: dead, lambda: {"s": 3}, ttl_s=5)
    assert not p.refresh()
    assert not p.refresh()
    assert p.stats.failures == 2
    assert p.viewers("s", local=3) == 3


def test_last_known_counts_outlive_a_failure_until_their_ttl(client: redis.Redis) -> None:
    """After Redis fails, the other workers' last counts are used until they would have expired."""
    s = stream()
    now = [100.0]
    other = worker(client, {s: 4})
    other.refresh()
    mine = Presence(lambda: client, lambda: {s: 1}, ttl_s=5, clock=lambda: now[0])
    mine.refresh()
    assert mine.viewers(s, local=1) == 5
    now[0] += 4
    assert mine.viewers(s, local=1) == 5
    now[0] += 2
    assert mine.viewers(s, local=1) == 1
