"""The HTTP layer of fanout, with the hub fed by the test instead of Kafka."""

import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from emostream.fanout._runtime import FanoutRuntime
from emostream.fanout.app import create_app, runtime_of
from emostream.fanout.settings import FanoutSettings
from tests.fanout.swarms import make_swarm
from tests.support.waiting import wait_until


def make_app(**overrides: Any) -> Flask:
    """An app without Kafka or Redis."""
    overrides.setdefault("presence_enabled", False)
    settings = FanoutSettings(snapshot_from_redis=False, **overrides)
    return create_app(settings, connect_upstream=False)


@pytest.fixture
def app() -> Flask:
    """A fresh app per test."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture
def runtime(app: Flask) -> FanoutRuntime:
    """The app's worker state (hub, metrics)."""
    return runtime_of(app)


def scrape(client: FlaskClient) -> str:
    """The app's metrics as its metrics port answers them (there is none without gunicorn)."""
    return runtime_of(client.application).metrics.exposition()[0].decode()


def assert_problem(resp: TestResponse, status: int) -> None:
    """``resp`` is a problem document with HTTP status ``status``."""
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"


class Feed:
    """An open SSE response read chunk by chunk; closed at the end of a ``with`` block."""

    def __init__(self, client: FlaskClient, url: str, headers: dict[str, str] | None = None):
        self.response = client.get(url, headers=headers or {}, buffered=False)
        self._chunks: Iterator[bytes] = iter(cast(Iterable[bytes], self.response.response))

    def __enter__(self) -> "Feed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def next_chunk(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self.response.close()


def test_sse_headers_and_retry_hint_come_first(client: FlaskClient) -> None:
    """The feed is text/event-stream, uncached, unbuffered, and starts with a retry hint."""
    with Feed(client, "/v1/streams/s1/events") as feed:
        assert feed.response.status_code == 200
        assert feed.response.mimetype == "text/event-stream"
        assert feed.response.headers["Cache-Control"] == "no-cache"
        assert feed.response.headers["X-Accel-Buffering"] == "no"
        assert feed.next_chunk() == b"retry: 2000\n\n"


def test_live_swarm_is_written_as_one_sse_frame(
    client: FlaskClient, runtime: FanoutRuntime
) -> None:
    """A swarm published after connecting arrives as its id / event / data frame."""
    with Feed(client, "/v1/streams/s1/events") as feed:
        feed.next_chunk()
        swarm = make_swarm("s1", 1)
        runtime.hub.publish(swarm)
        assert feed.next_chunk() == swarm.render(1)[1]
    assert runtime.hub.connections()["sse"] == 0


def test_last_event_id_header_replays_the_missed_swarms(
    client: FlaskClient, runtime: FanoutRuntime
) -> None:
    """Last-Event-ID resumes after that id: the first chunk carries exactly the missed swarms."""
    swarms = [make_swarm("s1", b) for b in (1, 2, 3)]
    for s in swarms:
        runtime.hub.publish(s)
    with Feed(client, "/v1/streams/s1/events", {"Last-Event-ID": swarms[0].id}) as feed:
        assert (
            feed.next_chunk()
            == b"retry: 2000\n\n" + swarms[1].render(1)[1] + swarms[2].render(1)[1]
        )


def test_last_event_id_query_parameter_is_honoured(
    client: FlaskClient, runtime: FanoutRuntime
) -> None:
    """The last_event_id query parameter resumes like the header does."""
    swarms = [make_swarm("s1", b) for b in (1, 2)]
    for s in swarms:
        runtime.hub.publish(s)
    with Feed(client, f"/v1/streams/s1/events?last_event_id={swarms[0].id}") as feed:
        assert feed.next_chunk().endswith(swarms[1].render(1)[1])


def test_swarms_queued_during_a_write_go_out_in_one_chunk(
    client: FlaskClient, runtime: FanoutRuntime
) -> None:
    """Swarms that arrive while a connection is busy are written together, in order."""
    with Feed(client, "/v1/streams/s1/events") as feed:
        feed.next_chunk()
        swarms = [make_swarm("s1", b) for b in (1, 2, 3)]
        for s in swarms:
            runtime.hub.publish(s)
        assert feed.next_chunk() == b"".join(s.render(1)[1] for s in swarms)


