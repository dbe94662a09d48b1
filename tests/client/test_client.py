"""The SDK's HTTP behaviour (retries, errors, feed resumption) against scripted replies."""

import io
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

from emostream.client import (
    ConnectionFailedError,
    EmostreamClient,
    RateLimitedError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from emostream.client import _client as client_module
from emostream.common.events import encode_json

Reply = tuple[int, dict[str, str], bytes] | Exception
PROBLEM = {"Content-Type": "application/problem+json"}
SSE = {"Content-Type": "text/event-stream"}


class ScriptedAdapter(BaseAdapter):
    """Answers each request with the next scripted reply and records the requests."""

    def __init__(self, replies: list[Reply]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.requests: list[requests.PreparedRequest] = []
        self._builder = HTTPAdapter()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        assert self.replies, f"unexpected request {request.method} {request.url}"
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, headers, body = reply
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False
        )
        return self._builder.build_response(request, raw)

    def close(self) -> None:
        """Nothing to release."""


def scripted(replies: list[Reply]) -> tuple[Callable[[], requests.Session], ScriptedAdapter]:
    """A session factory whose sessions all answer from one script."""
    adapter = ScriptedAdapter(replies)

    def factory() -> requests.Session:
        session = requests.Session()
        session.mount("http://", adapter)
        return session

    return factory, adapter


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the client's sleeps instead of sleeping."""
    slept: list[float] = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=slept.append))
    return slept


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens on the port."""
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", reason))  # type: ignore[arg-type]


def frame(swarm_id: str, n: int) -> bytes:
    """One swarm frame as fanout writes it."""
    data = encode_json({"id": swarm_id, "stream_id": "s", "counts": {"❤️": n}, "swarm": {"❤️": 1}})
    return b"id: " + swarm_id.encode() + b"\nevent: swarm\ndata: " + data + b"\n\n"


def test_send_posts_a_batch_and_returns_the_accepted_count(sleeps: list[float]) -> None:
    """A batch goes as one JSON array to /v1/streams/<id>/reactions; 202's count is returned."""
    factory, adapter = scripted([(202, {}, b'{"accepted": 2}')])
    client = EmostreamClient("http://ingest", session_factory=factory)
    batch = [{"user_id": "u1", "emoji": "❤️"}, {"user_id": "u2", "emoji": "😂"}]
    assert client.send("final", batch) == 2
    sent = adapter.requests[0]
    assert sent.url == "http://ingest/v1/streams/final/reactions"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == encode_json(batch)
    assert sleeps == []


def test_send_honours_retry_after_on_429(sleeps: list[float]) -> None:
    """A 429 is retried after its Retry-After; the retry's success is returned."""
    factory, adapter = scripted(
        [
            (429, {"Retry-After": "3", **PROBLEM}, b'{"title": "Too Many"}'),
            (202, {}, b'{"accepted": 1}'),
        ]
    )
    client = EmostreamClient("http://ingest", session_factory=factory)
    assert client.send("s", {"user_id": "u", "emoji": "👏"}) == 1
    assert sleeps == [3.0]
    assert len(adapter.requests) == 2


def test_send_gives_up_after_bounded_503_retries(sleeps: list[float]) -> None:
    """Repeated 503s end in ServiceUnavailableError carrying the server's problem detail."""
    body = encode_json({"title": "Service Unavailable", "detail": "Kafka is full", "status": 503})
    factory, adapter = scripted([(503, {"Retry-After": "1", **PROBLEM}, body)] * 3)
    client = EmostreamClient("http://ingest", max_retries=2, session_factory=factory)
    with pytest.raises(ServiceUnavailableError) as caught:
        client.send("s", {"user_id": "u", "emoji": "👏"})
    assert caught.value.status == 503
    assert caught.value.detail == "Kafka is full"
    assert caught.value.retry_after_s == 1.0
    assert "Kafka is full" in str(caught.value)
    assert len(adapter.requests) == 3
    assert sleeps == [1.0, 1.0]


def test_send_after_a_partial_503_retries_only_what_kafka_did_not_take(
    sleeps: list[float],
) -> None:
    """A 503 that says Kafka took part of the batch is followed by the rest alone, so nothing is
    counted twice; the reply's count adds to what was taken."""
    body = encode_json(
        {"title": "Kafka refused the events", "status": 503, "accepted": 2, "not_enqueued": [1, 3]}
    )
    factory, adapter = scripted(
        [(503, {"Retry-After": "1", **PROBLEM}, body), (202, {}, b'{"accepted": 2}')]
    )
    batch = [{"user_id": u, "emoji": "👏"} for u in "abcd"]
    client = EmostreamClient("http://ingest", session_factory=factory)
    assert client.send("s", batch) == 4
    assert orjson.loads(adapter.requests[1].body or b"") == [batch[1], batch[3]]
    assert sleeps == [1.0]


def test_retry_after_is_capped(sleeps: list[float]) -> None:
    """A huge Retry-After is capped at max_retry_wait_s."""
    factory, _ = scripted([(429, {"Retry-After": "3600"}, b""), (202, {}, b'{"accepted": 1}')])
    client = EmostreamClient("http://ingest", max_retry_wait_s=5, session_factory=factory)
    client.send("s", {"user_id": "u", "emoji": "👏"})
    assert sleeps == [5]


