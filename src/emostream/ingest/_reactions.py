"""The two reaction routes, answered as plain WSGI in front of the Flask app.

``POST /send_emoji`` and ``POST /v1/streams/<stream_id>/reactions`` are nearly every request
ingest gets. Flask's request context, URL routing, hooks and response object cost about as much
as handling a reaction, so these two paths are answered here, straight from the WSGI environ,
and every other request (admin, probes, the OpenAPI document) goes on to Flask.

A POST goes through these steps, cheapest first: the sender token if there is one (a
signature check, cached per token), validation (in process), the token's scope, the stream
registry (in memory; in open mode a round trip to admit a stream it does not know, after the
rate limit) and the rate limit (in memory, shared through Redis in the background), then the
Kafka producer's queue. A request's events are validated and charged in full before any is
enqueued, so a 4xx never leaves part of a request in Kafka, and a 2xx is sent only after the
producer took every event.
"""

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from emostream.common.events import encode_json, now_ms
from emostream.common.problems import (
    INVALID_REACTIONS,
    KAFKA_BACKPRESSURE,
    KAFKA_UNAVAILABLE,
    RATE_LIMITED,
    STREAM_LIMIT,
    HttpProblemError,
    stream_not_live,
    token_problem,
    unexpected_error,
)
from emostream.common.registry import Admission
from emostream.common.tokens import Claims, TokenError, bearer, scope_error
from emostream.ingest._producer import EnqueueError, QueueFullError
from emostream.ingest._runtime import IngestRuntime
from emostream.ingest._validation import (
    EventRules,
    InvalidReactionsError,
    Parsed,
    parse_send_emoji,
    parse_stream_reactions,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

#: The route templates, as the request metrics label them.
SEND_EMOJI = "/send_emoji"
STREAM_REACTIONS = "/v1/streams/<stream_id>/reactions"
_STREAMS_PREFIX = "/v1/streams/"
_REACTIONS_SUFFIX = "/reactions"

_SEND_EMOJI_REPLY = encode_json({"status": "Emoji data received"})
_JSON_HEADER = ("Content-Type", "application/json")
#: What a browser's preflight may be told: the method and headers a send uses, for 10 minutes.
_PREFLIGHT = [
    ("Access-Control-Allow-Methods", "POST"),
    ("Access-Control-Allow-Headers", "Content-Type, Authorization"),
    ("Access-Control-Max-Age", "600"),
]


class ReactionRoutes:
    """WSGI middleware: the reaction routes answered from one worker's runtime, anything else
    passed on to ``app``."""

    def __init__(self, runtime: IngestRuntime, app: "WSGIApplication") -> None:
        self._app = app
        settings = self._settings = runtime.settings
        self._rules = EventRules.from_settings(settings)
        self._metrics = runtime.metrics
        self._sink = runtime.sink
        self._limiter = runtime.limiter
        self._registry = runtime.registry
        self._tokens = runtime.tokens
        self._origins = frozenset(settings.cors_allowed_origins)

    def __call__(
        self, environ: "WSGIEnvironment", start_response: "StartResponse"
    ) -> Iterable[bytes]:
        """Answer a reaction route, or pass the request on."""
        path = environ.get("PATH_INFO", "")
        if path == SEND_EMOJI:
            return self._answer(SEND_EMOJI, None, environ, start_response)
        if path.startswith(_STREAMS_PREFIX) and path.endswith(_REACTIONS_SUFFIX):
            stream_id = path[len(_STREAMS_PREFIX) : -len(_REACTIONS_SUFFIX)]
            # Like Flask's default converter: one non-empty path segment.
            if stream_id and "/" not in stream_id:
                return self._answer(STREAM_REACTIONS, stream_id, environ, start_response)
        return self._app(environ, start_response)

    def _answer(
        self,
        route: str,
        stream_id: str | None,
        environ: "WSGIEnvironment",
        start_response: "StartResponse",
    ) -> Iterable[bytes]:
        """Handle the request; count it, and any refused events."""
        started = time.perf_counter()
        method = environ["REQUEST_METHOD"]
        cors = self._cors(environ) if self._origins else []
        if method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ and cors[1:]:
            # A listed origin's preflight (an unlisted one gets the 405 of any other method).
            start_response("204 No Content", cors + _PREFLIGHT)
            self._metrics.count_request(route, method, 204, time.perf_counter() - started)
            return ()
        try:
            status, body = self._handle(method, stream_id, environ)
        except HttpProblemError as problem:
            refusal = problem
        except Exception:
            log.exception("unexpected error", extra={"path": environ.get("PATH_INFO")})
            refusal = unexpected_error()
        else:
            start_response(
                "200 OK" if status == 200 else "202 Accepted",
                [_JSON_HEADER, ("Content-Length", str(len(body))), *cors],
            )
            self._metrics.count_request(route, method, status, time.perf_counter() - started)
            return (body,)
        if refusal.reason is not None:
            self._metrics.rejected.labels(refusal.reason).inc(refusal.events)
        self._metrics.count_request(route, method, refusal.status, time.perf_counter() - started)
        response = refusal.to_response()
        response.headers.extend(cors)
        return response(environ, start_response)

    def _cors(self, environ: "WSGIEnvironment") -> list[tuple[str, str]]:
        """The CORS headers of a reply: ``Vary: Origin`` first, then, for a listed origin, its
        permission to read the reply, ``Retry-After`` included (the SDK waits it out)."""
        headers = [("Vary", "Origin")]
        origin = environ.get("HTTP_ORIGIN")
        if origin and ("*" in self._origins or origin in self._origins):
            headers.append(("Access-Control-Allow-Origin", origin))
            headers.append(("Access-Control-Expose-Headers", "Retry-After"))
        return headers

    def _handle(
        self, method: str, stream_id: str | None, environ: "WSGIEnvironment"
    ) -> tuple[int, bytes]:
        """The status and body of a reaction request's success; a refusal raises."""
        if method != "POST":
            raise HttpProblemError(405, "this route takes POST only", headers={"Allow": "POST"})
        if stream_id is None:
            return 200, self._send_emoji(environ)
        return 202, self._post_reactions(environ, stream_id)

    # Routes.

    def _send_emoji(self, environ: "WSGIEnvironment") -> bytes:
        """``POST /send_emoji``: one reaction in the original clients' format."""
        claims = self._sender(environ)
        body = self._json_body(environ)
        received = now_ms()
        sender = claims.subject if claims else None
        parsed = self._validated(
            lambda: parse_send_emoji(body, self._rules, received, sender=sender), body
        )
        # The body names the stream, so its scope is known only now.
        self._check_scope(claims, parsed.stream_id, len(parsed.messages))
        self._take(parsed, claims, environ, "send_emoji")
        return _SEND_EMOJI_REPLY

    def _post_reactions(self, environ: "WSGIEnvironment", stream_id: str) -> bytes:
        """``POST /v1/streams/<stream_id>/reactions``: one reaction or a batch."""
        claims = self._sender(environ)
        self._check_scope(claims, stream_id)
        body = self._json_body(environ)
        received = now_ms()
        sender = claims.subject if claims else None
        parsed = self._validated(
            lambda: parse_stream_reactions(stream_id, body, self._rules, received, sender=sender),
            body,
        )
        self._take(parsed, claims, environ, "v1")
        return b'{"accepted":%d}' % len(parsed.messages)

    # Steps of a POST.

    def _sender(self, environ: "WSGIEnvironment") -> Claims | None:
        """The verified sender token, when tokens are on and (unless required) one was sent."""
        tokens = self._tokens
        if tokens is None:
            return None
        token = bearer(environ.get("HTTP_AUTHORIZATION"))
        if token is None and self._settings.sender_tokens == "optional":
            return None
        try:
            # Its scope is checked once the stream is known (send_emoji's body names it).
            return tokens.claims(token)
        except TokenError as e:
            raise self._token_refused(e) from None

    def _check_scope(self, claims: Claims | None, stream_id: str, events: int = 1) -> None:
        """A sender token must cover the stream: 403 otherwise."""
        if claims is not None and not claims.covers("send", stream_id):
            raise self._token_refused(scope_error("send", stream_id), events)

    def _token_refused(self, error: TokenError, events: int = 1) -> HttpProblemError:
        self._metrics.token_rejections.labels(error.reason).inc()
        return token_problem(error, "Sender token refused", reason="token", events=events)

    def _json_body(self, environ: "WSGIEnvironment") -> object:
        """The request body parsed as JSON, after the media type and size checks."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        if mimetype != "application/json" and not (
            mimetype.startswith("application/") and mimetype.endswith("+json")
        ):
            given = f"Content-Type was {mimetype}" if mimetype else "no Content-Type was given"
            raise HttpProblemError(
                415,
                f"the body must be declared as application/json ({given})",
                headers={"Accept": "application/json"},
                reason="media_type",
            )
        limit = self._settings.max_body_bytes
        stream = environ["wsgi.input"]
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            length = int(declared)  # the server refused a Content-Length that is no number
            if length > limit:
                raise HttpProblemError(
                    413, f"the body is {length} bytes; the limit is {limit}", reason="too_large"
                )
            data = stream.read(length)
        elif environ.get("wsgi.input_terminated"):
            # A chunked body: read one byte past the limit, so a longer one shows.
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise HttpProblemError(
                    413, f"the body is longer than the limit of {limit} bytes", reason="too_large"
                )
        else:
            data = b""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise HttpProblemError(
                400, f"the body is not valid JSON: {e}", reason="malformed_json"
            ) from None

    def _validated(self, parse: Callable[[], Parsed], body: object) -> Parsed:
        """Run ``parse``; a validation failure becomes a 422 naming every bad field."""
        try:
            parsed = parse()
        except InvalidReactionsError as e:
            raise _invalid(e, len(body) if isinstance(body, list) else 1) from None
        for direction, n in parsed.clamped.items():
            if n:
                self._metrics.clamped.labels(direction).inc(n)
        return parsed

    def _take(
        self, parsed: Parsed, claims: Claims | None, environ: "WSGIEnvironment", api: str
    ) -> None:
        """The steps after validation and scope: registry and rate limit, then Kafka.

        Closed registry: a stream that is not live is refused from memory before anything is
        charged. Open: the rate limit comes first, so only a sender within its rate can make a
        new stream and take one of the capped live slots.
        """
        address = environ.get("REMOTE_ADDR") or "unknown"
        client = claims.subject if claims is not None and claims.subject else address
        limited_address = None if claims is not None else address
        if self._settings.registry_mode == "closed":
            self._admit(parsed, client)
            self._rate_limit(parsed, limited_address)
        else:
            self._rate_limit(parsed, limited_address)
            self._admit(parsed, client)
        self._enqueue(parsed, api)

    def _admit(self, parsed: Parsed, client: str) -> None:
        """The registry's word on the stream: 404 when it is not live, 429 over a cap."""
        verdict = self._registry.admit(parsed.stream_id, client)
        if verdict.admission is Admission.LIVE:
            return
        stream_id = parsed.stream_id
        if verdict.admission is Admission.NOT_LIVE:
            raise stream_not_live(
                stream_id,
                "; streams are opened through the admin API",
                reason="stream_not_live",
                events=len(parsed.messages),
            )
        retry_after = str(max(1, round(verdict.retry_after_s)))
        if verdict.admission is Admission.LIVE_CAP:
            detail = (
                f"{self._settings.registry_max_live_streams} streams are live, as many as may "
                f"be; stream {stream_id!r} cannot start now"
            )
            reason = "live_stream_cap"
        else:
            detail = (
                f"this client started {self._settings.registry_new_streams_per_min} streams in "
                f"the last minute, as many as it may; stream {stream_id!r} cannot start now"
            )
            reason = "new_stream_rate"
        raise HttpProblemError(
            429,
            detail,
            type_=STREAM_LIMIT,
            title="Too many streams",
            extensions={"stream_id": stream_id, "limit": reason},
            headers={"Retry-After": retry_after},
            reason=reason,
            events=len(parsed.messages),
        )

    def _rate_limit(self, parsed: Parsed, address: str | None) -> None:
        """Charge the request's reactions to their users (and ``address``); over the rate
        becomes 429."""
        verdict = self._limiter.acquire(parsed.users, address)
        if verdict.allowed:
            return
        retry_after = self._limiter.retry_after_header(verdict)
        s = self._settings
        if verdict.user_id is not None:
            who = f"user {verdict.user_id!r}"
            rate, burst = s.rate_limit_per_s, s.rate_limit_burst
            extensions: dict[str, Any] = {"user_id": verdict.user_id}
        else:
            who = f"client address {verdict.address}"
            rate, burst = s.rate_limit_per_address_per_s, s.rate_limit_per_address_burst
            extensions = {"address": verdict.address}
        raise HttpProblemError(
            429,
            f"{who} is over its rate of {rate:g} reactions/s (bursts up to {burst}); nothing of "
            f"this request was taken, send it again after {retry_after} s",
            type_=RATE_LIMITED,
            title="Too many reactions from one sender",
            extensions={**extensions, "retry_after_s": verdict.retry_after_s},
            headers={"Retry-After": retry_after},
            reason="rate_limited",
            events=len(parsed.messages),
        )

    def _enqueue(self, parsed: Parsed, api: str) -> None:
        """Hand the reactions to the sink; a full Kafka queue becomes 503 + Retry-After."""
        try:
            self._sink.send(parsed.messages)
        except EnqueueError as e:
            self._metrics.accepted.labels(api).inc(e.enqueued)
            full = isinstance(e, QueueFullError)
            extensions: dict[str, Any] = {"accepted": e.enqueued}
            if e.enqueued:
                extensions["not_enqueued"] = e.missing
            raise HttpProblemError(
                503,
                str(e),
                type_=KAFKA_BACKPRESSURE if full else KAFKA_UNAVAILABLE,
                title="Kafka cannot take more right now" if full else "Kafka refused the events",
                extensions=extensions,
                headers={"Retry-After": str(self._settings.retry_after_s)},
                reason="backpressure",
                events=len(e.missing),
            ) from e
        self._metrics.accepted.labels(api).inc(len(parsed.messages))


def _invalid(error: InvalidReactionsError, events: int) -> HttpProblemError:
    first = error.errors[0]
    more = error.total_errors - 1
    detail = first.describe() + (f" (and {more} more)" if more else "")
    extensions: dict[str, Any] = {"field": first.field, "pointer": first.pointer}
    if first.index is not None:
        extensions["index"] = first.index
    extensions["errors"] = [
        {
            "field": e.field,
            "pointer": e.pointer,
            **({} if e.index is None else {"index": e.index}),
            "reason": e.reason,
        }
        for e in error.errors
    ]
    extensions["error_count"] = error.total_errors
    return HttpProblemError(
        422,
        detail,
        type_=INVALID_REACTIONS,
        title="Invalid reactions",
        extensions=extensions,
        reason=error.kind,
        events=events,
    )
