"""The HTTP layer through Flask's test client, with an in-memory sink in place of Kafka."""

import io
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from emostream.common.events import Reaction
from emostream.common.registry import LIVE, Admission
from emostream.common.registry import Verdict as RegistryVerdict
from emostream.ingest._producer import EnqueueError, QueueFullError, Readiness
from emostream.ingest._ratelimit import ALLOWED, Verdict
from emostream.ingest._validation import KafkaMessage
from emostream.ingest.app import create_app, runtime_of
from emostream.ingest.settings import IngestSettings

HEART = "\u2764\ufe0f"
V1 = "/v1/streams/final/reactions"


class MemorySink:
    """Keeps what it is sent (decoded); can be told to be full or unready."""

    def __init__(self) -> None:
        self.sent: list[Reaction] = []
        self.keys: list[bytes] = []
        self.full = False
        self.state = Readiness(True, "memory sink")

    def send(self, messages: list[KafkaMessage]) -> None:
        """Keep the messages, or refuse them all when full."""
        if self.full:
            raise QueueFullError(list(range(len(messages))), len(messages))
        self.sent.extend(Reaction.decode(m["value"]) for m in messages)
        self.keys.extend(m["key"] for m in messages)

    def readiness(self) -> Readiness:
        """The configured state."""
        return self.state

    def queue_depth(self) -> int:
        """Everything sent counts as queued."""
        return len(self.sent)

    def flush(self, timeout_s: float) -> int:
        """Nothing is ever left."""
        return 0


class FakeLimiter:
    """Records what it is charged; refuses while ``over`` names a user."""

    def __init__(self) -> None:
        self.charged: list[dict[str, int]] = []
        self.over: str | None = None

    def acquire(self, users: dict[str, int], address: str | None = None) -> Verdict:
        """Allow, unless ``over`` is one of the users."""
        self.charged.append(dict(users))
        if self.over in users:
            return Verdict(False, retry_after_s=2.2, user_id=self.over)
        return ALLOWED

    def retry_after_header(self, verdict: Verdict) -> str:
        """Whole seconds, rounded up."""
        return str(int(verdict.retry_after_s) + 1)


class MemoryRegistry:
    """Every stream is live (open mode without caps), except those closed here."""

    def __init__(self) -> None:
        self.closed: set[str] = set()

    def admit(self, stream_id: str, client: str) -> RegistryVerdict:
        """Live unless closed."""
        if stream_id in self.closed:
            return RegistryVerdict(Admission.NOT_LIVE)
        return LIVE

    def open(self, stream_id: str) -> bool:
        """Live again."""
        was_closed = stream_id in self.closed
        self.closed.discard(stream_id)
        return was_closed

    def close(self, stream_id: str) -> bool:
        """Not live any more."""
        was_live = stream_id not in self.closed
        self.closed.add(stream_id)
        return was_live

    def live_count(self) -> int:
        """Not counted."""
        return 0


@pytest.fixture
def sink() -> MemorySink:
    """A fresh in-memory sink."""
    return MemorySink()


@pytest.fixture
def limiter() -> FakeLimiter:
    """A fresh stand-in for the Redis rate limit."""
    return FakeLimiter()


@pytest.fixture
def app(sink: MemorySink, limiter: FakeLimiter) -> Flask:
    """A fresh app on default settings, writing to the memory sink."""
    settings = IngestSettings(max_batch=5, max_body_bytes=2048, rate_limit_burst=5)
    return create_app(settings, sink=sink, limiter=limiter, registry=MemoryRegistry())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


def _problem(resp: TestResponse, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json(force=True)
    assert isinstance(body, dict)
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def _scrape(client: FlaskClient) -> str:
    """The app's metrics as its metrics port answers them (there is none without gunicorn)."""
    return runtime_of(client.application).exposition()[0].decode()


def _metric(client: FlaskClient, line_prefix: str) -> float:
    text = _scrape(client)
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix)
    ]
    assert len(values) == 1, line_prefix
    return values[0]


def _now_s() -> float:
    return time.time()


# Accepted events.


