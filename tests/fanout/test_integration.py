"""Fanout under real gunicorn (gevent worker) reading a real Kafka topic, over real sockets."""

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
import requests
from confluent_kafka import Producer
from simple_websocket import Client as WebSocketClient

from emostream.client import EmostreamClient
from emostream.common.events import encode_json
from emostream.common.keys import latest_swarm_key
from emostream.fanout._feeds import WS_HEARTBEAT
from emostream.localstack.process import ProcessDir
from tests.conftest import Topics
from tests.fanout.live import RawFeed, produce, start_fanout
from tests.fanout.swarms import swarm_message, with_viewers
from tests.support.servers import Served, check_metrics_port_only
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fanout_server(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[Served]:
    """A fanout server reading this session's swarms topic."""
    yield start_fanout(processes, "fanout-it", service_env)
    processes.stop("fanout-it", grace_s=15)


@pytest.fixture(scope="module")
def fanout(fanout_server: Served) -> str:
    """Base URL of the fanout server."""
    return fanout_server.url


def ws_connections(base_url: str) -> int:
    """WebSocket feeds the server has open, as /readyz reports them."""
    return int(requests.get(f"{base_url}/readyz", timeout=5).json()["connections"]["ws"])


def test_sse_feed_follows_the_contract(fanout: str, producer: Producer, topics: Topics) -> None:
    """Live swarms arrive in order as id / event: swarm / data frames with the SSE headers."""
    stream = f"it-{uuid.uuid4().hex[:10]}"
    with RawFeed(f"{fanout}/v1/streams/{stream}/events") as feed:
        assert feed.response.status_code == 200
        assert feed.response.headers["Content-Type"].startswith("text/event-stream")
        assert feed.response.headers["Cache-Control"] == "no-cache"
        assert feed.response.headers["X-Accel-Buffering"] == "no"
        # One chunked body, and the connection ends with the feed (the viewer reconnects).
        assert feed.response.headers["Transfer-Encoding"] == "chunked"
        assert feed.response.headers["Connection"] == "close"
        feed.wait_open()
        assert feed.text.startswith("retry: 2000\n\n")
        messages = [swarm_message(stream, b, window=b) for b in (1, 2, 3)]
        produce(producer, topics.swarms, messages)
        events = feed.read(3)
    assert [e.event for e in events] == ["swarm"] * 3
    assert [e.id for e in events] == [m["id"] for m in messages]
    # Exactly what Kafka holds, plus the viewer count (this feed is the stream's only viewer).
    assert [orjson.loads(e.data) for e in events] == [with_viewers(m, 1) for m in messages]
    first = with_viewers(messages[0], 1)
    assert f"id: {first['id']}\nevent: swarm\ndata: {encode_json(first).decode()}\n\n" in feed.text


def test_duplicate_id_is_delivered_once(
    fanout: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """A replayed micro-batch (the same ids written again) reaches a viewer once."""
    with RawFeed(f"{fanout}/v1/streams/{stream}/events") as feed:
        feed.wait_open()
        batch = [swarm_message(stream, 7, window=w) for w in (0, 1)]
        after = swarm_message(stream, 8, window=1)
        produce(producer, topics.swarms, [*batch, *batch, after])
        events = feed.read(3)
        events += feed.read_for(1.5)
    assert [e.id for e in events] == [m["id"] for m in (*batch, after)]


def test_reconnect_with_last_event_id_gets_exactly_the_missed_swarms(
    fanout: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """A viewer that comes back with Last-Event-ID gets what it missed, once, then live ones."""
    url = f"{fanout}/v1/streams/{stream}/events"
    first = RawFeed(url)
    with RawFeed(url) as witness:  # stays connected, proving the missed swarms reached the server
        first.wait_open()
        witness.wait_open()
        produce(producer, topics.swarms, [swarm_message(stream, b) for b in (1, 2)])
        seen = first.read(2)
        first.close()
        missed = [swarm_message(stream, b) for b in (3, 4, 5)]
        produce(producer, topics.swarms, missed)
        witness.read(5)
        with RawFeed(url, {"Last-Event-ID": str(seen[-1].id)}) as back:
            replayed = back.read(3)
            replayed += back.read_for(1.5)
            live = swarm_message(stream, 6)
            produce(producer, topics.swarms, [live])
            replayed += back.read(1)
    assert [e.id for e in replayed] == [m["id"] for m in (*missed, live)]


def test_sdk_receives_swarms_in_order(
    fanout: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """The SDK's swarms() yields the stream's swarms as dicts, in order, each once."""
    messages = [swarm_message(stream, b) for b in (1, 2, 3, 4)]
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def follow() -> None:
        client = EmostreamClient(fanout_url=fanout)
        # Any id sorts after "0": the feed starts at the first buffered swarm of the stream.
        for swarm in client.swarms(stream, last_event_id="0", timeout=10):
            received.append(swarm)
            if len(received) == len(messages):
                done.set()
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    produce(producer, topics.swarms, messages[:2])
    produce(producer, topics.swarms, [messages[1], *messages[2:]])
    assert done.wait(20), f"received only {received}"
    assert received == [with_viewers(m, 1) for m in messages]


def test_websocket_carries_the_same_json(
    fanout: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """A WebSocket viewer gets each swarm as the same JSON text the SSE data carries."""
    ws_url = fanout.replace("http://", "ws://") + f"/v1/streams/{stream}/ws"
    ws = WebSocketClient.connect(ws_url)
    try:
        messages = [swarm_message(stream, b) for b in (1, 2)]
        produce(producer, topics.swarms, messages)
        texts = [ws.receive(timeout=15), ws.receive(timeout=15)]
    finally:
        ws.close()
    assert texts == [encode_json(with_viewers(m, 1)).decode() for m in messages]
    # The server notices a closed WebSocket within a heartbeat; until then it counts as a viewer.
    wait_until("the closed WebSocket to be gone", lambda: ws_connections(fanout) == 0, 10)
    resumed = WebSocketClient.connect(f"{ws_url}?last_event_id={messages[0]['id']}")
    try:
        assert resumed.receive(timeout=15) == encode_json(with_viewers(messages[1], 1)).decode()
        assert resumed.receive(timeout=1.5) is None
    finally:
        resumed.close()


def test_websocket_heartbeat_text_only_when_asked(fanout: str, stream: str) -> None:
    """With ?heartbeat=1 an idle WebSocket gets a heartbeat text every interval (1 s here);
    without it, nothing but pings, which the client library answers on its own."""
    ws_url = fanout.replace("http://", "ws://") + f"/v1/streams/{stream}/ws"
    asked = WebSocketClient.connect(f"{ws_url}?heartbeat=1")
    plain = WebSocketClient.connect(ws_url)
    try:
        texts = [asked.receive(timeout=3), asked.receive(timeout=3)]
        assert plain.receive(timeout=0.5) is None
    finally:
        asked.close()
        plain.close()
    assert texts == [WS_HEARTBEAT, WS_HEARTBEAT]
    assert orjson.loads(WS_HEARTBEAT) == {"type": "heartbeat"}


def test_new_viewer_is_greeted_with_the_redis_snapshot(
    fanout: str, redis_url: str, stream: str
) -> None:
    """A stream this pod has no swarm of starts from the latest snapshot stored in Redis."""
    snapshot = swarm_message(stream, 42)
    with redis.Redis.from_url(redis_url) as r:
        r.set(latest_swarm_key(stream), encode_json(snapshot), ex=60)
    with RawFeed(f"{fanout}/v1/streams/{stream}/events") as feed:
        (event,) = feed.read(1)
    assert event.id == snapshot["id"]
    assert orjson.loads(event.data) == with_viewers(snapshot, 1)


def test_idle_feed_carries_heartbeats(fanout: str, stream: str) -> None:
    """A feed with nothing to say still sends comment heartbeats."""
    with RawFeed(f"{fanout}/v1/streams/{stream}/events") as feed:
        feed.read_for(2.5)
    assert feed.parser.comments >= 2
    assert ": hb\n\n" in feed.text


def test_watch_page_health_and_metrics(fanout_server: Served) -> None:
    """The viewer page and its script are served; readyz is ready; metrics count the work."""
    fanout = fanout_server.url
    page = requests.get(f"{fanout}/watch/final", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "/static/watch.js" in page.text
    assert requests.get(f"{fanout}/static/watch.js", timeout=5).status_code == 200
    assert requests.get(f"{fanout}/readyz", timeout=5).json()["status"] == "ready"
    metrics = requests.get(fanout_server.metrics_url, timeout=5).text
    assert "emostream_fanout_upstream_ready 1.0" in metrics
    assert "emostream_fanout_upstream_messages_consumed_total" in metrics
    # The lag is read from the real consumer's local state without disturbing it.
    assert "emostream_fanout_upstream_lag_messages 0.0" in metrics
    assert "emostream_fanout_upstream_restarts_total 0.0" in metrics
    bad = requests.get(f"{fanout}/v1/streams/not%20valid/events", timeout=5)
    assert bad.status_code == 422
    assert bad.headers["Content-Type"] == "application/problem+json"


def test_metrics_are_served_on_the_metrics_port_only(fanout_server: Served) -> None:
    """/metrics is 404 on the public port (whatever the Host header says) and the metrics port
    serves nothing else."""
    check_metrics_port_only(
        fanout_server.url, fanout_server.metrics_url, "emostream_fanout_", "/v1/streams/s/events"
    )


def test_sse_and_websocket_viewers_receive_the_same_swarms(
    fanout: str, producer: Producer, topics: Topics, stream: str
) -> None:
    """An SSE viewer and a WebSocket viewer of one stream get identical JSON, in order."""
    feed = RawFeed(f"{fanout}/v1/streams/{stream}/events")
    ws = WebSocketClient.connect(fanout.replace("http://", "ws://") + f"/v1/streams/{stream}/ws")
    try:
        feed.wait_open()
        messages = [swarm_message(stream, b, window=b % 2) for b in range(1, 6)]
        produce(producer, topics.swarms, messages)
        over_sse = [orjson.loads(e.data) for e in feed.read(5)]
        over_ws = [orjson.loads(ws.receive(timeout=15)) for _ in messages]
    finally:
        ws.close()
        feed.close()
    assert over_sse == over_ws
    # Two viewers of the stream on this one process: both see the count of both.
    assert over_sse == [with_viewers(m, 2) for m in messages]
