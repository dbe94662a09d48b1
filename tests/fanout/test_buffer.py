"""Swarm validation and the per-stream replay buffer."""

import gc
import sys
import tracemalloc

import orjson
import pytest

from emostream.common.errors import InvalidEventError
from emostream.common.events import encode_json
from emostream.fanout._buffer import ReplayBuffer, Verdict, swarm_bytes
from emostream.fanout._swarm import Swarm
from tests.fanout.swarms import BASE_MS, make_swarm, swarm_message


def test_swarm_is_encoded_once_for_both_transports() -> None:
    """A decoded swarm renders one JSON text with viewers added, and its complete SSE frame."""
    swarm = make_swarm("s", 7)
    assert swarm.text.startswith('{"id":"000000000007-')
    text, frame = swarm.render(12)
    assert orjson.loads(text) == {**orjson.loads(swarm.text), "viewers": 12}
    assert frame == f"id: {swarm.id}\nevent: swarm\ndata: {text}\n\n".encode()
    assert swarm.render(12)[0] is text
    assert swarm.time_ms == swarm.emitted_at_ms


def test_rendering_keeps_the_kafka_json_and_replaces_an_upstream_viewers_member() -> None:
    """Only "viewers" differs from the Kafka message; a stale upstream value is replaced."""
    msg = {**swarm_message("s", 3), "viewers": 999}
    swarm = Swarm.decode(encode_json(msg), fallback_time_ms=0)
    assert orjson.loads(swarm.render(0)[0]) == {**msg, "viewers": 0}
    assert orjson.loads(swarm.render(5)[0]) == {**msg, "viewers": 5}


def test_swarm_without_emitted_at_uses_the_fallback_time() -> None:
    """Without emitted_at, the Kafka timestamp given as fallback decides expiry."""
    msg = swarm_message("s", 1)
    del msg["emitted_at"]
    swarm = Swarm.decode(encode_json(msg), fallback_time_ms=123)
    assert swarm.time_ms == 123
    assert swarm.emitted_at_ms is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"id": "has space"}, "id"),
        ({"stream_id": "bad/id"}, "stream_id"),
        ({"counts": []}, "counts"),
    ],
)
def test_malformed_swarms_are_refused(change: dict[str, object], field: str) -> None:
    """Messages without a usable id, stream id or counts are refused, naming the field."""
    msg = {**swarm_message("s", 1), **change}
    with pytest.raises(InvalidEventError) as caught:
        Swarm.decode(encode_json(msg), fallback_time_ms=0)
    assert caught.value.field == field


def test_non_json_is_refused() -> None:
    """Bytes that are not JSON are refused, not raised as a decoder error."""
    with pytest.raises(InvalidEventError):
        Swarm.decode(b"\xff not json", fallback_time_ms=0)


def test_buffer_keeps_swarms_in_id_order() -> None:
    """Swarms come out of the buffer in the order of their ids."""
    buf = ReplayBuffer(window_ms=60_000, max_items=100)
    for batch in (1, 2, 3):
        assert buf.add(make_swarm("s", batch)) is Verdict.ADDED
    assert [s.id for s in buf.after("")] == [make_swarm("s", b).id for b in (1, 2, 3)]
    assert buf.latest is not None
    assert buf.latest.id == make_swarm("s", 3).id


def test_buffer_refuses_a_repeated_id() -> None:
    """A replayed micro-batch (same ids again) is a duplicate and is not buffered twice."""
    buf = ReplayBuffer(window_ms=60_000, max_items=100)
    buf.add(make_swarm("s", 1, window=0))
    buf.add(make_swarm("s", 1, window=1))
    assert buf.add(make_swarm("s", 1, window=0)) is Verdict.DUPLICATE
    assert buf.add(make_swarm("s", 1, window=1)) is Verdict.DUPLICATE
    assert len(buf) == 2


def test_buffer_calls_an_older_batch_stale() -> None:
    """An id from an older micro-batch than the latest is stale, not a duplicate."""
    buf = ReplayBuffer(window_ms=60_000, max_items=100)
    buf.add(make_swarm("s", 5))
    assert buf.add(make_swarm("s", 4, window=9)) is Verdict.STALE
    assert len(buf) == 1


def test_after_returns_only_later_ids() -> None:
    """after(id) is every buffered swarm with a greater id, including for unknown ids."""
    buf = ReplayBuffer(window_ms=60_000, max_items=100)
    swarms = [make_swarm("s", b) for b in (10, 20, 30)]
    for s in swarms:
        buf.add(s)
    assert buf.after(swarms[0].id) == swarms[1:]
    assert buf.after(swarms[2].id) == []
    # An id between two buffered ones (missed by this pod) resumes at the next greater one.
    assert buf.after(make_swarm("s", 15).id) == swarms[1:]


def test_expiry_drops_swarms_older_than_the_window() -> None:
    """Swarms emitted more than the window ago leave the buffer; the dedup memory stays."""
    buf = ReplayBuffer(window_ms=10_000, max_items=100)
    old = make_swarm("s", 1, emitted_at=BASE_MS)
    new = make_swarm("s", 2, emitted_at=BASE_MS + 8_000)
    buf.add(old)
    buf.add(new)
    assert buf.expire(BASE_MS + 15_000) == 1
    assert buf.after("") == [new]
    assert buf.expire(BASE_MS + 30_000) == 1
    assert len(buf) == 0
    assert buf.latest is None
    assert buf.add(new) is Verdict.DUPLICATE


def test_buffer_is_bounded_by_count() -> None:
    """However young, at most max_items swarms are kept, the newest ones."""
    buf = ReplayBuffer(window_ms=60_000, max_items=3)
    swarms = [make_swarm("s", b) for b in range(1, 6)]
    for s in swarms:
        buf.add(s)
    assert buf.after("") == swarms[-3:]


def test_buffer_counts_the_bytes_it_holds() -> None:
    """nbytes follows every add, trim, expiry and count-bound drop; trimming keeps the last id."""
    buf = ReplayBuffer(window_ms=10_000, max_items=3)
    swarms = [make_swarm("s", b, emitted_at=BASE_MS + b * 1000) for b in range(1, 6)]
    for s in swarms:
        buf.add(s)
    assert buf.nbytes == sum(swarm_bytes(s) for s in swarms[-3:])
    assert buf.trim() == swarm_bytes(swarms[2])
    assert buf.nbytes == sum(swarm_bytes(s) for s in swarms[-2:])
    assert buf.expire(BASE_MS + 14_500) == 1
    assert buf.nbytes == swarm_bytes(swarms[4])
    assert buf.trim() == swarm_bytes(swarms[4])
    assert buf.trim() == 0
    assert buf.nbytes == 0
    assert buf.add(swarms[4]) is Verdict.DUPLICATE


def test_swarm_bytes_is_the_text_in_memory_and_not_its_utf8_length() -> None:
    """An emoji makes CPython hold the text at four bytes a character; the count says so."""
    swarm = make_swarm("s", 1)
    assert "❤" in swarm.text
    assert swarm_bytes(swarm) > sys.getsizeof(swarm.text) > 4 * len(swarm.text)
    assert len(swarm.text.encode()) < len(swarm.text) * 2


def test_swarm_bytes_is_close_to_the_memory_a_buffered_swarm_takes() -> None:
    """Measured with tracemalloc, a buffered swarm takes within 15 % of what is counted."""
    n = 2000
    buf = ReplayBuffer(window_ms=60_000, max_items=n)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for b in range(1, n + 1):
            buf.add(make_swarm("stream-with-a-long-id", b))
        gc.collect()
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(buf) == n
    assert 0.85 < buf.nbytes / taken < 1.15
