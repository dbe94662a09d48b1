"""Two fanout processes under real gunicorn, one Kafka topic, one Redis: what viewers see."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis
import requests
from confluent_kafka import Producer
from simple_websocket import Client as WebSocketClient

from emostream.client import SSEEvent
from emostream.fanout._presence import presence_key
from emostream.localstack.process import ProcessDir
from tests.conftest import Topics
from tests.fanout.live import RawFeed, metric, produce, start_fanout
from tests.fanout.swarms import swarm_message
from tests.support.servers import Served
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pair:
    """Two fanout servers reading the same topic and sharing one Redis."""

    a: Served
    b: Served


@pytest.fixture(scope="module")
def pair(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[Pair]:
    """Fanout servers A and B (one gevent worker each)."""
    a = start_fanout(processes, "fanout-a", service_env)
    b = start_fanout(processes, "fanout-b", service_env)
    yield Pair(a, b)
    processes.stop("fanout-a", grace_s=15)
    processes.stop("fanout-b", grace_s=15)


def ids(events: list[SSEEvent]) -> list[str]:
    """The ids of ``events``."""
    return [str(e.id) for e in events]


def test_presence_counts_viewers_across_both_processes(
    pair: Pair, producer: Producer, topics: Topics, stream: str
) -> None:
    """Every viewer, on either process and either transport, sees the stream's total count."""
    sse_a = [RawFeed(f"{pair.a.url}/v1/streams/{stream}/events") for _ in range(2)]
    sse_b = RawFeed(f"{pair.b.url}/v1/streams/{stream}/events")
    ws_b = WebSocketClient.connect(
        pair.b.url.replace("http://", "ws://") + f"/v1/streams/{stream}/ws"
    )
    feeds = [*sse_a, sse_b]
    batch = 0

    def next_counts() -> list[int]:
        """Publish one swarm; the viewers count each of the four viewers received with it."""
        nonlocal batch
        batch += 1
        produce(producer, topics.swarms, [swarm_message(stream, batch)])
        got = [orjson.loads(feed.read(1)[0].data)["viewers"] for feed in feeds]
        return [*got, orjson.loads(ws_b.receive(timeout=15))["viewers"]]

    last: list[int] = []

    def counts_are(expected: list[int]) -> bool:
        """Whether the viewer counts of the next swarm (kept in ``last``) are ``expected``."""
        last[:] = next_counts()
        return last == expected

    try:
        for feed in feeds:
            feed.wait_open()
        wait_until(
            lambda: f"the viewers to agree on 4: {last}",
            lambda: counts_are([4, 4, 4, 4]),
            15,
            interval_s=0.2,
        )
        # One viewer of A leaves: after a refresh every remaining viewer sees three.
        sse_a.pop().close()
        feeds = [*sse_a, sse_b]
        wait_until(
            lambda: f"the viewers to agree on 3: {last}",
            lambda: counts_are([3, 3, 3]),
            15,
            interval_s=0.2,
        )
        assert metric(pair.b, "emostream_fanout_max_stream_viewers") >= 3
        assert metric(pair.b, "emostream_fanout_presence_refreshes_total") > 0
    finally:
        ws_b.close()
        for feed in feeds:
            feed.close()