def test_send_emoji_replies_like_the_original_server(client: FlaskClient, sink: MemorySink) -> None:
    """POST /send_emoji answers 200 {"status": "Emoji data received"} and enqueues one event."""
    body = {"user_id": 1, "emoji_type": "\u2764", "timestamp": _now_s()}
    resp = client.post("/send_emoji", json=body)
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "Emoji data received"}
    (r,) = sink.sent
    assert (r.stream_id, r.user_id, r.emoji) == ("default", "1", HEART)


def test_original_clients_test_body_is_accepted_and_clamped(
    client: FlaskClient, sink: MemorySink
) -> None:
    """The original test's 2009 timestamp is accepted, stamped with receive time, and counted."""
    resp = client.post(
        "/send_emoji", json={"user_id": 1, "emoji_type": "😂", "timestamp": 1234567890}
    )
    assert resp.status_code == 200
    assert sink.sent[0].event_time_ms == sink.sent[0].receive_time_ms
    assert _metric(client, 'emostream_ingest_events_clamped_total{direction="past"}') == 1


def test_v1_batch_is_accepted_with_its_count(client: FlaskClient, sink: MemorySink) -> None:
    """A batch to the v1 route answers 202 {"accepted": n} and enqueues n events in order."""
    batch = [{"user_id": f"u{i}", "emoji": "🔥"} for i in range(4)]
    resp = client.post(V1, json=batch)
    assert resp.status_code == 202
    assert resp.get_json() == {"accepted": 4}
    assert [r.user_id for r in sink.sent] == ["u0", "u1", "u2", "u3"]
    assert {r.stream_id for r in sink.sent} == {"final"}
    assert _metric(client, 'emostream_ingest_events_accepted_total{api="v1"}') == 4


def test_v1_single_object_is_a_batch_of_one(client: FlaskClient, sink: MemorySink) -> None:
    """One object (not an array) is accepted as one reaction."""
    resp = client.post(V1, json={"user_id": 9, "emoji": "👍"})
    assert (resp.status_code, resp.get_json()) == (202, {"accepted": 1})
    assert len(sink.sent) == 1


def test_json_media_type_with_charset_or_suffix_is_accepted(client: FlaskClient) -> None:
    """application/json with a charset, and application/*+json, count as JSON."""
    data = '{"user_id": 1, "emoji": "👍"}'.encode()
    for ctype in ("application/json; charset=utf-8", "application/reaction+json"):
        assert client.post(V1, data=data, content_type=ctype).status_code == 202


# Bad input: never a 2xx, never a 5xx, nothing enqueued.


def test_malformed_json_is_400(client: FlaskClient, sink: MemorySink) -> None:
    """A body that is not JSON is 400 problem+json."""
    for data in (b"{", b"", b"\xff\xfe{}"):
        resp = client.post(V1, data=data, content_type="application/json")
        assert "not valid JSON" in _problem(resp, 400)["detail"]
    assert sink.sent == []
    assert _metric(client, 'emostream_ingest_events_rejected_total{reason="malformed_json"}') == 3


def test_body_over_the_limit_is_413(client: FlaskClient, sink: MemorySink) -> None:
    """A body declared larger than max_body_bytes is 413 without being read."""
    data = b'{"user_id": "' + b"x" * 4000 + b'", "emoji": "x"}'
    body = _problem(client.post(V1, data=data, content_type="application/json"), 413)
    assert "2048" in body["detail"]
    assert sink.sent == []


def test_chunked_body_over_the_limit_is_413(client: FlaskClient, sink: MemorySink) -> None:
    """A body without Content-Length is cut off at the limit while read, also 413."""
    resp = client.post(
        V1,
        input_stream=io.BytesIO(b"[" + b"1," * 3000 + b"1]"),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        # What gunicorn sets for a chunked request body.
        environ_overrides={"wsgi.input_terminated": True},
    )
    _problem(resp, 413)
    assert sink.sent == []


