"""The fanout app factory, served as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf
'emostream.fanout.app:create_app()'``.

Routes:

- ``GET /v1/streams/<stream_id>/events``: Server-Sent Events, one ``swarm`` event per update.
- ``GET /v1/streams/<stream_id>/ws``: a WebSocket carrying the same JSON objects.
- ``GET /watch/<stream_id>``: the live viewer page.
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``GET /openapi.json``.

Both feeds resume after the id given as ``Last-Event-ID`` (or the ``last_event_id`` query
parameter, which a page can set when it reconnects by hand); without one, a viewer starts from
the stream's latest swarm. Every swarm carries ``"viewers"``, the stream's viewer count across
all pods. With ``viewer_token_secret`` set, both feeds need a signed ``token`` query parameter
(see :mod:`emostream.fanout._tokens`). Creating the app opens no connection (gunicorn builds it
in each worker after forking); the worker's Kafka consumer starts with the worker or the first
request.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import WebsocketMismatch

from emostream.common.logging import configure_logging
from emostream.fanout._feeds import HandshakeError, sse_body, sse_closed, websocket_feed
from emostream.fanout._hub import CapacityError, Subscription
from emostream.fanout._problems import (
    INVALID_PARAMETER,
    INVALID_TOKEN,
    NOT_READY,
    OVER_CAPACITY,
    problem,
)
from emostream.fanout._runtime import FanoutRuntime
from emostream.fanout._swarm import STREAM_ID_RE
from emostream.fanout._tokens import TokenError, verify_token
from emostream.fanout.settings import FanoutSettings

STATIC_DIR = Path(__file__).resolve().parent / "static"
OPENAPI_JSON = Path(__file__).resolve().parent / "openapi.json"
_EXTENSION = "emostream.fanout"
_LAST_EVENT_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx (and ingress-nginx) would otherwise buffer the stream and deliver it in lumps.
    "X-Accel-Buffering": "no",
}
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
)


class _ProblemError(Exception):
    """Carries a problem reply (422, 503) out of the helpers that check a request."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def create_app(
    settings: FanoutSettings | None = None,
    *,
    connect_upstream: bool = True,
    consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
) -> Flask:
    """A new fanout app; settings default to the ``EMOSTREAM_*`` environment.

    ``connect_upstream=False`` leaves out the Kafka consumer (tests of the HTTP layer publish
    into the hub themselves); ``consumer_factory`` replaces ``confluent_kafka.Consumer``.
    """
    settings = settings or FanoutSettings()
    configure_logging(settings.log_level)
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    runtime = FanoutRuntime(
        settings, connect_upstream=connect_upstream, consumer_factory=consumer_factory
    )
    app.extensions[_EXTENSION] = runtime
    _register(app, runtime)
    return app


def runtime_of(app: Flask) -> FanoutRuntime:
    """The worker state of an app made by :func:`create_app`."""
    runtime = app.extensions[_EXTENSION]
    assert isinstance(runtime, FanoutRuntime)  # noqa: S101 - create_app put it there
    return runtime


def _stream_id(stream_id: str) -> str:
    if not STREAM_ID_RE.fullmatch(stream_id):
        raise _ProblemError(
            problem(
                422,
                f"stream_id must match {STREAM_ID_RE.pattern}",
                type_=INVALID_PARAMETER,
                title="Invalid stream id",
                field="stream_id",
            )
        )
    return stream_id


def _last_event_id() -> str | None:
    """The id to resume after: the ``Last-Event-ID`` header, else the query parameter."""
    value = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or None
    if value is not None and not _LAST_EVENT_ID_RE.fullmatch(value):
        raise _ProblemError(
            problem(
                422,
                "Last-Event-ID must be 1-128 printable ASCII characters",
                type_=INVALID_PARAMETER,
                title="Invalid Last-Event-ID",
                field="last_event_id",
            )
        )
    return value


