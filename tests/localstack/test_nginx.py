"""nginx in front of ingest: its configuration, its timeouts on stalled requests, and the errors
it answers itself as problem documents.

Each test runs a real nginx on the configuration the local stack writes, in front of a stand-in
upstream (nothing listening, or a socket that reads a request and hangs up), so no gunicorn or
Kafka is needed; tests/ingest/test_slow_clients.py runs it in front of the real ingest.
"""

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from emostream.localstack.nginx import IngestProxy
from tests.support.ports import free_port
from tests.support.servers import running
from tests.support.slowclients import SlowClients
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0
MAX_BODY = 1000
PROBLEM = "application/problem+json"


def _proxy(root: Path, upstream_port: int) -> IngestProxy:
    return IngestProxy(
        root=root,
        port=free_port(),
        upstream_port=upstream_port,
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
        max_connections=512,
        max_body_bytes=MAX_BODY,
    )


@contextmanager
def _serving(proxy: IngestProxy, log: Path) -> Iterator[IngestProxy]:
    with running(proxy.command_after_prepare(), {}, log, stop_s=10):
        wait_until("nginx to listen", lambda: _listening(proxy.port), 30)
        yield proxy


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def no_upstream(tmp_path: Path) -> Iterator[IngestProxy]:
    """nginx in front of a port nothing listens on (ingest stopped)."""
    with _serving(_proxy(tmp_path / "nginx", free_port()), tmp_path / "nginx.log") as proxy:
        yield proxy


@pytest.fixture
def hanging_up_upstream(tmp_path: Path) -> Iterator[IngestProxy]:
    """nginx in front of an upstream that reads each request and closes without answering."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        with _serving(_proxy(tmp_path / "nginx", port), tmp_path / "nginx.log") as proxy:
            yield proxy
    finally:
        listener.close()


def test_the_configuration_is_valid(tmp_path: Path) -> None:
    """``nginx -t`` accepts the configuration the stack writes."""
    proxy = _proxy(tmp_path / "nginx", free_port())
    command = proxy.command_after_prepare()
    checked = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("kind", ["headers", "body", "trickle"])
def test_a_stalled_request_is_dropped_after_the_timeout(
    no_upstream: IngestProxy, kind: str
) -> None:
    """A request stalled in its headers or body (or dribbled out) is dropped within a few
    timeouts, and never reaches the upstream."""
    # A byte every half timeout: nginx times the whole header block, not each read.
    with SlowClients(
        "127.0.0.1", no_upstream.port, kind, "/v1/streams/s/reactions", 5, trickle_s=TIMEOUT_S / 2
    ) as slow:
        wait_until(f"nginx to drop the {kind} clients", lambda: slow.closed_by_server >= 5, 15)
    assert max(slow.held_s) < 10 * TIMEOUT_S, slow.held_s


def test_a_request_ingest_never_got_is_503_with_retry_after(no_upstream: IngestProxy) -> None:
    """With ingest down, a POST is a 503 problem with Retry-After: clients send it again."""
    resp = requests.post(f"{no_upstream.url}/v1/streams/s/reactions", json={}, timeout=10)
    assert resp.status_code == 503
    assert resp.headers["Content-Type"] == PROBLEM
    assert resp.headers["Retry-After"] == "1"
    assert resp.json()["status"] == 503


def test_a_request_ingest_did_not_answer_is_502(hanging_up_upstream: IngestProxy) -> None:
    """A request ingest received but never answered is a 502 problem, without Retry-After: it
    may have been enqueued."""
    resp = requests.post(f"{hanging_up_upstream.url}/v1/streams/s/reactions", json={}, timeout=10)
    assert resp.status_code == 502
    assert resp.headers["Content-Type"] == PROBLEM
    assert "Retry-After" not in resp.headers
    assert resp.json()["status"] == 502


def test_a_body_over_ingests_limit_is_413_before_it_is_read(no_upstream: IngestProxy) -> None:
    """A body announced larger than ingest's limit is a 413 problem from nginx itself."""
    resp = requests.post(
        f"{no_upstream.url}/v1/streams/s/reactions",
        data=b" " * (MAX_BODY + 2),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 413
    assert resp.headers["Content-Type"] == PROBLEM
    assert resp.json()["status"] == 413


def test_a_request_that_is_not_http_is_a_400_problem(no_upstream: IngestProxy) -> None:
    """Bytes that are no HTTP request get a 400 problem document, not an HTML page."""
    with socket.create_connection(("127.0.0.1", no_upstream.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        time.sleep(0.2)
        head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert f"Content-Type: {PROBLEM}".encode() in head
    assert b'"status":400' in body