def test_chunked_body_exactly_at_the_limit_is_read_whole(client: FlaskClient) -> None:
    """A body without Content-Length of exactly max_body_bytes is accepted, not cut or refused."""
    data = '{"user_id": 1, "emoji": "👍"}'.encode()
    data += b" " * (2048 - len(data))
    resp = client.post(
        V1,
        input_stream=io.BytesIO(data),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 202


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_media_type_is_415(client: FlaskClient, ctype: str | None) -> None:
    """A body not declared as JSON is 415 and says what is accepted."""
    resp = client.post(V1, data='{"user_id": 1, "emoji": "👍"}'.encode(), content_type=ctype)
    _problem(resp, 415)
    assert resp.headers["Accept"] == "application/json"


def test_bad_field_in_send_emoji_is_422_naming_it(client: FlaskClient, sink: MemorySink) -> None:
    """An unknown emoji on /send_emoji is 422 with field and pointer."""
    body = {"user_id": 1, "emoji_type": "🦄", "timestamp": _now_s()}
    problem = _problem(client.post("/send_emoji", json=body), 422)
    assert problem["type"] == "urn:emostream:problem:invalid-reactions"
    assert (problem["field"], problem["pointer"]) == ("emoji_type", "/emoji_type")
    assert "index" not in problem
    assert sink.sent == []


def test_missing_fields_in_send_emoji_are_422(client: FlaskClient) -> None:
    """A body missing required members is 422 listing each of them."""
    problem = _problem(client.post("/send_emoji", json={"emoji_type": "😂"}), 422)
    assert {e["field"] for e in problem["errors"]} == {"user_id", "timestamp"}
    assert problem["error_count"] == 2


def test_one_bad_item_rejects_the_whole_batch(client: FlaskClient, sink: MemorySink) -> None:
    """A batch with one invalid item is 422 naming the index and field; nothing is enqueued."""
    batch = [{"user_id": "a", "emoji": "👏"}, {"user_id": "b", "emoji": "👏", "ts": "never"}]
    problem = _problem(client.post(V1, json=batch), 422)
    assert (problem["index"], problem["field"], problem["pointer"]) == (1, "ts", "/1/ts")
    assert problem["detail"].startswith("item 1: ts: ")
    assert sink.sent == []
    assert _metric(client, 'emostream_ingest_events_rejected_total{reason="timestamp"}') == 2


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (V1, []),
        (V1, [{"user_id": "a", "emoji": "👏"}] * 6),
        (V1, "just a string"),
        (V1, [1, 2]),
        ("/v1/streams/bad.id/reactions", {"user_id": "a", "emoji": "👏"}),
        ("/send_emoji", [{"user_id": 1, "emoji_type": "😂", "timestamp": 1}]),
        ("/send_emoji", {"user_id": 1, "emoji_type": "😂", "timestamp": 1, "stream_id": "a b"}),
    ],
)
def test_wrong_shapes_are_422(
    client: FlaskClient, sink: MemorySink, path: str, body: object
) -> None:
    """Empty or oversized batches, non-objects and bad stream ids are 422, never 2xx or 5xx."""
    _problem(client.post(path, json=body), 422)
    assert sink.sent == []


def test_unexpected_failure_is_a_500_problem(client: FlaskClient, sink: MemorySink) -> None:
    """A bug (not bad input) still answers with a problem document, and no 2xx."""

    def broken(messages: Sequence[KafkaMessage]) -> None:
        raise RuntimeError("boom")

    sink.send = broken  # type: ignore[method-assign]
    body = _problem(client.post(V1, json={"user_id": 1, "emoji": "👍"}), 500)
    assert "boom" not in body["detail"]


def test_unknown_route_is_json_404(client: FlaskClient) -> None:
    """An unknown path is a 404 problem document."""
    _problem(client.get("/nope"), 404)


def test_wrong_method_is_json_405_with_allow(client: FlaskClient) -> None:
    """GET on a POST route is a 405 problem document with an Allow header."""
    resp = client.get("/send_emoji")
    _problem(resp, 405)
    assert "POST" in resp.headers["Allow"]


# Backpressure and readiness.


def test_full_queue_is_503_with_retry_after(client: FlaskClient, sink: MemorySink) -> None:
    """When Kafka's queue is full the reply is 503 + Retry-After, and nothing counts as accepted."""
    sink.full = True
    resp = client.post(V1, json=[{"user_id": "a", "emoji": "👏"}] * 3)
    problem = _problem(resp, 503)
    assert resp.headers["Retry-After"] == "1"
    assert problem["accepted"] == 0
    assert _metric(client, 'emostream_ingest_events_accepted_total{api="v1"}') == 0
    assert _metric(client, 'emostream_ingest_events_rejected_total{reason="backpressure"}') == 3


