"""The two ways a subscription reaches a viewer: an SSE response body and a WebSocket.

Both start with the subscription's backlog (the resumed swarms, or the latest snapshot), then
write live swarms as they come, each with the stream's current viewer count added. Both end
when the viewer goes away, when the hub drops a viewer that fell behind, or when the worker
drains or shuts down; either way the viewer reconnects with the last id it saw and misses
nothing still in the replay window.

A viewer that vanished without closing (its host or network gone: no FIN, no RST) is noticed
by the writes: a heartbeat goes out at least every ``heartbeat_s``, and the socket gets both a
send timeout (a write blocked on a full buffer fails after ``write_timeout_s``) and
``TCP_USER_TIMEOUT`` (the kernel aborts the connection when data it sent stays unacknowledged
that long, where it would otherwise retransmit for many minutes), so the next write fails.
"""

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from flask import Response
from simple_websocket import ConnectionClosed, Server
from simple_websocket import ConnectionError as WebSocketConnectionError
from wsproto.utilities import ProtocolError

from emostream.common.errors import EmostreamError
from emostream.common.events import now_ms
from emostream.fanout._hub import Subscription, SubscriptionClosedError
from emostream.fanout._runtime import FanoutRuntime
from emostream.fanout._sse import HEARTBEAT, retry_frame
from emostream.fanout._swarm import Swarm

log = logging.getLogger(__name__)

#: The text a WebSocket feed asked for with ``?heartbeat=1`` gets after ``heartbeat_s`` of
#: silence: browsers and React Native answer the protocol's pings without telling the page, so a
#: client that wants to see a dead connection needs something it can read.
WS_HEARTBEAT = '{"type":"heartbeat"}'
#: WebSocket close codes (RFC 6455 7.4.1, IANA registry): why the server ended the feed.
_WS_CLOSE = {"overflow": 1013, "drain": 1001, "shutdown": 1001}  # "try again later", "going away"
#: Reasons after which the client should not reuse the connection: the worker is going away.
_LEAVING = frozenset({"drain", "shutdown"})


class HandshakeError(EmostreamError):
    """The request asked for a WebSocket but its handshake is incomplete or invalid."""


def observe_lag(runtime: FanoutRuntime, transport: str, swarms: list[Swarm]) -> None:
    """Time live swarms' write: from their emission, and from the newest reaction they count."""
    now = now_ms()
    metrics = runtime.metrics
    for swarm in swarms:
        if swarm.emitted_at_ms is not None:
            lag = max(0, now - swarm.emitted_at_ms) / 1000
            metrics.delivery_lag.labels(transport).observe(lag)
        if swarm.last_receive_ms is not None:
            tap = max(0, now - swarm.last_receive_ms) / 1000
            metrics.event_to_viewer.labels(transport).observe(tap)


def sse_body(runtime: FanoutRuntime, sub: Subscription, sock: Any | None) -> Iterator[bytes]:
    """The body of an SSE response: retry hint and backlog, then live swarms and heartbeats.

    gunicorn writes (and so flushes) each yielded chunk before asking for the next, so code
    after a ``yield`` runs once that chunk is on the wire. Swarms queued while a chunk was
    being written go out together in the next one. ``sock``, when the server exposes it, gets
    write limits so a viewer that stops reading or vanishes cannot hold a slot.
    """
    s = runtime.settings
    delivered = runtime.metrics.delivered
    timed = runtime.sample_latency("sse")
    old_timeout = guard_writes(sock, s.write_timeout_s)
    reason = "closed"
    try:
        backlog = sub.take_backlog()
        viewers = runtime.viewers(sub.stream_id)
        frames = [swarm.render(viewers)[1] for swarm in backlog]
        yield retry_frame(s.retry_ms) + b"".join(frames)
        delivered["sse"] += len(backlog)
        last_write = time.monotonic()
        while True:
            wait = s.heartbeat_s - (time.monotonic() - last_write)
            live = sub.take(timeout=max(wait, 0.0))
            if not live:
                yield HEARTBEAT
            else:
                viewers = runtime.viewers(sub.stream_id)
                yield b"".join([swarm.render(viewers)[1] for swarm in live])
                delivered["sse"] += len(live)
                if timed:
                    observe_lag(runtime, "sse", live)
            last_write = time.monotonic()
    except SubscriptionClosedError as exc:
        reason = exc.reason
    except GeneratorExit as stop:
        # The server stopped asking for chunks because a write failed; the error it met is
        # the context of this exit (gunicorn closes the body while that error propagates).
        reason = count_write_error(runtime, "sse", stop.__context__)
        raise
    finally:
        sub.close()
        _set_send_timeout(sock, old_timeout)
        log.debug("feed ended", extra={"stream_id": sub.stream_id, "reason": reason})