def test_resume_on_the_other_process_has_no_gap_and_no_duplicate(
    pair: Pair, producer: Producer, topics: Topics, stream: str
) -> None:
    """Cut off from A, a viewer resumes on B (no viewer of the stream there) with Last-Event-ID."""
    first = RawFeed(f"{pair.a.url}/v1/streams/{stream}/events")
    first.wait_open()
    messages = [swarm_message(stream, b, window=b // 3) for b in range(1, 13)]
    produce(producer, topics.swarms, messages[:4])
    seen = first.read(4)
    first.close()  # a forced disconnect: the viewer's connection is simply gone
    produce(producer, topics.swarms, messages[4:9])
    # B has had no viewer of this stream; its replay buffer still holds every recent swarm.
    wait_until("B", lambda: metric(pair.b, "emostream_fanout_swarms_published_total") > 0, 10)
    resume_from = {"Last-Event-ID": ids(seen)[-1]}
    with RawFeed(f"{pair.b.url}/v1/streams/{stream}/events", resume_from) as resumed:
        later = resumed.read(5)
        produce(producer, topics.swarms, messages[9:])
        later += resumed.read(3)
        later += resumed.read_for(1.5)
    assert ids(seen) + ids(later) == [m["id"] for m in messages]


@dataclass
class DrainedViewer:
    """A viewer of the draining server that moves to the other one when its feed ends."""

    drained_url: str
    other_url: str
    last_id: str
    first: list[str] = field(default_factory=list)
    second: list[str] = field(default_factory=list)
    ended_at: float | None = None
    error: BaseException | None = None

    def run(self, opened: threading.Barrier) -> None:
        try:
            feed = RawFeed(self.drained_url)
            feed.wait_open()
            opened.wait(15)
            # Reads to a clean end: a cut-off chunked body would raise here instead.
            self.first = ids(feed.read_to_end(within_s=20))
            self.ended_at = time.monotonic()
            feed.close()
            after = self.first[-1] if self.first else "0"
            with RawFeed(self.other_url, {"Last-Event-ID": after}) as again:
                while self.last_id not in self.second:
                    self.second += ids(again.read(1, within_s=20))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc


def test_sigterm_drains_feeds_spread_out_and_viewers_resume_elsewhere_losing_nothing(
    pair: Pair,
    processes: ProcessDir,
    service_env: dict[str, str],
    producer: Producer,
    topics: Topics,
    *,
    redis_url: str,
    stream: str,
) -> None:
    """SIGTERM: 503s and readyz 503 at once; feeds end cleanly over the drain period; no loss."""
    drain_s = 4.0
    url = start_fanout(processes, "fanout-drain", service_env, EMOSTREAM_DRAIN_S=str(drain_s)).url
    feed_path = f"/v1/streams/{stream}/events"
    total = 90
    messages = [swarm_message(stream, b, window=b // 4) for b in range(1, total + 1)]
    viewers = [
        DrainedViewer(url + feed_path, pair.b.url + feed_path, messages[-1]["id"]) for _ in range(8)
    ]
    opened = threading.Barrier(len(viewers) + 2)
    threads = [threading.Thread(target=v.run, args=(opened,), daemon=True) for v in viewers]
    raw_end: list[bytes] = []
    threads.append(
        threading.Thread(target=read_raw_feed, args=(url, feed_path, opened, raw_end), daemon=True)
    )
    for t in threads:
        t.start()
    opened.wait(15)

    def publish() -> None:
        for m in messages:
            produce(producer, topics.swarms, [m])
            time.sleep(0.08)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    # The draining server's worker is the only one with viewers of the stream so far.
    with redis.Redis.from_url(redis_url) as r:
        wait_until("presence entry", lambda: r.hlen(presence_key(stream)) == 1, 10)
        (drained_worker,) = r.hkeys(presence_key(stream))
    time.sleep(0.5)
    stopper = threading.Thread(target=processes.stop, args=("fanout-drain", 20), daemon=True)
    sigterm_at = time.monotonic()
    stopper.start()
    try:
        wait_until(
            "readyz 503", lambda: requests.get(f"{url}/readyz", timeout=2).status_code == 503, 5
        )
        refused = requests.get(url + feed_path, timeout=5)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["Content-Type"] == "application/problem+json"
    finally:
        publisher.join(30)
        for t in threads:
            t.join(30)
        stopper.join(30)
    assert [v.error for v in viewers] == [None] * len(viewers)
    # At the byte level: the chunked body was terminated, and the server answers nothing more on
    # that connection (the viewer's next request goes out on a new one, maybe to another pod).
    assert raw_end == [b"0\r\n\r\n", b""]
    everything = [m["id"] for m in messages]
    for v in viewers:
        # Whatever the moment of its cut, each viewer got every swarm exactly once, in order.
        assert v.first + v.second == everything[everything.index(v.first[0]) :]
        assert v.first[0] == everything[0]
    with redis.Redis.from_url(redis_url) as r:
        # The stopped worker withdrew its count; the other server now counts the viewers.
        assert drained_worker not in r.hkeys(presence_key(stream))
    ends = sorted(v.ended_at - sigterm_at for v in viewers if v.ended_at is not None)
    assert len(ends) == len(viewers)
    # Spread over the period, not all at once (8 uniform draws over 4 s span under 1 s with
    # probability below 1 in 2000), and all within it (plus scheduling slack).
    assert ends[-1] - ends[0] > 1.0
    assert ends[-1] < drain_s + 2.0


def read_raw_feed(url: str, path: str, opened: threading.Barrier, result: list[bytes]) -> None:
    """A keep-alive HTTP/1.1 feed read off the socket; then a second request on it.

    Records the last bytes of the feed and what the second request got: nothing, if the server
    closed the connection after the drained response as it should.
    """
    import socket  # noqa: PLC0415

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
        sock.sendall(request.encode())
        received = sock.recv(65536)
        opened.wait(15)
        while not received.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the end of the chunked body"
            received += chunk
        answer = b""
        try:
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            answer = sock.recv(65536)
        except ConnectionError:
            answer = b""
    result.extend([received[-5:], answer])


def test_a_stalled_viewer_is_cut_off_while_others_keep_receiving(
    processes: ProcessDir, service_env: dict[str, str], producer: Producer, topics: Topics
) -> None:
    """A viewer that stops reading (tiny buffers) is disconnected by the write timeout."""
    server = start_fanout(
        processes,
        "fanout-stall",
        service_env,
        EMOSTREAM_WRITE_TIMEOUT_S="3",
        # A queue longer than the test's swarms: only the write timeout can cut the viewer.
        EMOSTREAM_CLIENT_QUEUE_SIZE="1024",
    )
    stream = "stall-test"
    url = server.url
    host, port = url.removeprefix("http://").split(":")
    stalled = socket_with_small_buffers()
    stalled.connect((host, int(port)))
    stalled.sendall(f"GET /v1/streams/{stream}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    healthy = RawFeed(f"{url}/v1/streams/{stream}/events", keep_text=False)
    padding = "x" * 16_000  # big swarms fill the stalled viewer's buffers quickly
    messages = [{**swarm_message(stream, b), "note": padding} for b in range(1, 301)]
    received: list[str] = []
    reader = threading.Thread(
        target=lambda: received.extend(ids(healthy.read(len(messages), within_s=60))), daemon=True
    )
    try:
        healthy.wait_open()
        wait_until("both viewers connected", lambda: sse_connections(url) == 2, 10)
        reader.start()
        for start in range(0, len(messages), 20):
            produce(producer, topics.swarms, messages[start : start + 20])
        reader.join(60)
        assert received == [m["id"] for m in messages]
        wait_until("the stalled viewer to be cut off", lambda: sse_connections(url) == 1, 20)
        assert metric(server, 'emostream_fanout_write_failures_total{transport="sse"}') >= 1
        # The healthy viewer is still connected and still served.
        produce(producer, topics.swarms, [swarm_message(stream, 301)])
        assert ids(healthy.read(1)) == [swarm_message(stream, 301)["id"]]
    finally:
        healthy.close()
        stalled.close()
        processes.stop("fanout-stall", grace_s=15)


def socket_with_small_buffers() -> Any:
    """A TCP socket whose receive buffer is as small as the kernel allows."""
    import socket  # noqa: PLC0415

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.settimeout(10)
    return sock


def sse_connections(base_url: str) -> int:
    """SSE feeds the server has open, as /readyz reports them."""
    return int(requests.get(f"{base_url}/readyz", timeout=5).json()["connections"]["sse"])


#: Linux's TCP_REPAIR: a socket closed in repair mode vanishes without a FIN or RST.
TCP_REPAIR = 19


def _open_raw_feed(base_url: str, stream: str) -> Any:
    """An SSE request on a plain socket, read up to its retry frame."""
    import socket  # noqa: PLC0415

    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET /v1/streams/{stream}/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    assert b"retry:" in sock.recv(4096) or b"retry:" in sock.recv(4096)
    return sock


def _ends(server: Served) -> tuple[float, float]:
    """The SSE feeds ended so far by a viewer leaving, and by a failed write."""
    left = metric(server, 'emostream_fanout_viewers_left_total{transport="sse"}')
    failed = metric(server, 'emostream_fanout_write_failures_total{transport="sse"}')
    return left, failed


def test_a_viewer_that_closes_is_counted_as_leaving_not_as_a_failure(
    pair: Pair, stream: str
) -> None:
    """A viewer closing its connection ends its feed at the next write, counted as churn."""
    left_before, failed_before = _ends(pair.a)
    open_before = sse_connections(pair.a.url)
    sock = _open_raw_feed(pair.a.url, stream)
    wait_until("viewer registered", lambda: sse_connections(pair.a.url) == open_before + 1, 5)
    sock.close()
    # Heartbeats every second: the first meets the closed socket (RST back), the next fails.
    wait_until("the closed feed ended", lambda: sse_connections(pair.a.url) == open_before, 10)
    assert _ends(pair.a) == (left_before + 1, failed_before)


def test_a_viewer_that_vanished_without_fin_is_noticed_by_the_heartbeat(
    pair: Pair, stream: str
) -> None:
    """A viewer gone without closing (no FIN) is dropped when a heartbeat write fails.

    Its host still answers (with a reset), so the feed counts as left; a host gone entirely
    ends it by TCP_USER_TIMEOUT, a failed write (the stalled-viewer test covers timeouts).
    """
    import socket  # noqa: PLC0415

    left_before, failed_before = _ends(pair.a)
    open_before = sse_connections(pair.a.url)
    sock = _open_raw_feed(pair.a.url, stream)
    wait_until("viewer registered", lambda: sse_connections(pair.a.url) == open_before + 1, 5)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    except PermissionError:
        sock.close()
        pytest.skip("simulating a vanished peer needs CAP_NET_ADMIN (TCP_REPAIR)")
    sock.close()  # in repair mode: the server is not told
    # Heartbeats every second: the first goes out, the peer's kernel answers RST, the next fails.
    wait_until(
        "the vanished viewer dropped", lambda: sse_connections(pair.a.url) == open_before, 10
    )
    assert _ends(pair.a) == (left_before + 1, failed_before)
