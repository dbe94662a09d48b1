"""The hub: subscriptions, backlog on subscribe, bounded queues, slow-viewer drops and the
bounds of replay memory."""

import gc
import random
import threading
import tracemalloc

import pytest

from emostream.fanout._buffer import Verdict, swarm_bytes
from emostream.fanout._hub import CapacityError, Hub, Subscription, SubscriptionClosedError
from emostream.fanout.settings import FanoutSettings
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


# -- replay memory bounds ------------------------------------------------------------------


def bounded_hub(
    *, max_streams: int | None = None, max_bytes: int | None = None, window_s: float = 60
) -> tuple[Hub, list[int]]:
    """A hub with replay bounds and a clock the test moves (``clock[0]``)."""
    clock = [BASE_MS]
    hub = Hub(
        replay_window_s=window_s,
        replay_max_per_stream=100,
        queue_size=1000,
        max_subscribers=1000,
        replay_max_streams=max_streams,
        replay_max_bytes=max_bytes,
        clock=lambda: clock[0],
    )
    return hub, clock


def assert_consistent(hub: Hub) -> None:
    """The hub's own accounting agrees with its buffers and viewers."""
    streams = hub._streams
    assert hub.replay_bytes() == sum(s.buffer.nbytes for s in streams.values())
    assert set(hub._idle) == {sid for sid, s in streams.items() if not s.subscribers}
    assert hub._watched == {sid for sid, s in streams.items() if s.subscribers}


def test_bounds_hold_under_a_flood_of_100000_streams() -> None:
    """100,000 fresh stream ids with the default bounds leave at most 10,000 streams buffered."""
    settings = FanoutSettings()
    hub, _ = bounded_hub(
        max_streams=settings.replay_max_streams, max_bytes=settings.replay_max_bytes
    )
    n = 100_000
    for i in range(n):
        hub.publish(make_swarm(f"flood-{i}", 1))
        assert hub.stream_count() <= settings.replay_max_streams
    assert hub.stream_count() == settings.replay_max_streams
    assert hub.replay_bytes() <= settings.replay_max_bytes
    assert hub.stats.evictions == {"streams": n - settings.replay_max_streams}
    # The newest streams are the ones kept.
    assert hub.has_buffered(f"flood-{n - 1}")
    assert not hub.has_buffered(f"flood-{n - settings.replay_max_streams - 1}")
    assert_consistent(hub)


def test_bytes_bound_holds_under_a_flood_of_100000_streams() -> None:
    """With a byte bound tighter than the stream bound, buffered bytes never exceed it."""
    max_bytes = 200 * swarm_bytes(make_swarm("flood-0", 1))
    hub, _ = bounded_hub(max_streams=10_000, max_bytes=max_bytes)
    for i in range(100_000):
        hub.publish(make_swarm(f"flood-{i}", 1))
        assert hub.replay_bytes() <= max_bytes
    assert 190 <= hub.stream_count() <= 200
    assert hub.stats.evictions["bytes"] == 100_000 - hub.stream_count()
    assert hub.stats.evictions["streams"] == 0
    assert_consistent(hub)


def test_memory_stays_flat_once_the_stream_bound_is_reached() -> None:
    """Measured with tracemalloc, ten times more fresh streams take no more memory."""
    hub, _ = bounded_hub(max_streams=500)
    swarms = [make_swarm(f"flood-{i}", 1) for i in range(20_000)]
    gc.collect()
    tracemalloc.start()
    try:
        for s in swarms[:2000]:
            hub.publish(s)
        gc.collect()
        after_2000 = tracemalloc.get_traced_memory()[0]
        for s in swarms[2000:]:
            hub.publish(s)
        gc.collect()
        after_20000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after_20000 - after_2000 < 100_000


