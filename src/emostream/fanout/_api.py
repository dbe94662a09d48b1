"""The routes of fanout and the translation of every failure into a problem document.

A feed request is checked cheapest first: the stream id and ``Last-Event-ID`` (in process),
the viewer token if one is required (a signature check, cached per token), in closed mode
whether the stream is live (in memory), then the worker's capacity; only then does the hub
subscribe it. Every refusal is a :class:`~emostream.common.problems.HttpProblemError`.
"""

import re
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.routing import WebsocketMismatch

from emostream.common import apps
from emostream.common.events import STREAM_ID_RE
from emostream.common.problems import (
    INVALID_PARAMETER,
    NOT_READY,
    OVER_CAPACITY,
    HttpProblemError,
    from_http_exception,
    stream_not_live,
    token_problem,
)
from emostream.common.tokens import (
    TokenError,
    bearer,
    is_legacy_viewer_token,
    verify_legacy_viewer_token,
)
from emostream.fanout._feeds import HandshakeError, sse_body, sse_closed, websocket_feed
from emostream.fanout._hub import CapacityError, Sink, Subscription
from emostream.fanout._push import SocketFeed, SocketFeeds, TakenOverResponse, taken_over
from emostream.fanout._runtime import FanoutRuntime

STATIC_DIR = Path(__file__).resolve().parent / "static"
OPENAPI_JSON = Path(__file__).resolve().parent / "openapi.json"
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


