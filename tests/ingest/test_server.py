"""Ingest under a real gunicorn on a loopback port, writing to a real Kafka broker."""

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emostream.common.events import Reaction
from tests.conftest import ROOT, Topics, free_port

pytestmark = pytest.mark.integration

APP = "emostream.ingest.app:create_app()"
HEART = "\u2764\ufe0f"


@dataclass
class Server:
    """A running gunicorn serving ingest."""

    url: str
    proc: "subprocess.Popen[bytes]"
    log: Path

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the master and wait for it to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)


@contextmanager
def serve(env: dict[str, str], log: Path, ready_path: str = "/readyz") -> Iterator[Server]:
    """Run ``gunicorn -c python:emostream.ingest.gunicorn_conf`` until the block ends."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:emostream.ingest.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", "--preload", APP,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(server, ready_path)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(server: Server, path: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{server.log.read_text()[-3000:]}")
        try:
            if requests.get(server.url + path, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"ingest not ready after {timeout_s} s:\n{server.log.read_text()[-3000:]}")


def read_stream(
    bootstrap: str, topic: str, stream_id: str, expected: int, timeout_s: float = 30
) -> list[tuple[bytes | None, Reaction]]:
    """Every message of ``stream_id`` on ``topic``: wait for ``expected``, then a little more."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ingest-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    found: list[tuple[bytes | None, Reaction]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout_s
        quiet_polls = 0
        # After the expected count, two empty polls in a row show nothing more (no duplicate).
        while time.monotonic() < deadline and (len(found) < expected or quiet_polls < 2):
            msg = consumer.poll(0.5)
            if msg is None:
                quiet_polls += 1
                continue
            quiet_polls = 0
            value = msg.value()
            if msg.error() is None and value is not None:
                reaction = Reaction.decode(value)
                if reaction.stream_id == stream_id:
                    found.append((msg.key(), reaction))
    finally:
        consumer.close()
    return found


@pytest.fixture
def stream() -> str:
    """A stream id no other test uses."""
    return f"ingest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def small_env(service_env: dict[str, str]) -> dict[str, str]:
    """The session's services, with a server sized for a two-core machine."""
    return {**service_env, "EMOSTREAM_WORKERS": "2", "EMOSTREAM_THREADS": "2"}


def test_posted_reactions_arrive_in_kafka_exactly(
    small_env: dict[str, str],
    kafka_bootstrap: str,
    topics: Topics,
    stream: str,
    tmp_path: Path,
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
    with serve(small_env, tmp_path / "gunicorn.log") as server:
        resp = requests.post(f"{server.url}/v1/streams/{stream}/reactions", json=batch, timeout=10)
        assert (resp.status_code, resp.json()) == (202, {"accepted": len(batch)})
        legacy = {
            "user_id": 7,
            "emoji_type": "👏",
            "timestamp": before_ms / 1000,
            "stream_id": stream,
        }
        resp = requests.post(f"{server.url}/send_emoji", json=legacy, timeout=10)
        assert (resp.status_code, resp.json()) == (200, {"status": "Emoji data received"})
        after_ms = int(time.time() * 1000)
        found = read_stream(kafka_bootstrap, topics.reactions, stream, len(batch) + 1)

    got = sorted((key, r.user_id, r.emoji) for key, r in found)
    sent = [(f"u{i}", "🔥") for i in range(10)] + [(str(100 + i), HEART) for i in range(5)]
    sent += [("iso", "😂"), ("old", "👎"), ("7", "👏")]
    assert got == sorted((u.encode(), u, e) for u, e in sent)
    assert len({r.event_id for _, r in found}) == len(found)
    times = {r.user_id: r for _, r in found}
    for i in range(10):
        assert times[f"u{i}"].event_time_ms == before_ms - i
    assert times["iso"].event_time_ms == before_ms - 2000
    assert times["7"].event_time_ms == before_ms
    for r in times.values():
        assert before_ms <= r.receive_time_ms <= after_ms
    for user in ("100", "old"):
        assert times[user].event_time_ms == times[user].receive_time_ms


def test_real_socket_edge_cases(small_env: dict[str, str], tmp_path: Path) -> None:
    """Over a real socket: a chunked body is read whole, an oversized one is a 413 problem."""
    with serve(small_env, tmp_path / "gunicorn.log") as server:
        url = f"{server.url}/v1/streams/edge/reactions"
        chunks = iter([b'[{"user_id": "a", ', b'"emoji": "\xf0\x9f\x91\x8d"}]'])
        resp = requests.post(
            url, data=chunks, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert (resp.status_code, resp.json()) == (202, {"accepted": 1})
        big = b'{"user_id": "' + b"x" * (300 * 1024) + b'", "emoji": "x"}'
        resp = requests.post(
            url, data=big, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert resp.status_code == 413
        assert resp.headers["Content-Type"] == "application/problem+json"
        resp = requests.get(f"{server.url}/openapi.json", timeout=10)
        assert resp.json()["openapi"].startswith("3.1")


def test_sigterm_delivers_every_accepted_event(
    service_env: dict[str, str],
    kafka_bootstrap: str,
    topics: Topics,
    stream: str,
    tmp_path: Path,
) -> None:
    """Events still lingering in the producer when SIGTERM arrives are flushed, not lost."""
    env = {
        **service_env,
        "EMOSTREAM_WORKERS": "1",
        "EMOSTREAM_THREADS": "2",
        # Holds every message in the producer far longer than the worker takes to stop, so
        # only the shutdown flush can deliver them.
        "EMOSTREAM_PRODUCER_LINGER_MS": "20000",
    }
    batch = [{"user_id": f"s{i}", "emoji": "🎉"} for i in range(50)]
    with serve(env, tmp_path / "gunicorn.log") as server:
        resp = requests.post(f"{server.url}/v1/streams/{stream}/reactions", json=batch, timeout=10)
        assert resp.status_code == 202
        assert server.stop() == 0
    found = read_stream(kafka_bootstrap, topics.reactions, stream, len(batch))
    assert sorted(r.user_id for _, r in found) == sorted(b["user_id"] for b in batch)
    assert "worker flushed its Kafka producer" in (tmp_path / "gunicorn.log").read_text()


def _metric(url: str, name: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


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
            assert resp.headers["Content-Type"] == "application/problem+json"
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.json()["type"] == "urn:emostream:problem:kafka-backpressure"
            assert resp.json()["accepted"] == 0
        assert _metric(server.url, 'emostream_ingest_events_accepted_total{api="v1"}') == 3
        assert _metric(server.url, 'emostream_ingest_events_accepted_total{api="send_emoji"}') == 0
        assert (
            _metric(server.url, 'emostream_ingest_events_rejected_total{reason="backpressure"}')
            == 4
        )
        assert _metric(server.url, "emostream_ingest_producer_queue_depth") == 3
        ready = requests.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "Retry-After" in ready.headers
        assert server.stop() == 0