def test_streams_with_viewers_are_kept_while_those_without_are_evicted() -> None:
    """Past the stream bound only viewer-less streams go; watched ones keep their swarms."""
    hub, _ = bounded_hub(max_streams=3)
    watched = [hub.subscribe(sid, transport="sse") for sid in ("w1", "w2")]
    for sid in ("w1", "w2"):
        hub.publish(make_swarm(sid, 1))
    for i in range(10):
        hub.publish(make_swarm(f"idle-{i}", 1))
    assert hub.stream_count() == 3
    assert hub.has_buffered("w1")
    assert hub.has_buffered("w2")
    assert hub.has_buffered("idle-9")
    assert hub.stats.evictions["streams"] == 9
    for sub in watched:
        assert [s.stream_id for s in sub.take(timeout=0)] == [sub.stream_id]
    assert_consistent(hub)


def test_watched_streams_are_kept_even_past_the_stream_bound() -> None:
    """When every stream has viewers, none is evicted, and the bound holds again once they go."""
    hub, _ = bounded_hub(max_streams=2)
    subs = [hub.subscribe(sid, transport="ws") for sid in ("a", "b", "c")]
    assert hub.stream_count() == 3
    assert hub.stats.evictions["streams"] == 0
    for sub in subs:
        sub.close()
    hub.publish(make_swarm("d", 1))
    assert hub.stream_count() == 2
    assert hub.stats.evictions["streams"] == 2
    assert_consistent(hub)


def test_least_recently_published_stream_is_evicted_first() -> None:
    """A stream published to again moves to the back of the eviction order."""
    hub, _ = bounded_hub(max_streams=3)
    for sid in ("a", "b", "c"):
        hub.publish(make_swarm(sid, 1))
    hub.publish(make_swarm("a", 2))
    hub.publish(make_swarm("d", 1))
    assert not hub.has_buffered("b")
    hub.publish(make_swarm("e", 1))
    assert not hub.has_buffered("c")
    assert [sid for sid in ("a", "d", "e") if hub.has_buffered(sid)] == ["a", "d", "e"]
    # A duplicate is no sign of life: it does not move its stream back.
    hub.publish(make_swarm("a", 2))
    hub.publish(make_swarm("f", 1))
    assert not hub.has_buffered("a")
    assert_consistent(hub)


def test_stream_left_by_its_last_viewer_counts_as_just_published() -> None:
    """A viewer dropped a moment ago can still resume: its stream is evicted last."""
    hub, _ = bounded_hub(max_streams=3)
    sub = hub.subscribe("watched", transport="sse")
    swarms = [make_swarm("watched", b) for b in (1, 2)]
    for s in swarms:
        hub.publish(s)
    hub.publish(make_swarm("a", 1))
    hub.publish(make_swarm("b", 1))
    sub.close()
    hub.publish(make_swarm("c", 1))
    assert hub.has_buffered("watched")
    assert not hub.has_buffered("a")
    resumed = hub.subscribe("watched", transport="sse", last_event_id=swarms[0].id)
    assert resumed.take_backlog() == swarms[1:]


def test_subscribe_to_a_new_stream_enforces_the_stream_bound() -> None:
    """A viewer's new stream entry evicts the least recent viewer-less stream."""
    hub, _ = bounded_hub(max_streams=2)
    hub.publish(make_swarm("a", 1))
    hub.publish(make_swarm("b", 1))
    hub.subscribe("c", transport="sse")
    assert hub.stream_count() == 2
    assert not hub.has_buffered("a")
    assert hub.has_buffered("b")
    assert hub.stats.evictions == {"streams": 1}


def test_viewerless_streams_go_before_any_watched_swarm_is_trimmed() -> None:
    """Past the byte bound, whole viewer-less streams are evicted first, watched ones untouched."""
    # Stream ids of one length: their swarms have one size.
    size = swarm_bytes(make_swarm("w-0", 1))
    hub, _ = bounded_hub(max_bytes=4 * size)
    sub = hub.subscribe("w-0", transport="sse")
    for b in (1, 2):
        hub.publish(make_swarm("w-0", b))
    hub.publish(make_swarm("i-1", 1))
    hub.publish(make_swarm("i-2", 1))
    hub.publish(make_swarm("w-0", 3))
    assert not hub.has_buffered("i-1")
    assert hub.has_buffered("i-2")
    assert hub.stats.evictions == {"bytes": 1}
    assert len(sub.take(timeout=0)) == 3
    assert_consistent(hub)


