"""The hub: subscriptions, backlog on subscribe, bounded queues and slow-viewer drops."""

import threading

import pytest

from emostream.fanout._buffer import Verdict
from emostream.fanout._hub import CapacityError, Hub, SubscriptionClosedError
from tests.fanout.swarms import BASE_MS, make_swarm


def make_hub(*, queue_size: int = 8, max_subscribers: int = 100, now: int = BASE_MS) -> Hub:
    """A hub whose clock stands still at ``now``."""
    return Hub(
        replay_window_s=60,
        replay_max_per_stream=100,
        queue_size=queue_size,
        max_subscribers=max_subscribers,
        clock=lambda: now,
    )


def test_subscriber_receives_published_swarms_in_order() -> None:
    """A viewer gets each swarm of its stream once, in order, and none of other streams."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    assert sub.take_backlog() == []
    swarms = [make_swarm("a", b) for b in (1, 2, 3)]
    hub.publish(make_swarm("b", 1))
    for s in swarms:
        hub.publish(s)
    # Everything queued comes in one take, so a connection writes it all at once.
    assert sub.take(timeout=0) == swarms
    assert sub.take(timeout=0) == []


def test_duplicate_is_delivered_once() -> None:
    """A swarm id published twice reaches the viewer once."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    first = make_swarm("a", 1)
    assert hub.publish(first) is Verdict.ADDED
    assert hub.publish(make_swarm("a", 1)) is Verdict.DUPLICATE
    assert sub.take(timeout=0) == [first]
    assert sub.take(timeout=0) == []
    assert hub.stats.duplicates == 1


def test_new_viewer_starts_from_the_latest_buffered_swarm() -> None:
    """Without Last-Event-ID the backlog is the newest swarm only (the snapshot)."""
    hub = make_hub()
    for b in (1, 2, 3):
        hub.publish(make_swarm("a", b))
    sub = hub.subscribe("a", transport="sse")
    assert sub.take_backlog() == [make_swarm("a", 3)]
    assert sub.take_backlog() == []


def test_resume_gets_exactly_the_missed_swarms_then_live_ones() -> None:
    """With Last-Event-ID the backlog is every later buffered swarm, then live ones follow."""
    hub = make_hub()
    swarms = [make_swarm("a", b) for b in (1, 2, 3, 4)]
    for s in swarms[:3]:
        hub.publish(s)
    sub = hub.subscribe("a", transport="sse", last_event_id=swarms[0].id)
    assert sub.take_backlog() == swarms[1:3]
    hub.publish(swarms[3])
    assert sub.take(timeout=0) == [swarms[3]]
    assert sub.last_id == swarms[3].id


def test_redis_snapshot_is_used_only_without_a_buffered_swarm() -> None:
    """The caller's snapshot greets a new viewer when the buffer is empty, never otherwise."""
    hub = make_hub()
    snapshot = make_swarm("a", 5)
    sub = hub.subscribe("a", transport="sse", snapshot=snapshot)
    assert sub.take_backlog() == [snapshot]
    hub.publish(make_swarm("a", 6))
    other = hub.subscribe("a", transport="ws", snapshot=snapshot)
    assert other.take_backlog() == [make_swarm("a", 6)]


def test_live_swarms_not_newer_than_the_snapshot_are_skipped() -> None:
    """A snapshot ahead of this pod's consumer is not followed by older swarms."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse", snapshot=make_swarm("a", 5))
    sub.take_backlog()
    hub.publish(make_swarm("a", 4))
    hub.publish(make_swarm("a", 5))
    assert sub.take(timeout=0) == []
    hub.publish(make_swarm("a", 6))
    assert sub.take(timeout=0) == [make_swarm("a", 6)]


def test_slow_viewer_is_dropped_without_affecting_others() -> None:
    """A viewer whose queue overflows is closed and counted; a reading viewer gets everything."""
    hub = make_hub(queue_size=2)
    slow = hub.subscribe("a", transport="sse")
    fast = hub.subscribe("a", transport="ws")
    received = []
    for b in range(1, 6):
        hub.publish(make_swarm("a", b))
        received.extend(fast.take(timeout=0))
    assert [s.id for s in received] == [make_swarm("a", b).id for b in range(1, 6)]
    with pytest.raises(SubscriptionClosedError) as closed:
        slow.take(timeout=0)
    assert closed.value.reason == "overflow"
    assert hub.stats.slow_disconnects["sse"] == 1
    assert hub.connections() == {"sse": 0, "ws": 1}
    slow.close()  # closing an already dropped subscription is harmless
    assert hub.connections() == {"sse": 0, "ws": 1}


def test_unsubscribe_removes_the_viewer() -> None:
    """After close, the viewer gets nothing more and is no longer counted."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    assert hub.subscriber_count("a") == 1
    sub.close()
    sub.close()
    assert hub.subscriber_count("a") == 0
    assert hub.connections() == {"sse": 0, "ws": 0}
    hub.publish(make_swarm("a", 1))
    with pytest.raises(SubscriptionClosedError):
        sub.take(timeout=0)


def test_capacity_limit_refuses_extra_viewers() -> None:
    """Past max_subscribers a subscribe raises CapacityError; a freed slot can be reused."""
    hub = make_hub(max_subscribers=2)
    first = hub.subscribe("a", transport="sse")
    hub.subscribe("b", transport="ws")
    with pytest.raises(CapacityError):
        hub.subscribe("c", transport="sse")
    assert hub.stats.rejected == 1
    first.close()
    hub.subscribe("c", transport="sse")


def test_close_all_ends_every_feed_and_refuses_new_ones() -> None:
    """Shutdown closes every subscription with reason 'shutdown' and refuses new viewers."""
    hub = make_hub()
    subs = [hub.subscribe(s, transport="sse") for s in ("a", "a", "b")]
    assert hub.close_all() == 3
    for sub in subs:
        with pytest.raises(SubscriptionClosedError) as closed:
            sub.take(timeout=0)
        assert closed.value.reason == "shutdown"
    with pytest.raises(CapacityError):
        hub.subscribe("a", transport="sse")


def test_expire_forgets_idle_streams_but_keeps_watched_ones() -> None:
    """Streams without viewers are forgotten once their swarms expire; watched ones stay."""
    clock = [BASE_MS]
    hub = Hub(
        replay_window_s=10,
        replay_max_per_stream=100,
        queue_size=8,
        max_subscribers=10,
        clock=lambda: clock[0],
    )
    hub.publish(make_swarm("idle", 1, emitted_at=BASE_MS))
    hub.publish(make_swarm("watched", 1, emitted_at=BASE_MS))
    hub.subscribe("watched", transport="sse")
    hub.expire()
    assert hub.stream_count() == 2
    clock[0] = BASE_MS + 20_000
    hub.expire()
    assert hub.stream_count() == 1
    assert not hub.has_buffered("watched")


def test_waiting_viewer_wakes_when_a_swarm_arrives() -> None:
    """take() blocks until a swarm is published from another thread."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    timer = threading.Timer(0.05, hub.publish, args=[make_swarm("a", 1)])
    timer.start()
    try:
        assert sub.take(timeout=5) == [make_swarm("a", 1)]
    finally:
        timer.cancel()


def test_waiting_viewer_times_out_for_a_heartbeat() -> None:
    """take() returns nothing after its timeout so the connection can send a heartbeat."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    assert sub.take(timeout=0.01) == []