class FanoutApi:
    """Route handlers bound to one worker's runtime (settings, hub, consumer, metrics)."""

    def __init__(self, runtime: FanoutRuntime) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._allowed_origins = set(runtime.settings.cors_allowed_origins)
        self._openapi = OPENAPI_JSON.read_bytes()
        self._socket_feeds = SocketFeeds(runtime)

    def register(self, app: Flask) -> None:
        """Add the routes, error handlers and CORS headers to ``app``."""
        app.add_url_rule("/v1/streams/<stream_id>/events", view_func=self.events, methods=["GET"])
        # websocket=True: Werkzeug matches upgrade requests only against rules that accept them.
        app.add_url_rule(
            "/v1/streams/<stream_id>/ws", view_func=self.websocket, methods=["GET"], websocket=True
        )
        app.add_url_rule("/watch/<stream_id>", view_func=self.watch, methods=["GET"])
        apps.add_service_routes(app, self)
        app.register_error_handler(HttpProblemError, HttpProblemError.to_response)
        app.register_error_handler(HandshakeError, self._on_bad_handshake)
        app.register_error_handler(WebsocketMismatch, self._on_websocket_mismatch)
        app.register_error_handler(HTTPException, self._on_http_exception)
        app.after_request(self._cors)

    # Routes.

    def events(self, stream_id: str) -> Response:
        """``GET /v1/streams/<stream_id>/events``: the Server-Sent Events feed of one stream.

        Under gunicorn the feed takes the connection over (:mod:`emostream.fanout._push`);
        elsewhere the response body is a generator with a greenlet of its own.
        """
        stream_id = _stream_id(stream_id)
        if taken_over(request.environ):
            feed = SocketFeed(self._runtime, self._socket_feeds, stream_id)
            sub = self._open(stream_id, "sse", sink=feed)
            return TakenOverResponse(feed, sub, mimetype="text/event-stream", headers=SSE_HEADERS)
        sub = self._open(stream_id, "sse")
        sock = request.environ.get("gunicorn.socket")
        body = sse_body(self._runtime, sub, sock)
        response = Response(body, mimetype="text/event-stream", headers=SSE_HEADERS)
        # Runs once the server is done with the response, even if it never started the body.
        response.call_on_close(lambda: sse_closed(sub, sock))
        return response

    def websocket(self, stream_id: str) -> Response:
        """``GET /v1/streams/<stream_id>/ws``: the same JSON objects over a WebSocket."""
        sub = self._open(_stream_id(stream_id), "ws")
        heartbeats = request.args.get("heartbeat") in ("1", "true")
        return websocket_feed(self._runtime, sub, request.environ, heartbeats=heartbeats)

    def watch(self, stream_id: str) -> Response:
        """``GET /watch/<stream_id>``: the live viewer page; it reads the id from its own URL."""
        _stream_id(stream_id)
        response = send_from_directory(STATIC_DIR, "watch.html", max_age=0)
        response.headers["Content-Security-Policy"] = _PAGE_CSP
        return response

    def openapi(self) -> Response:
        """``GET /openapi.json``: the hand-written OpenAPI 3.1 document (tests/fuzz holds it to
        the app)."""
        return Response(self._openapi, mimetype="application/json")

    def healthz(self) -> Response:
        """``GET /healthz``: the worker answers requests."""
        return jsonify({"status": "ok"})

    def readyz(self) -> Response:
        """``GET /readyz``: 200 only while the worker reads every partition of the swarms topic."""
        runtime = self._runtime
        runtime.start()
        if not runtime.ready:
            if runtime.hub.closing:
                detail = "draining: feeds are moving to other pods"
            else:
                refused = runtime.upstream.credentials.refusal() if runtime.upstream else None
                topic = self._settings.swarms_topic
                detail = refused or f"not yet reading every partition of {topic!r}"
            return HttpProblemError(
                503,
                detail,
                type_=NOT_READY,
                title="Not ready",
                headers={"Retry-After": str(self._settings.busy_retry_after_s)},
            ).to_response()
        return jsonify(
            {
                "status": "ready",
                "topic": self._settings.swarms_topic,
                "connections": runtime.hub.connections(),
            }
        )

    # Steps of opening a feed.

    def _open(self, stream_id: str, transport: str, sink: Sink | None = None) -> Subscription:
        last_event_id = _last_event_id()
        self._check_token(stream_id)
        runtime = self._runtime
        if self._settings.registry_mode == "closed" and not runtime.registry.is_live(stream_id):
            raise stream_not_live(stream_id)
        try:
            return runtime.open(stream_id, transport, last_event_id, sink)
        except CapacityError as exc:
            raise HttpProblemError(
                503,
                str(exc),
                type_=OVER_CAPACITY,
                title="Fanout worker busy",
                headers={"Retry-After": str(self._settings.busy_retry_after_s)},
            ) from exc

    def _check_token(self, stream_id: str) -> None:
        """When viewer tokens are required, the feed needs one that covers this stream: a JWT,
        or while ``viewer_token_secret`` is set an earlier release's ``<expiry>.<mac>``."""
        settings = self._settings
        if not settings.viewer_tokens_required:
            return
        token = request.args.get("token") or bearer(request.headers.get("Authorization"))
        legacy_secret = settings.viewer_token_secret
        verifier = self._runtime.tokens
        try:
            if legacy_secret is not None and (
                verifier is None or (token and is_legacy_viewer_token(token))
            ):
                verify_legacy_viewer_token(
                    legacy_secret.get_secret_value().encode(),
                    stream_id,
                    token,
                    max_ttl_s=settings.token_max_ttl_s,
                )
            elif verifier is not None:
                verifier.verify(token, "view", stream_id)
        except TokenError as exc:
            self._runtime.metrics.token_rejections.labels(exc.reason).inc()
            raise token_problem(exc, "Viewer token refused") from exc

    # Error handlers and CORS.

    def _on_bad_handshake(self, error: HandshakeError) -> Response:
        return HttpProblemError(400, str(error)).to_response()

    def _on_websocket_mismatch(self, error: WebsocketMismatch) -> Response:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            detail = "this route does not speak WebSocket; the feed is at /ws"
            return HttpProblemError(400, detail).to_response()
        detail = "this route speaks WebSocket only; /events serves the same feed"
        return HttpProblemError(426, detail).to_response()

    def _on_http_exception(self, error: HTTPException) -> Response:
        return from_http_exception(error).to_response()

    def _cors(self, response: Response) -> Response:
        allowed = self._allowed_origins
        origin = request.headers.get("Origin")
        if origin and ("*" in allowed or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = "Last-Event-ID, Cache-Control"
            # A busy or draining worker's 503 says when to come back.
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, OPTIONS"
                response.headers["Access-Control-Max-Age"] = "600"
        if allowed:
            response.vary.add("Origin")
        return response


def _stream_id(stream_id: str) -> str:
    if not STREAM_ID_RE.fullmatch(stream_id):
        raise HttpProblemError(
            422,
            f"stream_id must match {STREAM_ID_RE.pattern}",
            type_=INVALID_PARAMETER,
            title="Invalid stream id",
            extensions={"field": "stream_id"},
        )
    return stream_id


def _last_event_id() -> str | None:
    """The id to resume after: the ``Last-Event-ID`` header, else the query parameter."""
    value = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or None
    if value is not None and not _LAST_EVENT_ID_RE.fullmatch(value):
        raise HttpProblemError(
            422,
            "Last-Event-ID must be 1-128 printable ASCII characters",
            type_=INVALID_PARAMETER,
            title="Invalid Last-Event-ID",
            extensions={"field": "last_event_id"},
        )
    return value