def test_send_does_not_retry_bad_input(sleeps: list[float]) -> None:
    """A 422 raises RequestRejectedError with the problem document at once."""
    body = encode_json({"title": "Invalid reactions", "detail": "emoji: unknown", "field": "emoji"})
    factory, adapter = scripted([(422, PROBLEM, body)])
    client = EmostreamClient("http://ingest", session_factory=factory)
    with pytest.raises(RequestRejectedError) as caught:
        client.send("s", {"user_id": "u", "emoji": "🦄"})
    assert caught.value.problem["field"] == "emoji"
    assert len(adapter.requests) == 1
    assert sleeps == []


def test_send_retries_a_refused_connection_but_not_a_timeout(sleeps: list[float]) -> None:
    """Refused (never sent) is retried; a read timeout (maybe taken) is not, to avoid doubles."""
    factory, _ = scripted([refused(), (202, {}, b'{"accepted": 1}')])
    client = EmostreamClient("http://ingest", session_factory=factory)
    assert client.send("s", {"user_id": "u", "emoji": "👏"}) == 1
    assert len(sleeps) == 1

    factory, adapter = scripted([requests.ReadTimeout("slow")])
    client = EmostreamClient("http://ingest", session_factory=factory)
    with pytest.raises(ConnectionFailedError):
        client.send("s", {"user_id": "u", "emoji": "👏"})
    assert len(adapter.requests) == 1


def test_rate_limited_error_after_retries(sleeps: list[float]) -> None:
    """429s beyond the retry budget raise RateLimitedError."""
    factory, _ = scripted([(429, {"Retry-After": "1"}, b"")] * 2)
    client = EmostreamClient("http://ingest", max_retries=1, session_factory=factory)
    with pytest.raises(RateLimitedError):
        client.send("s", {"user_id": "u", "emoji": "👏"})


def test_feed_resumes_with_last_event_id_and_skips_repeats(sleeps: list[float]) -> None:
    """After the feed ends the client reconnects with Last-Event-ID and yields no id twice."""
    first = b"retry: 500\n\n" + frame("1-1", 1) + b": hb\n\n" + frame("2-1", 2)
    second = frame("2-1", 2) + frame("3-1", 3)
    factory, adapter = scripted([(200, SSE, first), (200, SSE, second)])
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    feed = client.swarms("s")
    got = [next(feed)["id"] for _ in range(3)]
    feed.close()
    assert got == ["1-1", "2-1", "3-1"]
    assert "Last-Event-ID" not in adapter.requests[0].headers
    assert adapter.requests[1].headers["Last-Event-ID"] == "2-1"
    assert adapter.requests[0].headers["Accept"] == "text/event-stream"
    assert 0.3 < sleeps[0] < 0.7  # the server's retry hint (500 ms), with jitter


def test_feed_starts_after_the_given_last_event_id(sleeps: list[float]) -> None:
    """swarms(last_event_id=...) sends it on the first request."""
    factory, adapter = scripted([(200, SSE, frame("5-1", 5))])
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    assert next(client.swarms("s", last_event_id="4-1"))["id"] == "5-1"
    assert adapter.requests[0].headers["Last-Event-ID"] == "4-1"


def test_feed_waits_out_a_503_then_connects(sleeps: list[float]) -> None:
    """A busy worker's 503 is retried after its Retry-After."""
    factory, _ = scripted(
        [(503, {"Retry-After": "4", **PROBLEM}, b"{}"), (200, SSE, frame("1-1", 1))]
    )
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    assert next(client.swarms("s"))["id"] == "1-1"
    assert sleeps == [4.0]


def test_feed_raises_a_4xx_at_once(sleeps: list[float]) -> None:
    """A bad stream id (422) is the caller's mistake and is raised without retrying."""
    factory, _ = scripted([(422, PROBLEM, b'{"title": "Invalid stream id", "status": 422}')])
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    with pytest.raises(RequestRejectedError, match="Invalid stream id"):
        next(client.swarms("bad!"))
    assert sleeps == []


def test_feed_gives_up_after_max_failures(sleeps: list[float]) -> None:
    """Consecutive connection failures beyond max_failures raise ConnectionFailedError."""
    factory, adapter = scripted([refused(), refused(), refused()])
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    with pytest.raises(ConnectionFailedError):
        next(client.swarms("s", max_failures=3))
    assert len(adapter.requests) == 3
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0] * 1.1  # backing off


def test_feed_refuses_a_non_event_stream(sleeps: list[float]) -> None:
    """A 200 that is not text/event-stream (a misrouted proxy) is an error, not silence."""
    factory, _ = scripted([(200, {"Content-Type": "text/html"}, b"<html>")])
    client = EmostreamClient(fanout_url="http://fanout", session_factory=factory)
    with pytest.raises(RequestRejectedError, match="Not an event stream"):
        next(client.swarms("s"))


def test_listen_writes_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """listen() writes each swarm of the feed as one JSON line."""
    feed = [{"id": "1-1", "counts": {"❤️": 1}}, {"id": "2-1", "counts": {"❤️": 2}}]
    monkeypatch.setattr(EmostreamClient, "swarms", lambda self, stream_id: iter(feed))
    out = io.StringIO()
    client_module.listen("s", "http://fanout", out)
    assert out.getvalue().splitlines() == [
        '{"id":"1-1","counts":{"❤️":1}}',
        '{"id":"2-1","counts":{"❤️":2}}',
    ]
