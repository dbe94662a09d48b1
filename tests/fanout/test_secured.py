"""A fanout server with two gunicorn workers, viewer tokens and a CORS allow-list."""

import time
from collections.abc import Iterator

import orjson
import pytest
import requests
from confluent_kafka import Producer
from simple_websocket import Client as WebSocketClient
from simple_websocket import ConnectionError as WebSocketConnectionError

from emostream.common.tokens import mint
from emostream.localstack.process import ProcessDir
from tests.conftest import Topics
from tests.fanout.live import RawFeed, metric, produce, start_fanout
from tests.fanout.swarms import swarm_message
from tests.support.servers import Served
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SECRET = "a-secret-only-the-site-and-fanout-know"  # noqa: S105 - a test secret
ORIGIN = "https://tv.example"


@pytest.fixture(scope="module")
def secured_server(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[Served]:
    """A two-worker fanout that requires tokens and allows one other origin."""
    server = start_fanout(
        processes,
        "fanout-secured",
        service_env,
        EMOSTREAM_WORKERS="2",
        EMOSTREAM_TOKEN_SECRET=SECRET,
        EMOSTREAM_CORS_ALLOWED_ORIGINS=f'["{ORIGIN}"]',
    )
    yield server
    processes.stop("fanout-secured", grace_s=15)


@pytest.fixture(scope="module")
def secured(secured_server: Served) -> str:
    """Base URL of the secured fanout."""
    return secured_server.url


def token(stream: str) -> str:
    """A token for ``stream``, valid for a minute."""
    return mint(SECRET, view=[stream], ttl_s=60)


def test_feeds_refuse_missing_and_foreign_tokens(secured: str, stream: str) -> None:
    """No token: 401; a token of another stream: 403; both as problem documents."""
    missing = requests.get(f"{secured}/v1/streams/{stream}/events", timeout=5)
    assert missing.status_code == 401
    assert missing.headers["Content-Type"] == "application/problem+json"
    foreign = requests.get(
        f"{secured}/v1/streams/{stream}/events", params={"token": token("other")}, timeout=5
    )
    assert foreign.status_code == 403
    assert foreign.json()["reason"] == "scope"
    with pytest.raises(WebSocketConnectionError):
        WebSocketClient.connect(secured.replace("http://", "ws://") + f"/v1/streams/{stream}/ws")


def test_both_feeds_open_with_a_valid_token(
    secured: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """With ?token= for this stream, SSE and WebSocket carry the stream's swarms."""
    feed = RawFeed(f"{secured}/v1/streams/{stream}/events?token={token(stream)}")
    ws = WebSocketClient.connect(
        secured.replace("http://", "ws://") + f"/v1/streams/{stream}/ws?token={token(stream)}"
    )
    try:
        feed.wait_open()
        message = swarm_message(stream, 1)
        produce(producer, topics.swarms, [message])
        (event,) = feed.read(1)
        over_ws = orjson.loads(ws.receive(timeout=15))
    finally:
        ws.close()
        feed.close()
    assert event.id == message["id"]
    assert orjson.loads(event.data)["counts"] == over_ws["counts"] == message["counts"]


def test_cors_over_a_real_server(secured: str, stream: str) -> None:
    """The listed origin gets CORS headers and a preflight answer; another origin gets none."""
    url = f"{secured}/v1/streams/{stream}/events"
    preflight = requests.options(
        url,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        },
        timeout=5,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    with requests.get(
        f"{url}?token={token(stream)}", headers={"Origin": ORIGIN}, stream=True, timeout=5
    ) as listed:
        assert listed.status_code == 200
        assert listed.headers["Access-Control-Allow-Origin"] == ORIGIN
    with requests.get(
        f"{url}?token={token(stream)}",
        headers={"Origin": "https://elsewhere.example"},
        stream=True,
        timeout=5,
    ) as unlisted:
        assert unlisted.status_code == 200
        assert "Access-Control-Allow-Origin" not in unlisted.headers


def test_metrics_cover_every_worker(secured_server: Served, stream: str) -> None:
    """With two workers, any scrape reports the connections of both (multiprocess files)."""
    name = 'emostream_fanout_connections{transport="sse"}'
    # Feeds of earlier tests end when a heartbeat finds the viewer gone (the first write to a
    # closed socket may still succeed), and the other worker's file is up to one presence
    # period old: a single 0 can be stale, so 0 must hold across two heartbeats and a refresh.
    zero_since: list[float] = []

    def earlier_feeds_gone() -> bool:
        if metric(secured_server, name) != 0:
            zero_since.clear()
            return False
        zero_since[:] = zero_since or [time.monotonic()]
        return time.monotonic() - zero_since[0] >= 3

    wait_until("earlier feeds to be gone", earlier_feeds_gone, 20)
    feed_url = f"{secured_server.url}/v1/streams/{stream}/events?token={token(stream)}"
    feeds = [RawFeed(feed_url) for _ in range(4)]
    try:
        for feed in feeds:
            feed.wait_open()
        wait_until("every worker's connections", lambda: metric(secured_server, name) == 4, 10)
        # Successive scrapes land on either worker; each reports the whole server.
        assert [metric(secured_server, name) for _ in range(8)] == [4.0] * 8
    finally:
        for feed in feeds:
            feed.close()