def count_write_error(runtime: FanoutRuntime, transport: str, error: BaseException | None) -> str:
    """Count a feed ended by a failed write, and return the reason it ended.

    A reset or broken pipe means the viewer closed its end (a tab closed with data unread, a
    client gone while its host still answers): churn, counted apart so that alerts on
    failures do not fire when viewers leave. A timeout (the viewer stopped reading, or its
    host vanished and TCP_USER_TIMEOUT gave up) or any other error is a failed write.
    """
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        runtime.metrics.viewers_left.labels(transport).inc()
        return "viewer left"
    runtime.metrics.write_failures.labels(transport).inc()
    return "write failed"


def sse_closed(sub: Subscription, sock: Any | None) -> None:
    """Run when the server is done with an SSE response (after its last byte was written).

    Ends the subscription if the body never did (the viewer left before it started). If the
    worker ended the feed because it is going away, also ends the connection: the response
    headers went out long ago, so ``Connection: close`` cannot be sent now, and gunicorn would
    otherwise keep the connection open for the viewer's next request, which is its reconnection
    and would only meet this worker's 503. Closed, the viewer reconnects on a new connection,
    which the load balancer sends to another pod.
    """
    sub.close()
    if sub.closed_reason in _LEAVING and sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def guard_writes(sock: Any | None, timeout: float) -> float | None:
    """Bound how long writes to ``sock`` may stall; returns its previous send timeout."""
    if sock is not None:
        abort_unacknowledged(sock, timeout)
    return _set_send_timeout(sock, timeout)


def abort_unacknowledged(sock: Any, timeout: float) -> None:
    """Have the kernel abort ``sock``'s connection when data it sent stays unacknowledged for
    ``timeout`` seconds (``TCP_USER_TIMEOUT``; where there is none, retransmissions go on)."""
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        with suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout * 1000))


def _set_send_timeout(sock: Any | None, timeout: float | None) -> float | None:
    """Set ``sock``'s timeout, returning the previous one (None when there is no socket)."""
    if sock is None:
        return None
    try:
        old: float | None = sock.gettimeout()
        sock.settimeout(timeout)
    except OSError:
        return None
    return old


class _WholeFrames:
    """A socket whose ``send`` writes everything, one writer at a time.

    simple-websocket writes frames with ``socket.send``, which may write only part of a frame
    when the viewer's buffer is nearly full, and its reader also writes (pongs, close replies)
    from another greenlet; either would corrupt the stream.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def websocket_feed(
    runtime: FanoutRuntime, sub: Subscription, environ: dict[str, Any], *, heartbeats: bool
) -> Response:
    """Upgrade the request to a WebSocket and write the feed; returns once the feed ends.

    ``heartbeats``: also send :data:`WS_HEARTBEAT` after ``heartbeat_s`` without a swarm.
    """
    s = runtime.settings
    delivered = runtime.metrics.delivered
    timed = runtime.sample_latency("ws")
    try:
        ws = Server(environ, ping_interval=s.heartbeat_s, max_message_size=s.ws_max_message_bytes)
    except (ProtocolError, WebSocketConnectionError) as exc:
        sub.close()
        raise HandshakeError(f"not a valid WebSocket handshake: {exc}") from exc
    except Exception:
        sub.close()
        raise
    raw = ws.sock
    ws.sock = _WholeFrames(raw)
    guard_writes(raw, s.write_timeout_s)
    reason = "closed"
    try:
        viewers = runtime.viewers(sub.stream_id)
        for old in sub.take_backlog():
            ws.send(old.render(viewers)[0])
            delivered["ws"] += 1
        while ws.connected:
            live = sub.take(timeout=s.heartbeat_s)
            if live:
                viewers = runtime.viewers(sub.stream_id)
                for swarm in live:
                    ws.send(swarm.render(viewers)[0])
                delivered["ws"] += len(live)
                if timed:
                    observe_lag(runtime, "ws", live)
            elif heartbeats:
                ws.send(WS_HEARTBEAT)
    except SubscriptionClosedError as exc:
        reason = exc.reason
    except ConnectionClosed:
        runtime.metrics.viewers_left.labels("ws").inc()
        reason = "viewer left"
    except OSError as exc:
        reason = count_write_error(runtime, "ws", exc)
    finally:
        sub.close()
        with suppress(ConnectionClosed, OSError):
            ws.close(reason=_WS_CLOSE.get(reason), message=reason)
    log.debug("websocket ended", extra={"stream_id": sub.stream_id, "reason": reason})
    return _UpgradedResponse(ws.mode)


class _UpgradedResponse(Response):
    """What a WSGI view returns after it has taken over the socket.

    Under gunicorn, raising StopIteration from the response tells the worker that the request
    was handled and the connection must be closed without writing anything more.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        self._mode = mode

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self._mode == "gunicorn":
            raise StopIteration
        if self._mode == "werkzeug":
            return super().__call__(environ, start_response)
        return []