def _check_token(runtime: FanoutRuntime, stream_id: str) -> None:
    """With a secret configured, the feed needs a valid ``token`` for this stream."""
    secret = runtime.settings.viewer_token_secret
    if secret is None:
        return
    try:
        verify_token(
            secret.get_secret_value().encode(),
            stream_id,
            request.args.get("token"),
            max_ttl_s=runtime.settings.viewer_token_max_ttl_s,
        )
    except TokenError as exc:
        runtime.metrics.token_rejections.labels(exc.reason).inc()
        raise _ProblemError(
            problem(
                exc.status,
                str(exc),
                type_=INVALID_TOKEN,
                title="Viewer token refused",
                reason=exc.reason,
            )
        ) from exc


def _open(runtime: FanoutRuntime, stream_id: str, transport: str) -> Subscription:
    last_event_id = _last_event_id()
    _check_token(runtime, stream_id)
    try:
        return runtime.open(stream_id, transport, last_event_id)
    except CapacityError as exc:
        retry = str(runtime.settings.busy_retry_after_s)
        raise _ProblemError(
            problem(
                503,
                str(exc),
                type_=OVER_CAPACITY,
                title="Fanout worker busy",
                headers={"Retry-After": retry},
            )
        ) from exc


def _register(app: Flask, runtime: FanoutRuntime) -> None:
    settings = runtime.settings
    allowed_origins = set(settings.cors_allowed_origins)

    @app.errorhandler(_ProblemError)
    def _bad_request(error: _ProblemError) -> Response:
        return error.response

    @app.errorhandler(HandshakeError)
    def _bad_handshake(error: HandshakeError) -> Response:
        return problem(400, str(error))

    @app.errorhandler(WebsocketMismatch)
    def _websocket_mismatch(error: WebsocketMismatch) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return problem(400, "this route does not speak WebSocket; the feed is at /ws")
        return problem(426, "this route speaks WebSocket only; /events serves the same feed")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return problem(status, error.description or "", headers=headers)

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin and ("*" in allowed_origins or origin in allowed_origins):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Last-Event-ID, Cache-Control"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
                response.headers["Access-Control-Max-Age"] = "600"
        if allowed_origins:
            response.vary.add("Origin")
        return response

    @app.get("/v1/streams/<stream_id>/events")
    def events(stream_id: str) -> Response:
        """Server-Sent Events feed of one stream."""
        sub = _open(runtime, _stream_id(stream_id), "sse")
        sock = request.environ.get("gunicorn.socket")
        body = sse_body(runtime, sub, sock)
        response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
        # Runs once the server is done with the response, even if it never started the body.
        response.call_on_close(lambda: sse_closed(sub, sock))
        return response

    # websocket=True: Werkzeug matches upgrade requests only against rules that accept them.
    @app.get("/v1/streams/<stream_id>/ws", websocket=True)
    def websocket(stream_id: str) -> Response:
        """WebSocket feed of one stream (same JSON objects as the SSE ``data``)."""
        sub = _open(runtime, _stream_id(stream_id), "ws")
        return websocket_feed(runtime, sub, request.environ)

    @app.get("/watch/<stream_id>")
    def watch(stream_id: str) -> ResponseReturnValue:
        """The live viewer page; it reads the stream id from its own URL."""
        _stream_id(stream_id)
        response = send_from_directory(STATIC_DIR, "watch.html", max_age=0)
        response.headers["Content-Security-Policy"] = _PAGE_CSP
        return response

    openapi_body = OPENAPI_JSON.read_bytes()

    @app.get("/openapi.json")
    def openapi() -> Response:
        """The OpenAPI 3.1 document of fanout (hand-written; tests/fuzz holds it to the app)."""
        return Response(openapi_body, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness: the worker answers requests."""
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        """Readiness: the worker reads every partition of the swarms topic."""
        runtime.start()
        if not runtime.ready:
            detail = (
                "draining: feeds are moving to other pods"
                if runtime.hub.closing
                else f"not yet reading every partition of {settings.swarms_topic!r}"
            )
            return problem(
                503,
                detail,
                type_=NOT_READY,
                title="Not ready",
                headers={"Retry-After": str(settings.busy_retry_after_s)},
            )
        return jsonify(
            {
                "status": "ready",
                "topic": settings.swarms_topic,
                "connections": runtime.hub.connections(),
            }
        )

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus exposition of this worker's ``emostream_fanout_*`` metrics."""
        body, content_type = runtime.metrics.exposition()
        return Response(body, content_type=content_type)
