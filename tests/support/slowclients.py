"""Slow HTTP clients held open against a server, and ordinary requests timed meanwhile.

A slow client sends part of a request and then waits (or dribbles the rest out a byte at a
time), the way a bad mobile network or a deliberate "slowloris" attack does. A server that ties
a thread to each request being read runs out of threads: ordinary requests then wait in its
queue behind requests that never complete. :class:`SlowClients` keeps ``count`` such
connections open on one background thread, and opens a new one whenever the server closes one
(as an attacker does, so a server that only times slow clients out does not get rid of them);
:func:`probe` times ordinary requests, each on a fresh connection, while they are held.

The tests (``tests/ingest/test_slow_clients.py``, ``tests/fanout/test_slow_clients.py``) and the
benchmark ``python -m bench.slowclients`` use them.
"""

import contextlib
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

#: The kinds of slow client, each stalled at a different point of its request.
#:
#: - ``body``: complete headers with ``Content-Length``, half the body, then silence;
#: - ``headers``: part of the header block (no blank line), then silence;
#: - ``trickle``: the whole request, one byte every ``trickle_s`` seconds from the first byte;
#: - ``ws``: a WebSocket upgrade request without its blank line, then silence.
KINDS = ("body", "headers", "trickle", "ws")

_WS_UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def post_request(host: str, path: str, body: bytes) -> bytes:
    """The bytes of a complete JSON POST with ``Content-Length``."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def partial_request(kind: str, host: str, path: str, body: bytes) -> tuple[bytes, bytes]:
    """(sent at once, trickled afterwards) for a slow client of ``kind``.

    For ``body``, ``headers`` and ``trickle`` ``path`` is the POST's target; for ``ws`` it is
    the WebSocket route. Nothing is trickled but for ``trickle``.
    """
    whole = post_request(host, path, body)
    if kind == "body":
        return whole[: len(whole) - len(body) // 2], b""
    if kind == "headers":
        return whole[: whole.index(b"\r\n\r\n")], b""
    if kind == "trickle":
        return whole[:1], whole[1:]
    if kind == "ws":
        return _WS_UPGRADE.format(host=host, path=path).encode(), b""
    raise ValueError(f"unknown slow client kind {kind!r}; one of {KINDS}")


@dataclass
class _Conn:
    sock: socket.socket
    pending: bytes
    opened: float


@dataclass
class SlowClients:
    """``count`` connections to ``host:port``, each stalled in its request; a context manager.

    Entering opens them all (and fails if the server refuses them); leaving closes them.
    ``closed_by_server`` counts the connections the server closed or answered, each replaced
    by a new one; ``held_s`` lists how long each of those had been open.
    """

    host: str
    port: int
    kind: str
    path: str
    count: int = 200
    body: bytes = b'{"user_id": "slow", "emoji": "\\ud83d\\udc4d"}' + b" " * 200
    trickle_s: float = 2.0
    closed_by_server: int = 0
    held_s: list[float] = field(default_factory=list)
    _conns: dict[int, _Conn] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def __enter__(self) -> "SlowClients":
        for _ in range(self.count):
            self._open()
        self._thread = threading.Thread(target=self._run, name=f"slow-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for conn in list(self._conns.values()):
            self._close(conn)
        self._selector.close()

    @property
    def open(self) -> int:
        """Connections held right now."""
        return len(self._conns)

    def _open(self) -> None:
        host = f"{self.host}:{self.port}"
        first, rest = partial_request(self.kind, host, self.path, self.body)
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.sendall(first)
        sock.setblocking(False)
        conn = _Conn(sock, rest, time.monotonic())
        self._conns[sock.fileno()] = conn
        self._selector.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _run(self) -> None:
        next_trickle = time.monotonic() + self.trickle_s
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.2):
                conn: _Conn = key.data
                try:
                    data = conn.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                # The server answered (a 408 or 400) or closed: this one is over, open another.
                del data
                self._server_closed(conn)
            if self.kind == "trickle" and time.monotonic() >= next_trickle:
                next_trickle += self.trickle_s
                for conn in list(self._conns.values()):
                    self._trickle(conn)

    def _trickle(self, conn: _Conn) -> None:
        if not conn.pending:
            return
        try:
            conn.sock.send(conn.pending[:1])
        except OSError:
            self._server_closed(conn)
            return
        conn.pending = conn.pending[1:]

    def _server_closed(self, conn: _Conn) -> None:
        self.closed_by_server += 1
        self.held_s.append(time.monotonic() - conn.opened)
        self._close(conn)
        if not self._stop.is_set():
            with contextlib.suppress(OSError):
                self._open()


@dataclass(frozen=True)
class Probes:
    """What the ordinary requests got: each one's status (None: no answer) and seconds taken."""

    outcomes: list[tuple[int | None, float]]

    @property
    def answered(self) -> int:
        """Requests that got any HTTP answer."""
        return sum(1 for status, _ in self.outcomes if status is not None)

    def statuses(self) -> list[int | None]:
        """Each request's status, in order (None for no answer)."""
        return [status for status, _ in self.outcomes]

    def p50_s(self) -> float:
        """Median seconds to an answer (or to giving up)."""
        return statistics.median(seconds for _, seconds in self.outcomes)

    def max_s(self) -> float:
        """Longest seconds to an answer (or to giving up)."""
        return max(seconds for _, seconds in self.outcomes)

    def summary(self) -> str:
        """One line: answered count, p50 and max."""
        return (
            f"{self.answered}/{len(self.outcomes)} answered, p50 {self.p50_s() * 1000:,.0f} ms, "
            f"max {self.max_s() * 1000:,.0f} ms, statuses {sorted(set(map(str, self.statuses())))}"
        )


def probe(
    send: Callable[[requests.Session, float], int], *, count: int, timeout_s: float, gap_s: float
) -> Probes:
    """Time ``count`` ordinary requests, each on a new connection, ``gap_s`` apart.

    ``send(session, timeout_s)`` makes one request and returns its status; a request that
    gets no answer within ``timeout_s`` counts as unanswered.
    """
    outcomes: list[tuple[int | None, float]] = []
    for _ in range(count):
        started = time.monotonic()
        status: int | None
        with requests.Session() as session:
            try:
                status = send(session, timeout_s)
            except requests.RequestException:
                status = None
        outcomes.append((status, time.monotonic() - started))
        time.sleep(gap_s)
    return Probes(outcomes)