def test_every_write_is_counted_and_sampled_feeds_are_timed() -> None:
    """messages_sent counts each swarm written; the lag histograms time one feed in N."""
    app = make_app(latency_sample_every=2, heartbeat_s=0.01)
    client, runtime = app.test_client(), runtime_of(app)
    feeds = [Feed(client, "/v1/streams/s1/events") for _ in range(3)]
    try:
        for feed in feeds:
            feed.next_chunk()
        swarms = [make_swarm("s1", 1), make_swarm("s1", 2)]
        for s in swarms:
            runtime.hub.publish(s)
        for feed in feeds:
            assert feed.next_chunk() == b"".join(s.render(3)[1] for s in swarms)
            # A write is counted once it is on the wire, when the body is asked for more.
            assert feed.next_chunk() == b": hb\n\n"
    finally:
        for feed in feeds:
            feed.close()
    text = scrape(client)
    assert 'emostream_fanout_messages_sent_total{transport="sse"} 6.0' in text
    # The first and the third feed are timed, each for both swarms.
    assert 'emostream_fanout_delivery_lag_seconds_count{transport="sse"} 4.0' in text


def test_new_viewer_gets_the_latest_snapshot(client: FlaskClient, runtime: FanoutRuntime) -> None:
    """Without Last-Event-ID, the feed starts with the stream's newest swarm only."""
    for b in (1, 2):
        runtime.hub.publish(make_swarm("s1", b))
    with Feed(client, "/v1/streams/s1/events") as feed:
        assert feed.next_chunk() == b"retry: 2000\n\n" + make_swarm("s1", 2).render(1)[1]


def test_idle_feed_sends_heartbeats() -> None:
    """With nothing to send, a heartbeat comment is written every heartbeat_s."""
    client = make_app(heartbeat_s=0.02).test_client()
    with Feed(client, "/v1/streams/s1/events") as feed:
        feed.next_chunk()
        assert feed.next_chunk() == b": hb\n\n"
        assert feed.next_chunk() == b": hb\n\n"


def test_dropped_slow_viewer_feed_ends() -> None:
    """A viewer whose queue overflowed sees its feed end (it then resumes by reconnecting)."""
    app = make_app(client_queue_size=1)
    runtime = runtime_of(app)
    feed = Feed(app.test_client(), "/v1/streams/s1/events")
    feed.next_chunk()
    for b in (1, 2, 3):
        runtime.hub.publish(make_swarm("s1", b))
    with pytest.raises(StopIteration):
        feed.next_chunk()
    feed.close()
    assert runtime.hub.stats.slow_disconnects["sse"] == 1


@pytest.mark.parametrize(
    "url",
    ["/v1/streams/bad!id/events", "/v1/streams/" + "x" * 65 + "/events", "/watch/bad.id"],
)
def test_invalid_stream_id_is_422_problem(client: FlaskClient, url: str) -> None:
    """A stream id outside ^[A-Za-z0-9_-]{1,64}$ gets 422 as a problem document."""
    resp = client.get(url)
    assert_problem(resp, 422)
    body = resp.get_json(force=True)
    assert body["status"] == 422
    assert body["field"] == "stream_id"


