"""SSE feeds written straight into their sockets, with no greenlet per viewer.

Under gunicorn a feed is taken over from the server once its response head is decided: the
handler writes the head, the retry hint and the backlog itself on a duplicate of the
connection's descriptor and returns, so gunicorn closes its own descriptor and frees the
request's greenlet, parser and environ. From then on a feed is a :class:`SocketFeed` and a
non-blocking socket:

- the hub's publish (on the consumer's greenlet) writes each live swarm into the socket at once.
  The frame, HTTP chunk header included, is encoded once per swarm and viewer count and shared
  by every viewer of the stream, so a delivery is one ``send``;
- a send that would block keeps what is left, and only then does the feed get a greenlet, which
  waits until the socket takes more, for at most ``write_timeout_s``. Swarms published meanwhile
  queue behind it, at most ``client_queue_size`` of them; past that the viewer is dropped as too
  slow and resumes from the replay buffer;
- heartbeats come from one tick per worker (:class:`SocketFeeds`), to the feeds that wrote
  nothing for ``heartbeat_s``.

A failed send ends the feed: a reset or broken pipe is a viewer that left, a timeout or any other
error a failed write (counted apart, as for WebSockets). A feed the worker ends (drain, shutdown,
a slow viewer) gets the chunked body's terminator if its socket is free, then is closed, so the
viewer reconnects on a new connection with the last id it saw.
"""

import logging
import os
import socket
import time
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import gevent
from flask import Response
from gevent import monkey
from gevent.socket import wait_write

from emostream.fanout._feeds import abort_unacknowledged, count_write_error, observe_lag
from emostream.fanout._hub import Subscription
from emostream.fanout._sse import HEARTBEAT, chunked, retry_frame
from emostream.fanout._swarm import Swarm

if TYPE_CHECKING:
    from emostream.fanout._runtime import FanoutRuntime

log = logging.getLogger(__name__)

_HEARTBEAT_CHUNK = chunked(HEARTBEAT)
#: The end of a chunked body.
_LAST_CHUNK = b"0\r\n\r\n"
#: The socket class gevent replaced: its ``send`` is the C one, which never yields.
_PlainSocket: type[socket.socket] = monkey.get_original("socket", "socket")


class SocketFeed:
    """One SSE viewer's connection: what the hub writes to, without a greenlet of its own.

    Until :meth:`start` everything offered is held (the head is not written yet); afterwards
    swarms go into the socket at once while it takes them, and queue while a writer greenlet
    waits for room.
    """

    def __init__(self, runtime: "FanoutRuntime", feeds: "SocketFeeds", stream_id: str) -> None:
        self._runtime = runtime
        self._feeds = feeds
        self._stream_id = stream_id
        self._capacity = runtime.settings.client_queue_size
        self._timed = runtime.sample_latency("sse")
        self._sock: socket.socket | None = None
        #: Data not yet handed to the socket, or None when the socket is free to write into.
        self._pending: list[bytes] | None = []
        self._writer: gevent.Greenlet | None = None
        self._sub: Subscription | None = None
        self._closed = False
        self.last_write = time.monotonic()

    # -- the hub's side (under its lock: nothing here may block or call back into the hub) --

    def offer(self, swarm: Swarm) -> str | None:
        """Write ``swarm`` or queue it; the reason the feed must end instead, if it must."""
        if self._closed:
            return "closed"
        data = self._feeds.chunk(swarm)
        pending, sock = self._pending, self._sock
        if pending is not None or sock is None:  # busy writing, or not started
            if pending is None or len(pending) > self._capacity:
                return "overflow"
            pending.append(data)
        elif not self._send(sock, data):
            return "closed"
        self._runtime.metrics.delivered["sse"] += 1
        if self._timed:
            observe_lag(self._runtime, "sse", [swarm])
        return None

    def end(self, reason: str) -> None:
        """Close the connection (the hub ended the subscription for ``reason``)."""
        if self._closed:
            return
        self._closed = True
        self._feeds.discard(self)
        log.debug("feed ended", extra={"stream_id": self._stream_id, "reason": reason})
        sock, writer = self._sock, self._writer
        if sock is None:
            return
        if writer is not None:
            # The writer may be waiting on the socket: close it once the writer is gone (a
            # link runs even for a greenlet killed before it started).
            writer.link(lambda _: _close(sock))
            if writer is not gevent.getcurrent():
                writer.kill(block=False)
            return
        if reason != "closed":
            # The worker ends the feed and the socket is free: end the body cleanly.
            with suppress(OSError):
                sock.send(_LAST_CHUNK)
        _close(sock)

    # -- the connection's side -----------------------------------------------------------

    def start(self, sub: Subscription, connection: socket.socket, head: bytes) -> None:
        """Take the connection over: write ``head``, the retry hint and the backlog, then
        whatever was offered meanwhile. gunicorn may close its own descriptor afterwards."""
        if self._closed:
            # Ended before it started (drain, shutdown, a slow start): gunicorn closes the
            # connection, and the viewer reconnects.
            return
        self._sub = sub
        sock = self._sock = _PlainSocket(fileno=os.dup(connection.fileno()))
        # Never a timeout on the socket itself: a send must not wait, here or in the hub.
        sock.setblocking(False)
        abort_unacknowledged(sock, self._runtime.settings.write_timeout_s)
        backlog = sub.take_backlog()
        viewers = self._runtime.viewers(self._stream_id)
        first = [head, chunked(retry_frame(self._runtime.settings.retry_ms))]
        first += [swarm.chunk(viewers) for swarm in backlog]
        self._runtime.metrics.delivered["sse"] += len(backlog)
        held, self._pending = self._pending or [], None
        self._feeds.add(self)
        if not self._send(sock, b"".join(first + held)):
            sub.close()

    def heartbeat(self, idle_since: float) -> None:
        """Write a heartbeat if nothing was written since ``idle_since`` and the socket is free."""
        sub, sock = self._sub, self._sock
        if self._closed or self._pending is not None or sub is None or sock is None:
            return
        if self.last_write <= idle_since and not self._send(sock, _HEARTBEAT_CHUNK):
            sub.close()

    # -- writing ---------------------------------------------------------------------------

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        """Hand ``data`` to ``sock``, leaving what it does not take to a writer greenlet;
        False (the feed is over) if the send failed."""
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._failed(exc)
            return False
        self.last_write = time.monotonic()
        if sent < len(data):
            pending = self._pending = [data[sent:]]
            self._writer = gevent.spawn(self._flush, sock, pending)
        return True

    def _flush(self, sock: socket.socket, pending: list[bytes]) -> None:
        """The writer greenlet: wait for room and write until nothing is pending."""
        timeout = self._runtime.settings.write_timeout_s
        try:
            while pending:
                data = memoryview(b"".join(pending))
                pending.clear()
                while data:
                    wait_write(sock.fileno(), timeout=timeout)
                    with suppress(BlockingIOError):
                        data = data[sock.send(data) :]
                self.last_write = time.monotonic()
            self._pending = None
        except OSError as exc:  # a timeout too: socket.timeout is an OSError
            self._failed(exc)
            if self._sub is not None:
                self._sub.close()
        finally:
            self._writer = None

    def _failed(self, exc: OSError) -> None:
        """Count a failed send; the subscription's end closes the socket."""
        if not self._closed:
            reason = count_write_error(self._runtime, "sse", exc)
            log.debug("feed write failed", extra={"stream_id": self._stream_id, "reason": reason})