def test_partly_enqueued_batch_is_503_naming_what_is_missing(
    client: FlaskClient, sink: MemorySink
) -> None:
    """If Kafka took part of a batch, the 503 says how many and which items to send again."""

    def partly(messages: list[KafkaMessage]) -> None:
        raise QueueFullError([1, 2], len(messages))

    sink.send = partly  # type: ignore[method-assign]
    problem = _problem(client.post(V1, json=[{"user_id": "a", "emoji": "👏"}] * 3), 503)
    assert (problem["accepted"], problem["not_enqueued"]) == (1, [1, 2])
    assert _metric(client, 'emostream_ingest_events_accepted_total{api="v1"}') == 1
    assert _metric(client, 'emostream_ingest_events_rejected_total{reason="backpressure"}') == 2


def test_kafka_refusal_is_503_kafka_unavailable(client: FlaskClient, sink: MemorySink) -> None:
    """An error other than a full queue is a 503 of type kafka-unavailable, with Retry-After."""

    def refused(messages: list[KafkaMessage]) -> None:
        raise EnqueueError("Kafka refused the reactions (boom)", [0], 1)

    sink.send = refused  # type: ignore[method-assign]
    resp = client.post(V1, json={"user_id": "a", "emoji": "👏"})
    assert _problem(resp, 503)["type"] == "urn:emostream:problem:kafka-unavailable"
    assert resp.headers["Retry-After"] == "1"


# Rate limit.


def test_each_request_is_charged_per_user(client: FlaskClient, limiter: FakeLimiter) -> None:
    """The limiter is asked once per request, with each user's number of reactions."""
    batch = [{"user_id": "a", "emoji": "👏"}] * 2 + [{"user_id": 7, "emoji": "👏"}]
    assert client.post(V1, json=batch).status_code == 202
    body = {"user_id": "a", "emoji_type": "👏", "timestamp": _now_s()}
    assert client.post("/send_emoji", json=body).status_code == 200
    assert limiter.charged == [{"a": 2, "7": 1}, {"a": 1}]


def test_invalid_requests_are_not_charged(client: FlaskClient, limiter: FakeLimiter) -> None:
    """Validation comes first: a 4xx for bad input costs the user nothing."""
    client.post(V1, json=[{"user_id": "a", "emoji": "🦄"}])
    assert limiter.charged == []


def test_over_the_rate_is_429_with_retry_after(
    client: FlaskClient, sink: MemorySink, limiter: FakeLimiter
) -> None:
    """A user over its rate gets a 429 problem with Retry-After; nothing of the batch is sent."""
    limiter.over = "b"
    batch = [{"user_id": "a", "emoji": "👏"}, {"user_id": "b", "emoji": "👏"}]
    resp = client.post(V1, json=batch)
    problem = _problem(resp, 429)
    assert resp.headers["Retry-After"] == "3"
    assert problem["type"] == "urn:emostream:problem:rate-limited"
    assert (problem["user_id"], problem["retry_after_s"]) == ("b", 2.2)
    assert sink.sent == []
    assert _metric(client, 'emostream_ingest_events_rejected_total{reason="rate_limited"}') == 2
    body = {"user_id": "b", "emoji_type": "👏", "timestamp": _now_s()}
    assert _problem(client.post("/send_emoji", json=body), 429)["status"] == 429


def test_readyz_follows_the_sink(client: FlaskClient, sink: MemorySink) -> None:
    """/readyz is 200 while Kafka is reachable and a 503 problem with Retry-After otherwise."""
    assert client.get("/readyz").status_code == 200
    sink.state = Readiness(False, "broker down")
    resp = client.get("/readyz")
    assert _problem(resp, 503)["detail"] == "broker down"
    assert "Retry-After" in resp.headers


def test_healthz_is_200_json(client: FlaskClient) -> None:
    """/healthz answers 200 JSON whenever the process runs."""
    resp = client.get("/healthz")
    assert (resp.status_code, resp.get_json()) == (200, {"status": "ok"})