def test_invalid_stream_id_on_websocket_is_422_before_upgrading(client: FlaskClient) -> None:
    """A WebSocket upgrade to a bad stream id is refused with 422, not upgraded."""
    resp = client.get(
        "/v1/streams/bad!id/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    )
    assert_problem(resp, 422)


def test_websocket_route_without_upgrade_is_426(client: FlaskClient) -> None:
    """A plain GET of the WebSocket route explains that it needs an upgrade."""
    resp = client.get("/v1/streams/s1/ws")
    assert_problem(resp, 426)


def test_invalid_last_event_id_is_422(client: FlaskClient) -> None:
    """A Last-Event-ID with spaces or control characters is refused."""
    resp = client.get("/v1/streams/s1/events", headers={"Last-Event-ID": "a b"})
    assert resp.status_code == 422
    assert resp.get_json(force=True)["field"] == "last_event_id"


def test_over_capacity_is_503_with_retry_after() -> None:
    """Past max_connections a viewer gets 503 problem JSON with Retry-After."""
    app = make_app(max_connections=1, busy_retry_after_s=7, client_queue_size=1)
    client = app.test_client()
    with Feed(client, "/v1/streams/s1/events"):  # the one connection there is room for
        resp = client.get("/v1/streams/s2/events")
        assert_problem(resp, 503)
        assert resp.headers["Retry-After"] == "7"
    assert client.get("/v1/streams/s2/events", buffered=False).status_code == 200


def test_unknown_route_is_a_problem_document(client: FlaskClient) -> None:
    """Werkzeug's own errors (404) are problem documents too."""
    resp = client.get("/nope")
    assert_problem(resp, 404)


def test_watch_page_is_served_with_a_strict_policy(client: FlaskClient) -> None:
    """The viewer page is HTML that loads only its own script and style."""
    resp = client.get("/watch/final-2026")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    page = resp.get_data(as_text=True)
    assert 'src="/static/watch.js"' in page
    assert client.get("/static/watch.js").status_code == 200
    assert client.get("/static/watch.css").status_code == 200


def test_health_ready_and_metrics(client: FlaskClient) -> None:
    """healthz answers; readyz is 503 without a consumer; metrics use the fanout prefix and are
    no public route."""
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert_problem(ready, 503)
    assert_problem(client.get("/metrics"), 404)
    text = scrape(client)
    for name in (
        'emostream_fanout_connections{transport="sse"}',
        "emostream_fanout_messages_sent_total",
        "emostream_fanout_slow_client_disconnects_total",
        "emostream_fanout_delivery_lag_seconds_bucket",
        "emostream_fanout_upstream_messages_consumed_total",
        "emostream_fanout_upstream_lag_messages",
        "emostream_fanout_upstream_last_swarm_lag_seconds",
        "emostream_fanout_write_failures_total",
        'emostream_fanout_viewers_left_total{transport="ws"}',
        "emostream_fanout_presence_refresh_failures_total",
        "emostream_fanout_stream_subscriptions",
        "emostream_fanout_max_stream_viewers",
        "emostream_fanout_draining 0.0",
        'emostream_fanout_feeds_ended_total{reason="overflow",transport="ws"}',
    ):
        assert name in text


def test_replay_bounds_and_evictions_are_on_metrics() -> None:
    """The worker's buffered streams and bytes, its replay bounds and its evictions are exported."""
    app = make_app(replay_max_streams=2, replay_max_bytes=1_000_000)
    client, runtime = app.test_client(), runtime_of(app)
    text = scrape(client)
    assert 'emostream_fanout_replay_evictions_total{reason="streams"} 0.0' in text
    assert 'emostream_fanout_replay_evictions_total{reason="bytes"} 0.0' in text
    for i in range(5):
        runtime.hub.publish(make_swarm(f"s{i}", 1))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape(client))
        for s in family.samples
    }
    assert samples["emostream_fanout_streams", ()] == 2
    assert samples["emostream_fanout_replay_bytes", ()] == runtime.hub.replay_bytes() > 0
    assert samples["emostream_fanout_replay_limit", (("bound", "streams"),)] == 2
    assert samples["emostream_fanout_replay_limit", (("bound", "bytes"),)] == 1_000_000
    assert samples["emostream_fanout_replay_evictions_total", (("reason", "streams"),)] == 3
    assert samples["emostream_fanout_replay_evictions_total", (("reason", "bytes"),)] == 0
    runtime.hub.forget(["s4"])
    text = scrape(client)
    assert "emostream_fanout_replay_streams_forgotten_total 1.0" in text


def test_cors_allows_only_configured_origins() -> None:
    """A listed origin gets the CORS headers on a feed; an unlisted one gets none."""
    client = make_app(cors_allowed_origins=["https://tv.example"]).test_client()
    allowed = client.get(
        "/v1/streams/s1/events", headers={"Origin": "https://tv.example"}, buffered=False
    )
    try:
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://tv.example"
        assert "Last-Event-ID" in allowed.headers["Access-Control-Allow-Headers"]
        assert allowed.headers["Access-Control-Expose-Headers"] == "Retry-After"
        assert "Origin" in allowed.headers["Vary"]
    finally:
        allowed.close()
    other = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert not [h for h, _ in other.headers.items() if h.startswith("Access-Control-")]
    assert "Origin" in other.headers["Vary"]