class SocketFeeds:
    """The worker's socket feeds, and the one tick that sends their heartbeats."""

    def __init__(self, runtime: "FanoutRuntime") -> None:
        self._runtime = runtime
        self._heartbeat_s = runtime.settings.heartbeat_s
        # A feed idle for at least this long gets a heartbeat at a tick, so none stays silent
        # for more than heartbeat_s.
        self._tick_s = min(1.0, self._heartbeat_s / 4)
        self._feeds: set[SocketFeed] = set()
        self._ticker: gevent.Greenlet | None = None
        #: The swarm the hub is offering to its viewers one after another, and its chunk.
        self._offered: tuple[Swarm, bytes] | None = None

    def chunk(self, swarm: Swarm) -> bytes:
        """``swarm`` as a chunk with its stream's viewer count, worked out once per publish:
        the hub offers it to each viewer in turn, with nothing running in between to change
        the count."""
        offered = self._offered
        if offered is None or offered[0] is not swarm:
            viewers = self._runtime.viewers(swarm.stream_id)
            offered = self._offered = (swarm, swarm.chunk(viewers))
        return offered[1]

    def add(self, feed: SocketFeed) -> None:
        """Start sending ``feed`` heartbeats."""
        self._feeds.add(feed)
        if self._ticker is None:
            self._ticker = gevent.spawn(self._tick)

    def discard(self, feed: SocketFeed) -> None:
        """Stop sending ``feed`` heartbeats."""
        self._feeds.discard(feed)

    def _tick(self) -> None:
        while True:
            gevent.sleep(self._tick_s)
            idle_since = time.monotonic() - (self._heartbeat_s - self._tick_s)
            for feed in list(self._feeds):
                feed.heartbeat(idle_since)


class TakenOverResponse(Response):
    """An SSE response whose connection the feed takes over when the server calls it.

    Flask builds it like any response (status, headers, the CORS hook's additions); calling it
    writes that head and starts the feed, then raises StopIteration, which tells gunicorn the
    request was handled and its connection is to be closed without writing anything more.
    """

    def __init__(self, feed: SocketFeed, sub: Subscription, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._feed = feed
        self._sub = sub

    def __call__(self, environ: Any, start_response: Any) -> Any:
        skip = {"content-length", "transfer-encoding", "connection"}
        headers = [
            (k, v) for k, v in self.get_wsgi_headers(environ).items() if k.lower() not in skip
        ]
        self._feed.start(self._sub, environ["gunicorn.socket"], _chunked_head(self.status, headers))
        raise StopIteration


def _chunked_head(status: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The head of a chunked HTTP/1.1 response that closes its connection at the end."""
    lines = [f"HTTP/1.1 {status}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    return "".join(lines).encode("latin-1")


def _close(sock: socket.socket) -> None:
    """Send FIN after what is queued, then release the descriptor."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def taken_over(environ: dict[str, Any]) -> bool:
    """Whether a feed request's connection can be taken over: under gunicorn, a GET over
    HTTP/1.1 (other servers, HEAD and HTTP/1.0 get the ordinary streamed response)."""
    return (
        environ.get("gunicorn.socket") is not None
        and environ.get("REQUEST_METHOD") == "GET"
        and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
    )
