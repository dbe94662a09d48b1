"""The contract, checked against ingest under a real gunicorn, a real Kafka broker and Redis.

One server (two workers, as deployed) serves most tests of this module; tests that need their
own settings or stop the server start their own.
"""

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import Topics
from tests.ingest.conftest import Server, metric, read_topic, serve
from tests.support.ports import free_port
from tests.support.servers import check_metrics_port_only

pytestmark = pytest.mark.integration

HEART = "\u2764\ufe0f"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def server(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One ingest server on the session's broker and Redis, two workers of two threads.

    Its rate limit refills slowly (one reaction in two seconds), so a user that spent its
    burst stays refused for the whole of a test.
    """
    env = {
        **service_env,
        "EMOSTREAM_WORKERS": "2",
        "EMOSTREAM_THREADS": "2",
        "EMOSTREAM_RATE_LIMIT_PER_S": "0.5",
        "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
    }
    log = tmp_path_factory.mktemp("ingest-server") / "gunicorn.log"
    with serve(env, log) as running:
        yield running


def _json(resp: requests.Response, status: int) -> object:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    return resp.json()


def _problem(resp: requests.Response) -> dict[str, object]:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"] == PROBLEM, resp.headers
    body = resp.json()
    assert isinstance(body, dict)
    assert body["status"] == resp.status_code
    assert {"type", "title", "detail"} <= body.keys()
    return body


# Accepted events: the replies, and what lands in Kafka.


def test_posted_reactions_arrive_in_kafka_exactly(
    server: Server, kafka_bootstrap: str, topics: Topics, stream: str
) -> None:
    """Events posted over a real socket are on the topic once each, keyed and timed as sent."""
    before_ms = int(time.time() * 1000)
    iso = datetime.fromtimestamp(before_ms / 1000 - 2, tz=UTC).isoformat()
    batch = [{"user_id": f"u{i}", "emoji": "🔥", "ts": before_ms - i} for i in range(10)]
    batch += [{"user_id": 100 + i, "emoji": "\u2764"} for i in range(5)]
    batch += [
        {"user_id": "iso", "emoji": "😂", "ts": iso},
        {"user_id": "old", "emoji": "👎", "ts": 1},
    ]
    resp = requests.post(f"{server.url}/v1/streams/{stream}/reactions", json=batch, timeout=10)
    assert _json(resp, 202) == {"accepted": len(batch)}
    legacy = {"user_id": 7, "emoji_type": "👏", "timestamp": before_ms / 1000, "stream_id": stream}
    resp = requests.post(f"{server.url}/send_emoji", json=legacy, timeout=10)
    assert _json(resp, 200) == {"status": "Emoji data received"}
    one = {"user_id": "solo", "emoji": "👍"}
    resp = requests.post(f"{server.url}/v1/streams/{stream}/reactions", json=one, timeout=10)
    assert _json(resp, 202) == {"accepted": 1}
    after_ms = int(time.time() * 1000)
    found = read_topic(kafka_bootstrap, topics.reactions, stream, len(batch) + 2)

    got = sorted((m.key, m.reaction.user_id, m.reaction.emoji) for m in found)
    sent = [(f"u{i}", "🔥") for i in range(10)] + [(str(100 + i), HEART) for i in range(5)]
    sent += [("iso", "😂"), ("old", "👎"), ("7", "👏"), ("solo", "👍")]
    assert got == sorted((u.encode(), u, e) for u, e in sent)
    assert len({m.reaction.event_id for m in found}) == len(found)
    times = {m.reaction.user_id: m.reaction for m in found}
    for i in range(10):
        assert times[f"u{i}"].event_time_ms == before_ms - i
    assert times["iso"].event_time_ms == before_ms - 2000
    assert times["7"].event_time_ms == before_ms
    for r in times.values():
        assert before_ms <= r.receive_time_ms <= after_ms
    for user in ("100", "old", "solo"):
        assert times[user].event_time_ms == times[user].receive_time_ms


def test_send_emoji_without_stream_goes_to_the_default_stream(
    server: Server, kafka_bootstrap: str, topics: Topics
) -> None:
    """An original client's body, unchanged, lands on stream "default"."""
    user = f"orig-{uuid.uuid4().hex[:8]}"
    body = {"user_id": user, "emoji_type": "😂", "timestamp": 1234567890}
    resp = requests.post(f"{server.url}/send_emoji", json=body, timeout=10)
    assert _json(resp, 200) == {"status": "Emoji data received"}
    found = [
        m
        for m in read_topic(kafka_bootstrap, topics.reactions, "default", 1, timeout_s=10)
        if m.reaction.user_id == user
    ]
    assert len(found) == 1


def test_one_hot_stream_spreads_over_every_partition(
    server: Server, kafka_bootstrap: str, topics: Topics, stream: str
) -> None:
    """Keyed by user id, one stream's events reach all six partitions, each user's on one."""
    users = [f"viewer-{i}" for i in range(300)]
    batch = [{"user_id": u, "emoji": "🎉"} for u in users for _ in range(2)]
    url = f"{server.url}/v1/streams/{stream}/reactions"
    for i in range(0, len(batch), 200):
        assert requests.post(url, json=batch[i : i + 200], timeout=10).status_code == 202
    found = read_topic(kafka_bootstrap, topics.reactions, stream, len(batch))
    assert len(found) == len(batch)
    assert {m.partition for m in found} == set(range(6))
    partition_of: dict[str, set[int]] = {}
    for m in found:
        partition_of.setdefault(m.reaction.user_id, set()).add(m.partition)
    assert all(len(p) == 1 for p in partition_of.values())


# Bad input: always a JSON 4xx, never a 2xx or 5xx, never anything enqueued.

_OK_ITEM = '{"user_id": "u", "emoji": "\\ud83d\\udc4d"}'
_JSON = {"Content-Type": "application/json"}
_BAD: list[tuple[str, str, bytes, dict[str, str], int]] = [
    # (what, path, body, headers, status); path "v1" is the batch route, "se" /send_emoji.
    ("truncated JSON", "v1", b"{", _JSON, 400),
    ("empty body", "v1", b"", _JSON, 400),
    ("invalid UTF-8", "v1", b'{"user_id": "\xff\xfe"}', _JSON, 400),
    ("byte order mark", "v1", b"\xef\xbb\xbf" + _OK_ITEM.encode(), _JSON, 400),
    ("NaN literal", "se", b'{"user_id": 1, "emoji_type": "x", "timestamp": NaN}', _JSON, 400),
    ("nesting too deep", "v1", b"[" * 2000 + b"]" * 2000, _JSON, 400),
    ("trailing garbage", "v1", _OK_ITEM.encode() + b" x", _JSON, 400),
    ("text/plain", "v1", _OK_ITEM.encode(), {"Content-Type": "text/plain"}, 415),
    ("no Content-Type", "se", _OK_ITEM.encode(), {}, 415),
    (
        "form encoded",
        "se",
        b"user_id=1&emoji_type=x",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
    ),
    ("multipart", "v1", b"--b--", {"Content-Type": "multipart/form-data; boundary=b"}, 415),
    ("too large", "v1", b'["' + b"x" * (300 * 1024) + b'"]', _JSON, 413),
    ("array to send_emoji", "se", b"[" + _OK_ITEM.encode() + b"]", _JSON, 422),
    ("a string", "v1", b'"hello"', _JSON, 422),
    ("a number", "v1", b"42", _JSON, 422),
    ("null", "se", b"null", _JSON, 422),
    ("empty batch", "v1", b"[]", _JSON, 422),
    ("batch over 500", "v1", b"[" + b",".join([_OK_ITEM.encode()] * 501) + b"]", _JSON, 422),
    ("batch of numbers", "v1", b"[1, 2]", _JSON, 422),
    ("missing user_id", "v1", b'{"emoji": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    ("user_id true", "v1", b'{"user_id": true, "emoji": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    ("user_id float", "v1", b'{"user_id": 1.5, "emoji": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    ("user_id empty", "v1", b'{"user_id": "", "emoji": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    ("user_id 129 chars", "v1", b'{"user_id": "' + b"u" * 129 + b'", "emoji": "x"}', _JSON, 422),
    ("user_id object", "v1", b'{"user_id": {"id": 1}, "emoji": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    ("unknown emoji", "v1", b'{"user_id": "u", "emoji": "\xf0\x9f\xa6\x84"}', _JSON, 422),
    ("emoji a number", "v1", b'{"user_id": "u", "emoji": 128077}', _JSON, 422),
    ("emoji a word", "se", b'{"user_id": 1, "emoji_type": "heart", "timestamp": 1}', _JSON, 422),
    ("missing timestamp", "se", b'{"user_id": 1, "emoji_type": "\xf0\x9f\x91\x8d"}', _JSON, 422),
    (
        "timestamp words",
        "se",
        b'{"user_id": 1, "emoji_type": "\xf0\x9f\x91\x8d", "timestamp": "yesterday"}',
        _JSON,
        422,
    ),
    ("ts negative", "v1", b'{"user_id": "u", "emoji": "\xf0\x9f\x91\x8d", "ts": -5}', _JSON, 422),
    ("ts boolean", "v1", b'{"user_id": "u", "emoji": "\xf0\x9f\x91\x8d", "ts": false}', _JSON, 422),
    ("ts a list", "v1", b'{"user_id": "u", "emoji": "\xf0\x9f\x91\x8d", "ts": [1]}', _JSON, 422),
    (
        "bad stream in body",
        "se",
        b'{"user_id": 1, "emoji_type": "\xf0\x9f\x91\x8d", "timestamp": 1, "stream_id": "a b"}',
        _JSON,
        422,
    ),
    ("bad stream in path", "/v1/streams/bad.id/reactions", _OK_ITEM.encode(), _JSON, 422),
    ("stream id too long", f"/v1/streams/{'s' * 65}/reactions", _OK_ITEM.encode(), _JSON, 422),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in _BAD],
)
def test_bad_input_is_a_json_4xx(
    server: Server, stream: str, *, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    """Each malformed body or header gets its 4xx as a problem document, and nothing is taken."""
    target = {"v1": f"/v1/streams/{stream}/reactions", "se": "/send_emoji"}.get(path, path)
    before = metric(server, "emostream_ingest_events_accepted_total")
    resp = requests.post(server.url + target, data=body, headers=headers, timeout=10)
    assert resp.status_code == status, resp.text
    _problem(resp)
    assert metric(server, "emostream_ingest_events_accepted_total") == before


def test_chunked_bodies_are_read_whole_or_refused_as_too_large(server: Server, stream: str) -> None:
    """A body without Content-Length is read to its end, and one over the limit is a 413."""
    url = f"{server.url}/v1/streams/{stream}/reactions"
    chunks = iter([b'[{"user_id": "a", ', b'"emoji": "\xf0\x9f\x91\x8d"}]'])
    resp = requests.post(url, data=chunks, headers=_JSON, timeout=10)
    assert _json(resp, 202) == {"accepted": 1}
    big = iter([b'["', b"x" * (200 * 1024), b"x" * (200 * 1024), b'"]'])
    resp = requests.post(url, data=big, headers=_JSON, timeout=10)
    assert resp.status_code == 413
    _problem(resp)


def test_unknown_routes_and_methods_are_json(server: Server) -> None:
    """404 and 405 (with Allow) are problem documents too."""
    _problem(requests.get(f"{server.url}/nope", timeout=10))
    resp = requests.get(f"{server.url}/send_emoji", timeout=10)
    assert _problem(resp)["status"] == 405
    assert "POST" in resp.headers["Allow"]
    resp = requests.put(f"{server.url}/v1/streams/s/reactions", json={}, timeout=10)
    assert _problem(resp)["status"] == 405


# Rate limit, probes, metrics, OpenAPI.


def test_a_user_over_its_rate_gets_429_and_nothing_is_enqueued(
    server: Server, kafka_bootstrap: str, topics: Topics, stream: str
) -> None:
    """A full burst passes; more right after is 429 with Retry-After, and Kafka holds exactly
    the burst. One kept-alive connection stays with one worker, which decides from memory; how
    workers and replicas share a user's bucket is test_ratelimit_replicas.py's."""
    user = f"hot-{uuid.uuid4().hex[:8]}"
    url = f"{server.url}/v1/streams/{stream}/reactions"
    burst = [{"user_id": user, "emoji": "🔥"}] * 500
    session = requests.Session()
    assert _json(session.post(url, json=burst, timeout=10), 202) == {"accepted": 500}
    for _ in range(4):
        body = [{"user_id": "calm", "emoji": "🔥"}] * 2 + burst[:2]
        resp = session.post(url, json=body, timeout=10)
        assert resp.status_code == 429
        problem = _problem(resp)
        assert problem["type"] == "urn:emostream:problem:rate-limited"
        assert problem["user_id"] == user
        assert int(resp.headers["Retry-After"]) >= 1
    legacy = {"user_id": user, "emoji_type": "🔥", "timestamp": time.time(), "stream_id": stream}
    assert session.post(f"{server.url}/send_emoji", json=legacy, timeout=10).status_code == 429
    found = read_topic(kafka_bootstrap, topics.reactions, stream, 500)
    assert len(found) == 500
    assert {m.reaction.user_id for m in found} == {user}


def test_probes_and_openapi(server: Server) -> None:
    """/healthz and /readyz answer 200 JSON; /openapi.json is the OpenAPI 3.1 document."""
    assert _json(requests.get(f"{server.url}/healthz", timeout=10), 200) == {"status": "ok"}
    ready = _json(requests.get(f"{server.url}/readyz", timeout=10), 200)
    assert isinstance(ready, dict)
    assert ready["status"] == "ready"
    doc = _json(requests.get(f"{server.url}/openapi.json", timeout=10), 200)
    assert isinstance(doc, dict)
    assert doc["openapi"].startswith("3.1")
    assert "/v1/streams/{stream_id}/reactions" in doc["paths"]


def test_metrics_count_every_worker(server: Server, stream: str) -> None:
    """Whichever worker answers the scrape, the counters hold the requests of all of them."""
    name = 'emostream_ingest_events_accepted_total{api="v1"}'
    before = metric(server, name)
    url = f"{server.url}/v1/streams/{stream}/reactions"
    for i in range(20):
        # A new connection each time: the two workers take turns accepting them.
        requests.post(url, json=[{"user_id": f"m{i}", "emoji": "👍"}] * 3, timeout=10)
    scrapes = {metric(server, name) for _ in range(8)}
    assert scrapes == {before + 60}
    text = requests.get(server.metrics_url, timeout=10).text
    for family in (
        "emostream_ingest_requests_total",
        "emostream_ingest_request_duration_seconds",
        "emostream_ingest_events_rejected_total",
        "emostream_ingest_producer_queue_depth",
        "emostream_ingest_delivery_errors_total",
        "emostream_ingest_rate_limit_unchecked_requests_total",
    ):
        assert f"# TYPE {family} " in text, family


def test_metrics_are_served_on_the_metrics_port_only(server: Server) -> None:
    """/metrics is 404 on the public port (whatever the Host header says) and the metrics port
    serves nothing else."""
    check_metrics_port_only(server.url, server.metrics_url, "emostream_ingest_", "/healthz")


# Backpressure and shutdown (servers of their own).


def test_full_producer_queue_answers_503_and_counts_nothing_accepted(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """With Kafka unreachable and the queue full, posts get 503 + Retry-After, not 2xx."""
    env = {
        **service_env,
        # Nobody listens there: messages stay queued until the queue is full.
        "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "EMOSTREAM_PRODUCER_QUEUE_MAX_MESSAGES": "3",
        "EMOSTREAM_MAX_BATCH": "3",
        "EMOSTREAM_PRODUCE_RETRY_S": "0.05",
        "EMOSTREAM_WORKERS": "1",
        "EMOSTREAM_THREADS": "2",
        "EMOSTREAM_SHUTDOWN_FLUSH_TIMEOUT_S": "1",
        "EMOSTREAM_GRACEFUL_TIMEOUT_S": "5",
        "EMOSTREAM_RATE_LIMIT_PER_S": "0",
    }
    with serve(env, tmp_path / "gunicorn.log", ready_path="/healthz") as server:
        url = f"{server.url}/v1/streams/full/reactions"
        for i in range(3):
            resp = requests.post(url, json={"user_id": i, "emoji": "👏"}, timeout=10)
            assert resp.status_code == 202
        refused = [
            requests.post(url, json={"user_id": "x", "emoji": "👏"}, timeout=10),
            requests.post(url, json=[{"user_id": "y", "emoji": "👏"}] * 2, timeout=10),
            requests.post(
                f"{server.url}/send_emoji",
                json={"user_id": "z", "emoji_type": "👏", "timestamp": time.time()},
                timeout=10,
            ),
        ]
        for resp in refused:
            assert resp.status_code == 503
            assert resp.headers["Content-Type"] == PROBLEM
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.json()["type"] == "urn:emostream:problem:kafka-backpressure"
            assert resp.json()["accepted"] == 0
        assert metric(server, 'emostream_ingest_events_accepted_total{api="v1"}') == 3
        assert metric(server, 'emostream_ingest_events_accepted_total{api="send_emoji"}') == 0
        rejected = 'emostream_ingest_events_rejected_total{reason="backpressure"}'
        assert metric(server, rejected) == 4
        assert metric(server, "emostream_ingest_producer_queue_depth") >= 3
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "Retry-After" in ready.headers
        assert server.stop() == 0


@dataclass
class Sender:
    """Threads posting batches of unique users until stopped; remembers what got a 2xx."""

    url: str
    batch: int = 10
    accepted: set[str] = field(default_factory=set)
    refused: dict[int, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, threads: int = 3) -> "Sender":
        """Start posting."""
        for n in range(threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop posting and wait for the threads."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def count(self, status: int) -> int:
        """Requests answered ``status`` so far."""
        with self._lock:
            return self.refused.get(status, 0)

    def _run(self, n: int) -> None:
        session = requests.Session()
        i = 0
        while not self._stop.is_set():
            users = [f"s{n}-{i}-{j}" for j in range(self.batch)]
            i += 1
            body = [{"user_id": u, "emoji": "👏"} for u in users]
            try:
                resp = session.post(self.url, json=body, timeout=10)
            except requests.RequestException:
                with self._lock:
                    self.failed += 1
                session = requests.Session()
                time.sleep(0.01)
                continue
            with self._lock:
                if resp.status_code == 202:
                    self.accepted.update(users)
                elif resp.status_code in (429, 503):
                    self.refused[resp.status_code] = self.refused.get(resp.status_code, 0) + 1
                else:
                    self.unexpected.append(f"{resp.status_code} {resp.text}")
            if resp.status_code != 202:
                time.sleep(0.02)


def test_sigterm_under_load_delivers_every_accepted_event(
    service_env: dict[str, str],
    kafka_bootstrap: str,
    topics: Topics,
    stream: str,
    tmp_path: Path,
) -> None:
    """SIGTERM while requests keep coming: every event that got a 2xx is in Kafka, once."""
    env = {
        **service_env,
        "EMOSTREAM_WORKERS": "2",
        "EMOSTREAM_THREADS": "2",
        # Holds messages in the producer far longer than the workers take to stop, so only
        # the shutdown flush can deliver what was accepted last.
        "EMOSTREAM_PRODUCER_LINGER_MS": "3000",
    }
    with serve(env, tmp_path / "gunicorn.log") as server:
        sender = Sender(f"{server.url}/v1/streams/{stream}/reactions").start()
        time.sleep(1.5)
        assert server.stop() == 0
        sender.stop()
    assert sender.unexpected == []
    assert len(sender.accepted) >= 100
    found = read_topic(kafka_bootstrap, topics.reactions, stream, len(sender.accepted))
    users = [m.reaction.user_id for m in found]
    assert len(users) == len(set(users))
    assert sender.accepted <= set(users)
    assert "worker flushed its Kafka producer" in server.logs()