def test_oldest_swarms_of_the_largest_buffers_are_trimmed_when_all_have_viewers() -> None:
    """With viewers everywhere, the largest buffer loses its oldest swarms; ids stay deduped."""
    size = swarm_bytes(make_swarm("big", 1))
    hub, _ = bounded_hub(max_bytes=6 * size)
    for sid in ("big", "few"):
        hub.subscribe(sid, transport="sse")
    big = [make_swarm("big", b) for b in range(1, 6)]
    for s in big:
        hub.publish(s)
    hub.publish(make_swarm("few", 1))
    assert hub.stats.evictions["bytes"] == 0
    hub.publish(make_swarm("few", 2))
    assert hub.replay_bytes() == 6 * size
    assert hub.stats.evictions == {"bytes": 1}
    # A viewer resuming from before the trimmed swarm gets what is left.
    resumed = hub.subscribe("big", transport="sse", last_event_id=make_swarm("big", 0).id)
    assert resumed.take_backlog() == big[1:]
    whole = hub.subscribe("few", transport="ws", last_event_id="")
    assert [s.id for s in whole.take_backlog()] == [make_swarm("few", b).id for b in (1, 2)]
    # The trimmed stream still knows its greatest id.
    assert hub.publish(big[-1]) is Verdict.DUPLICATE
    assert_consistent(hub)


def test_trimming_follows_sizes_that_expiry_changed() -> None:
    """A buffer that expiry shrank is no longer taken for the largest."""
    size = swarm_bytes(make_swarm("a", 1))
    hub, clock = bounded_hub(max_bytes=3 * size, window_s=10)
    for sid in ("a", "b"):
        hub.subscribe(sid, transport="sse")
    for b in (1, 2, 3):
        hub.publish(make_swarm("a", b, emitted_at=BASE_MS))
    clock[0] = BASE_MS + 15_000
    hub.expire()
    assert hub.replay_bytes() == 0
    for s in (make_swarm("b", 1), make_swarm("b", 2), make_swarm("a", 4)):
        hub.publish(s)
    # Now "b" holds two swarms and "a" one, though "a" held three before the expiry.
    hub.publish(make_swarm("b", 3))
    assert hub.stats.evictions == {"bytes": 1}
    assert hub.subscribe("a", transport="ws", last_event_id="").take_backlog() == [
        make_swarm("a", 4)
    ]
    assert hub.subscribe("b", transport="ws", last_event_id="").take_backlog() == [
        make_swarm("b", 2),
        make_swarm("b", 3),
    ]
    assert_consistent(hub)


def test_bounds_and_accounting_survive_a_random_mix_of_operations() -> None:
    """Publishes, resumes, viewers coming and going, expiry and forget keep every invariant."""
    rng = random.Random(7)
    size = swarm_bytes(make_swarm("s-0", 1))
    max_streams, max_bytes = 8, 20 * size
    hub, clock = bounded_hub(max_streams=max_streams, max_bytes=max_bytes, window_s=5)
    subs: list[Subscription] = []
    batches: dict[str, int] = {}
    for _ in range(5000):
        sid = f"s-{rng.randrange(12)}"
        op = rng.random()
        enforced = op < 0.7 or (op < 0.8 and len(subs) < 15)
        if op < 0.7:
            batches[sid] = batches.get(sid, 0) + rng.choice((0, 1, 1, 1))
            swarm = make_swarm(sid, max(batches[sid], 1), emitted_at=clock[0])
            # A duplicate adds nothing, so it does not enforce the bounds either.
            enforced = hub.publish(swarm) is Verdict.ADDED
        elif op < 0.8:
            if enforced:
                subs.append(hub.subscribe(sid, transport="sse"))
        elif op < 0.9 and subs:
            subs.pop(rng.randrange(len(subs))).close()
        elif op < 0.95:
            clock[0] += 1000
            hub.expire()
        else:
            hub.forget([sid])
        for sub in subs:
            sub.take(timeout=0)
        if enforced:
            # Only streams with viewers may keep the worker past its stream bound (until the
            # next swarm added or viewer subscribed, a viewer leaving may too).
            assert hub.stream_count() <= max(max_streams, len(hub._watched))
        assert hub.replay_bytes() <= max_bytes
        assert_consistent(hub)
    # Each way of shedding memory was taken.
    assert hub.stats.evictions["streams"] > 0
    assert hub.stats.evictions["bytes"] > 0
    assert hub.stats.forgotten > 0
    assert len(hub._sizes) <= 2 * len(hub._watched) + 64


