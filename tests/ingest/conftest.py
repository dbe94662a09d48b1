"""Helpers of the ingest tests: a real gunicorn server, reading a topic back, Prometheus lines."""

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emostream.common.events import Reaction
from tests.support.ports import free_port
from tests.support.servers import running
from tests.support.waiting import wait_until

APP = "emostream.ingest.app:create_app()"


@dataclass
class Server:
    """A running gunicorn serving ingest."""

    url: str
    proc: "subprocess.Popen[bytes]"
    log: Path
    #: /metrics, on the server's metrics port.
    metrics_url: str

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the master and wait for it to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def logs(self) -> str:
        """What the server wrote so far."""
        return self.log.read_text(errors="replace")


@contextmanager
def serve(env: dict[str, str], log: Path, ready_path: str = "/readyz") -> Iterator[Server]:
    """Run ``gunicorn -c python:emostream.ingest.gunicorn_conf`` until the block ends (on free
    ports: the public one and the metrics port)."""
    port, metrics_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:emostream.ingest.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", APP,
    ]  # fmt: skip
    env = {**env, "EMOSTREAM_METRICS_PORT": str(metrics_port)}
    with running(cmd, env, log, stop_s=30) as proc:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        server = Server(f"http://127.0.0.1:{port}", proc, log, metrics_url)
        wait_ready(server, ready_path)
        yield server


def wait_ready(server: Server, path: str = "/readyz", timeout_s: float = 60) -> None:
    """Wait until ``path`` answers 200, failing with the server's log if it never does."""

    def ready() -> bool:
        if server.proc.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{server.logs()[-3000:]}")
        try:
            return requests.get(server.url + path, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(
        lambda: f"ingest to answer {path} with 200:\n{server.logs()[-3000:]}",
        ready,
        timeout_s,
        interval_s=0.2,
    )


@dataclass(frozen=True)
class Read:
    """One message read back: its partition, key and decoded reaction."""

    partition: int
    key: bytes | None
    reaction: Reaction


def read_topic(
    bootstrap: str,
    topic: str,
    stream_id: str,
    expected: int,
    timeout_s: float = 30,
    *,
    prefix: bool = False,
) -> list[Read]:
    """Every message of ``stream_id`` (of every stream it begins, with ``prefix``) on ``topic``:
    wait for ``expected``, then a little more."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ingest-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    found: list[Read] = []
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
                stream = reaction.stream_id
                if stream == stream_id or (prefix and stream.startswith(stream_id)):
                    found.append(Read(msg.partition() or 0, msg.key(), reaction))
    finally:
        consumer.close()
    return found


def metric(server: Server, line_prefix: str) -> float:
    """The sum of the /metrics lines starting with ``line_prefix`` (at least one must)."""
    text = requests.get(server.metrics_url, timeout=10).text
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_prefix)
    ]
    assert values, f"{line_prefix!r} not in:\n{text}"
    return sum(values)


@pytest.fixture
def stream() -> str:
    """A stream id no other test uses."""
    return f"ingest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def key_prefix() -> str:
    """A rate-limit key prefix no other test (or session sharing the Redis) uses."""
    return f"test-{uuid.uuid4().hex[:10]}:"
