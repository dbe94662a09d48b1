"""SSE feeds written straight into their sockets: real socket pairs, the hub fed by the test.

The process is not monkey-patched, so the feed's writer greenlet and the heartbeat tick run
while the test yields to gevent (``gevent.sleep``), as they would between requests in a worker.
"""

import socket
import time
from collections.abc import Iterator

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emostream.fanout._hub import Subscription
from emostream.fanout._push import SocketFeed, SocketFeeds
from emostream.fanout._runtime import FanoutRuntime
from emostream.fanout.settings import FanoutSettings
from tests.fanout.swarms import make_swarm

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


def make_runtime(**overrides: object) -> FanoutRuntime:
    """A worker's state without Kafka or Redis."""
    settings = FanoutSettings(presence_enabled=False, snapshot_from_redis=False, **overrides)
    return FanoutRuntime(settings, connect_upstream=False)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP connection over loopback: the server's end (which the feed duplicates, as it
    does gunicorn's) and the viewer's, both with small buffers so that a viewer that does not
    read fills them quickly."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        viewer = socket.socket()
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        viewer.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server.setblocking(False)
    yield server, viewer
    server.close()
    viewer.close()


@pytest.fixture
def started(
    pair: tuple[socket.socket, socket.socket],
) -> tuple[FanoutRuntime, Subscription, socket.socket]:
    """A worker with one socket feed whose viewer has read up to the retry hint: the worker,
    the feed's subscription and the viewer's end."""
    server, viewer = pair
    runtime = make_runtime()
    _, sub = open_feed(runtime, server)
    read_until(viewer, b"retry: ")
    return runtime, sub, viewer


def counted(runtime: FanoutRuntime, name: str) -> float:
    """The value of the metric sample ``name`` (labels included) on the worker's exposition."""
    for family in text_string_to_metric_families(runtime.metrics.exposition()[0].decode()):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
            if f"{sample.name}{{{labels}}}" == name:
                return sample.value
    return 0.0


def open_feed(
    runtime: FanoutRuntime, server: socket.socket, feeds: SocketFeeds | None = None
) -> tuple[SocketFeed, Subscription]:
    """Subscribe a socket feed of stream ``s`` and start it, as the SSE route does under
    gunicorn (``feeds``: the worker's, for its heartbeats)."""
    feed = SocketFeed(runtime, feeds or SocketFeeds(runtime), "s")
    sub = runtime.hub.subscribe("s", transport="sse", sink=feed)
    feed.start(sub, server, HEAD)
    return feed, sub


def publish_until_ended(runtime: FanoutRuntime, sub: Subscription, most: int) -> str:
    """Publish swarms of stream ``s`` until the hub ends ``sub`` (fails after ``most``); why it
    ended."""
    batch = 0
    while sub.closed_reason is None:
        batch += 1
        assert batch < most, f"the feed did not end within {most} swarms"
        runtime.hub.publish(make_swarm("s", batch))
    return sub.closed_reason


def read_until(viewer: socket.socket, marker: bytes | None, within_s: float = 5) -> bytes:
    """What the viewer reads until ``marker`` has arrived or, if None, the server closed."""
    data = b""
    deadline = time.monotonic() + within_s
    viewer.setblocking(False)
    while marker is None or marker not in data:
        assert time.monotonic() < deadline, f"{marker!r} did not arrive: {data[-200:]!r}"
        try:
            chunk = viewer.recv(65536)
        except BlockingIOError:
            gevent.sleep(0.01)
            continue
        if not chunk:
            assert marker is None, f"the connection ended before {marker!r}"
            break
        data += chunk
    return data


def test_head_retry_hint_backlog_then_live_swarms_each_one_chunk(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The viewer reads the head, the retry hint and the newest buffered swarm, then every
    live swarm as it is published, each an HTTP chunk of one SSE frame."""
    server, viewer = pair
    runtime = make_runtime()
    runtime.hub.publish(make_swarm("s", 1))
    open_feed(runtime, server)
    runtime.hub.publish(make_swarm("s", 2))
    second = make_swarm("s", 2).id.encode()
    data = read_until(viewer, second)
    assert data.startswith(HEAD + b"d\r\nretry: 2000\n\n\r\n")
    body = data[len(HEAD) :]
    assert body.index(make_swarm("s", 1).id.encode()) < body.index(second)
    frame = make_swarm("s", 2).chunk(1)
    assert body.endswith(frame)
    assert runtime.metrics.delivered["sse"] == 2


def test_what_the_socket_does_not_take_is_written_by_a_greenlet_in_order(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A viewer that reads slowly gets everything, in order, once it reads."""
    server, viewer = pair
    runtime = make_runtime(client_queue_size=64)
    open_feed(runtime, server)
    for batch in range(1, 41):
        runtime.hub.publish(make_swarm("s", batch))
    data = read_until(viewer, make_swarm("s", 40).id.encode())
    ids = [line[4:].decode() for line in data.split(b"\n") if line.startswith(b"id: ")]
    assert ids == [make_swarm("s", batch).id for batch in range(1, 41)]


def test_a_viewer_that_stops_reading_is_dropped_once_its_queue_is_full(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Swarms queue behind a full socket up to client_queue_size; then the viewer is dropped
    (it resumes from the replay buffer) and its connection closed, while others go on."""
    server, viewer = pair
    runtime = make_runtime(client_queue_size=8)
    _, stalled = open_feed(runtime, server)
    assert publish_until_ended(runtime, stalled, most=5000) == "overflow"
    assert runtime.hub.stats.slow_disconnects["sse"] == 1
    gevent.sleep(0.1)  # the killed writer's link closes the socket
    assert read_until(viewer, None).startswith(HEAD)


def test_an_idle_feed_gets_heartbeats_from_the_worker_tick(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """With nothing published, the tick writes heartbeats, each one chunk of an SSE comment."""
    server, viewer = pair
    runtime = make_runtime(heartbeat_s=0.4)
    open_feed(runtime, server, SocketFeeds(runtime))
    read_until(viewer, b"6\r\n: hb\n\n\r\n" * 2)


def test_a_drained_feed_ends_its_body_then_its_connection(
    started: tuple[FanoutRuntime, Subscription, socket.socket],
) -> None:
    """The worker ending a feed writes the last chunk and closes, so the viewer reconnects."""
    runtime, sub, viewer = started
    assert runtime.hub.end(sub, "drain")
    assert read_until(viewer, None).endswith(b"0\r\n\r\n")
    assert runtime.hub.connections()["sse"] == 0


def test_a_viewer_that_left_is_counted_and_unsubscribed(
    started: tuple[FanoutRuntime, Subscription, socket.socket],
) -> None:
    """The send after the viewer closed fails: the feed ends as a viewer leaving."""
    runtime, sub, viewer = started
    viewer.close()
    assert publish_until_ended(runtime, sub, most=100) == "closed"
    assert runtime.hub.connections()["sse"] == 0
    assert counted(runtime, 'emostream_fanout_viewers_left_total{transport="sse"}') == 1