def test_an_evicted_stream_forgets_its_last_id_but_no_viewer_gets_a_swarm_twice() -> None:
    """After eviction a replayed micro-batch is buffered again, and viewers still dedupe by id."""
    hub, _ = bounded_hub(max_streams=1)
    first, second = make_swarm("a", 1), make_swarm("a", 2)
    hub.publish(first)
    hub.publish(second)
    hub.publish(make_swarm("b", 1))
    assert not hub.has_buffered("a")
    resuming = hub.subscribe("a", transport="sse", last_event_id=second.id)
    assert resuming.take_backlog() == []
    fresh = hub.subscribe("a", transport="ws")
    # The replayed swarm is no longer known as a duplicate ...
    assert hub.publish(second) is Verdict.ADDED
    hub.publish(make_swarm("a", 3))
    # ... but the viewer who had it skips it, and the new viewer gets it once, in order.
    assert resuming.take(timeout=0) == [make_swarm("a", 3)]
    assert fresh.take(timeout=0) == [second, make_swarm("a", 3)]
    assert hub.publish(make_swarm("a", 3)) is Verdict.DUPLICATE


def test_forget_drops_ended_streams_without_viewers() -> None:
    """forget() drops the buffers of the named streams nobody here watches, and counts them."""
    hub, _ = bounded_hub()
    for sid in ("ended", "watched", "live"):
        hub.publish(make_swarm(sid, 1))
    sub = hub.subscribe("watched", transport="sse")
    kept_bytes = hub.replay_bytes() - swarm_bytes(make_swarm("ended", 1))
    assert hub.forget(["ended", "watched", "never-seen"]) == 1
    assert hub.forget(iter(["ended"])) == 0
    assert not hub.has_buffered("ended")
    assert hub.has_buffered("watched")
    assert hub.has_buffered("live")
    assert hub.replay_bytes() == kept_bytes
    assert hub.stats.forgotten == 1
    assert hub.stats.evictions == {}
    # Once its last viewer left, a later call drops the ended stream that was watched.
    sub.close()
    assert hub.forget(["watched"]) == 1
    assert hub.stream_count() == 1
    assert_consistent(hub)


def test_unbounded_hub_reports_no_limits() -> None:
    """Without bounds nothing is evicted and no limit is reported; with them, both are."""
    hub = make_hub()
    for i in range(100):
        hub.publish(make_swarm(f"s-{i}", 1))
    assert hub.stream_count() == 100
    assert hub.replay_limits == {}
    assert bounded_hub(max_streams=5, max_bytes=6)[0].replay_limits == {"streams": 5, "bytes": 6}


def test_a_watched_streams_buffer_takes_what_the_bound_counts() -> None:
    """Each delivered swarm is encoded for its viewers, but only the newest keeps those
    encodings: the buffered ones take about what :func:`swarm_bytes` counts against the bound,
    not three times as much. Measured with tracemalloc over 300 published and delivered swarms,
    of which the buffer keeps 100."""
    hub = make_hub()
    sub = hub.subscribe("a", transport="sse")
    first = make_swarm("a", 1)
    hub.publish(first)
    first_text, first_frame = sub.take(timeout=0)[0].render(viewers=1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for b in range(2, 301):
            hub.publish(make_swarm("a", b))
            for delivered in sub.take(timeout=0):
                delivered.render(viewers=1)
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    resumed = hub.subscribe("a", transport="sse", last_event_id="0")
    buffered = resumed.take_backlog()
    assert len(buffered) == 100
    counted = sum(swarm_bytes(s) for s in buffered)
    assert taken < counted * 1.3, (taken, counted)
    # A dropped encoding is made again, the same, for a viewer resuming from the buffer.
    assert first.render(viewers=1) == (first_text, first_frame)