def test_cors_preflight_is_answered_for_listed_origins_only() -> None:
    """OPTIONS with Access-Control-Request-* gets the allowed method and headers."""
    client = make_app(cors_allowed_origins=["https://tv.example"]).test_client()
    headers = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "last-event-id",
    }
    ok = client.options(
        "/v1/streams/s1/events", headers={**headers, "Origin": "https://tv.example"}
    )
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://tv.example"
    assert "GET" in ok.headers["Access-Control-Allow-Methods"]
    assert "last-event-id" in ok.headers["Access-Control-Allow-Headers"].lower()
    assert int(ok.headers["Access-Control-Max-Age"]) > 0
    denied = client.options(
        "/v1/streams/s1/events", headers={**headers, "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in denied.headers


def test_any_origin_with_a_star() -> None:
    """["*"] lets every origin read the feeds."""
    client = make_app(cors_allowed_origins=["*"]).test_client()
    resp = client.get("/healthz", headers={"Origin": "https://anywhere.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://anywhere.example"


def test_without_an_allow_list_no_cors_headers_at_all() -> None:
    """The default (empty list) adds nothing: the viewer page is same-origin."""
    resp = make_app().test_client().get("/healthz", headers={"Origin": "https://tv.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_settings_keep_the_drain_inside_the_graceful_timeout() -> None:
    """A drain that gunicorn would cut short (SIGKILL mid-drain) is refused at start-up."""
    with pytest.raises(ValueError, match="graceful_timeout_s"):
        FanoutSettings(drain_s=9, graceful_timeout_s=10)
    assert FanoutSettings(drain_s=5, graceful_timeout_s=10).drain_s == 5


def test_settings_keep_presence_entries_alive_between_refreshes() -> None:
    """An entry TTL shorter than two refreshes would flicker live workers out of the count."""
    with pytest.raises(ValueError, match="presence_ttl_s"):
        FanoutSettings(presence_refresh_s=2, presence_ttl_s=3)


def test_drain_refuses_new_feeds_and_ends_open_ones_spread_over_the_period() -> None:
    """During a drain new feeds and readyz get 503 + Retry-After; open feeds end one by one."""
    app = make_app(busy_retry_after_s=3)
    runtime = runtime_of(app)
    client = app.test_client()
    feeds = [Feed(client, f"/v1/streams/s{i % 2}/events") for i in range(6)]
    for feed in feeds:
        feed.next_chunk()
    checked = threading.Event()
    moments: list[float] = []
    open_at_each_end: list[int] = []

    def sleep(seconds: float) -> None:
        """Stands in for the clock: records when each feed would end."""
        checked.wait(5)
        moments.append((moments[-1] if moments else 0.0) + seconds)
        open_at_each_end.append(sum(runtime.hub.connections().values()))

    drainer = threading.Thread(
        target=runtime.drain, args=(5.0,), kwargs={"rng": random.Random(7), "sleep": sleep}
    )
    drainer.start()
    try:
        wait_until("drain to start", lambda: runtime.draining, 5)
        refused = client.get("/v1/streams/s1/events")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "3"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "draining" in ready.get_json(force=True)["detail"]
    finally:
        checked.set()
        drainer.join(5)
    for feed in feeds:
        with pytest.raises(StopIteration):
            feed.next_chunk()
        feed.close()
    # One end per moment, each at its own uniformly drawn moment of the period, in order.
    same_draws = random.Random(7)
    assert moments == pytest.approx(sorted(same_draws.uniform(0, 5.0) for _ in range(6)))
    assert len(set(moments)) == 6
    assert open_at_each_end == [6, 5, 4, 3, 2, 1]
    assert runtime.hub.stats.ended["sse", "drain"] == 6
    text = scrape(client)
    assert "emostream_fanout_draining 1.0" in text
    assert 'emostream_fanout_feeds_ended_total{reason="drain",transport="sse"} 6.0' in text


def test_settings_refuse_a_heartbeat_beyond_the_contract() -> None:
    """The contract promises a heartbeat at least every 15 s, so longer is refused."""
    with pytest.raises(ValueError, match="heartbeat_s"):
        FanoutSettings(heartbeat_s=20)