def test_metrics_expose_the_ingest_families(client: FlaskClient) -> None:
    """The exposition lists every emostream_ingest_* family in the Prometheus text format; the
    public routes have no /metrics."""
    client.post(V1, json={"user_id": 1, "emoji": "👍"})
    body, content_type = runtime_of(client.application).exposition()
    assert content_type.startswith("text/plain")
    text = body.decode()
    for family in (
        "emostream_ingest_requests_total",
        "emostream_ingest_request_duration_seconds",
        "emostream_ingest_events_accepted_total",
        "emostream_ingest_events_rejected_total",
        "emostream_ingest_events_clamped_total",
        "emostream_ingest_producer_queue_depth",
        "emostream_ingest_delivery_latency_seconds",
        "emostream_ingest_delivery_errors_total",
    ):
        assert f"# TYPE {family} " in text, family
    assert (
        'emostream_ingest_requests_total{method="POST",route="/v1/streams/<stream_id>/reactions",'
        'status="202"} 1.0' in text
    )
    assert "emostream_ingest_producer_queue_depth 1.0" in text
    _problem(client.get("/metrics"), 404)


def test_creating_the_app_starts_no_kafka_client() -> None:
    """No producer (and no librdkafka thread) exists until a request needs one."""
    before = {t.name for t in threading.enumerate()}
    app = create_app(IngestSettings(kafka_bootstrap_servers="127.0.0.1:1"))
    app.test_client().get("/healthz")
    after = {t.name for t in threading.enumerate()}
    assert "kafka-producer-poll" not in after - before
    assert b"emostream_ingest_producer_queue_depth 0.0" in runtime_of(app).exposition()[0]


def _cors_client(sink: MemorySink, limiter: FakeLimiter, origins: list[str]) -> FlaskClient:
    settings = IngestSettings(cors_allowed_origins=origins)
    return create_app(settings, sink=sink, limiter=limiter, registry=MemoryRegistry()).test_client()


def test_cors_lets_listed_pages_post_and_read_retry_after(
    sink: MemorySink, limiter: FakeLimiter
) -> None:
    """A listed origin's preflight is answered, and its sends (taken or refused) may be read,
    Retry-After included; an unlisted origin gets no permission and its preflight a 405."""
    client = _cors_client(sink, limiter, ["https://tv.example"])
    preflight = {"Access-Control-Request-Method": "POST"}
    ok = client.options(
        "/v1/streams/s1/reactions", headers={**preflight, "Origin": "https://tv.example"}
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://tv.example"
    assert ok.headers["Access-Control-Allow-Methods"] == "POST"
    assert {"content-type", "authorization"} <= {
        h.strip().lower() for h in ok.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert int(ok.headers["Access-Control-Max-Age"]) > 0
    denied = client.options("/send_emoji", headers={**preflight, "Origin": "https://evil.example"})
    assert denied.status_code == 405
    assert "Access-Control-Allow-Origin" not in denied.headers

    page = {"Origin": "https://tv.example"}
    taken = client.post(
        "/v1/streams/s1/reactions", json={"user_id": "u", "emoji": "👏"}, headers=page
    )
    assert taken.status_code == 202
    assert taken.headers["Access-Control-Allow-Origin"] == "https://tv.example"
    assert "Origin" in taken.headers["Vary"]
    limiter.over = "v"
    refused = client.post(
        "/send_emoji", json={"user_id": "v", "emoji_type": "👏", "timestamp": 1}, headers=page
    )
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == "https://tv.example"
    assert refused.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert "Retry-After" in refused.headers
    other = client.post(
        "/v1/streams/s1/reactions",
        json={"user_id": "w", "emoji": "👏"},
        headers={"Origin": "https://evil.example"},
    )
    assert other.status_code == 202  # taken: CORS only keeps the page from reading the reply
    assert not [h for h, _ in other.headers.items() if h.startswith("Access-Control-")]
    assert len(sink.sent) == 2


def test_without_an_allow_list_ingest_adds_no_cors_headers(
    sink: MemorySink, limiter: FakeLimiter
) -> None:
    """The default (empty list) adds nothing, Vary included, and OPTIONS stays a 405."""
    client = _cors_client(sink, limiter, [])
    page = {"Origin": "https://tv.example", "Access-Control-Request-Method": "POST"}
    assert client.options("/v1/streams/s1/reactions", headers=page).status_code == 405
    resp = client.post(
        "/v1/streams/s1/reactions", json={"user_id": "u", "emoji": "👏"}, headers=page
    )
    assert resp.status_code == 202
    assert not [h for h, _ in resp.headers.items() if h.startswith("Access-Control-")]
    assert "Vary" not in resp.headers
