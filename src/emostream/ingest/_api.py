"""The routes of ingest and the translation of every failure into a problem document.

A POST goes through these steps, cheapest first: the sender token if there is one (a
signature check, cached per token), validation (in process), the token's scope, the stream
registry (in memory; in open mode a round trip to admit a stream it does not know, after the
rate limit) and the rate limit (in memory, shared through Redis in the background), then the
Kafka producer's queue. A request's events are validated and charged in full before any is
enqueued, so a 4xx never leaves part of a request in Kafka, and a 2xx is sent only after the
producer took every event.
"""

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from emostream.common import apps
from emostream.common.errors import InvalidEventError
from emostream.common.events import encode_json, now_ms
from emostream.common.problems import (
    INVALID_REACTIONS,
    INVALID_TOKEN,
    KAFKA_BACKPRESSURE,
    KAFKA_UNAVAILABLE,
    RATE_LIMITED,
    STREAM_LIMIT,
    HttpProblemError,
    from_http_exception,
    stream_not_live,
    token_problem,
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
    parse_stream_id,
    parse_stream_reactions,
)
from emostream.ingest.openapi import openapi_document

log = logging.getLogger(__name__)

SEND_EMOJI_REPLY = encode_json({"status": "Emoji data received"})


class IngestApi:
    """Route handlers bound to one worker's runtime (settings, metrics, sink, rate limit)."""

    def __init__(self, runtime: IngestRuntime) -> None:
        settings = self._settings = runtime.settings
        self._rules = EventRules.from_settings(settings)
        self._metrics = runtime.metrics
        self._sink = runtime.sink
        self._limiter = runtime.limiter
        self._registry = runtime.registry
        self._tokens = runtime.tokens
        self._metrics.registry_limit.labels("live_streams").set(settings.registry_max_live_streams)
        self._metrics.registry_limit.labels("new_streams_per_min").set(
            settings.registry_new_streams_per_min
        )
        admin = settings.admin_token
        self._admin_token = admin.get_secret_value().encode() if admin else None
        self._openapi = encode_json(openapi_document(settings))
        # Label lookups cost more than the increments; each (route, method, status) is few.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def register(self, app: Flask) -> None:
        """Add the routes, error handlers and request metrics to ``app``."""
        app.add_url_rule("/send_emoji", view_func=self.send_emoji, methods=["POST"])
        app.add_url_rule(
            "/v1/streams/<stream_id>/reactions", view_func=self.post_reactions, methods=["POST"]
        )
        app.add_url_rule("/v1/streams/<stream_id>", view_func=self.open_stream, methods=["PUT"])
        app.add_url_rule("/v1/streams/<stream_id>", view_func=self.close_stream, methods=["DELETE"])
        apps.add_service_routes(app, self)
        app.register_error_handler(HttpProblemError, self._on_problem)
        app.register_error_handler(HTTPException, self._on_http_exception)
        app.register_error_handler(Exception, self._on_unexpected)
        app.before_request(self._start_timer)
        app.after_request(self._count_request)

    # Routes.

    def send_emoji(self) -> Response:
        """``POST /send_emoji``: one reaction in the original clients' format; 200 when queued."""
        claims = self._sender()
        body = self._json_body()
        received = now_ms()
        sender = claims.subject if claims else None
        parsed = self._validated(
            lambda: parse_send_emoji(body, self._rules, received, sender=sender), body
        )
        # The body names the stream, so its scope is known only now.
        self._check_scope(claims, parsed.stream_id, len(parsed.messages))
        self._take(parsed, claims, "send_emoji")
        return Response(SEND_EMOJI_REPLY, status=200, mimetype="application/json")

    def post_reactions(self, stream_id: str) -> Response:
        """``POST /v1/streams/<stream_id>/reactions``: one reaction or a batch; 202 when queued."""
        claims = self._sender()
        self._check_scope(claims, stream_id)
        body = self._json_body()
        received = now_ms()
        sender = claims.subject if claims else None
        parsed = self._validated(
            lambda: parse_stream_reactions(stream_id, body, self._rules, received, sender=sender),
            body,
        )
        self._take(parsed, claims, "v1")
        return _json({"accepted": len(parsed.messages)}, 202)

    def open_stream(self, stream_id: str) -> Response:
        """``PUT /v1/streams/<stream_id>`` (admin): the stream is live until closed; 201 when it
        was not live, 200 when it was."""
        stream_id = self._admin(stream_id)
        created = self._registry_call(lambda: self._registry.open(stream_id))
        return _json({"stream_id": stream_id, "live": True}, 201 if created else 200)

    def close_stream(self, stream_id: str) -> Response:
        """``DELETE /v1/streams/<stream_id>`` (admin): the stream ends; 204, or 404 if it was
        not live."""
        stream_id = self._admin(stream_id)
        if not self._registry_call(lambda: self._registry.close(stream_id)):
            raise stream_not_live(stream_id)
        return Response(status=204)

    def healthz(self) -> Response:
        """``GET /healthz``: the process is alive and answering."""
        return _json({"status": "ok"}, 200)

    def readyz(self) -> Response:
        """``GET /readyz``: 200 only while Kafka answers and knows the reactions topic."""
        state = self._sink.readiness()
        if state.ready:
            return _json({"status": "ready", "detail": state.detail}, 200)
        return HttpProblemError(
            503,
            state.detail,
            type_=KAFKA_UNAVAILABLE,
            title="Kafka is not reachable",
            headers={"Retry-After": str(self._settings.retry_after_s)},
        ).to_response()

    def openapi(self) -> Response:
        """``GET /openapi.json``: the hand-written OpenAPI 3.1 document."""
        return Response(self._openapi, status=200, mimetype="application/json")

    # Steps of a POST.

    def _sender(self) -> Claims | None:
        """The verified sender token, when tokens are on and (unless required) one was sent."""
        tokens = self._tokens
        if tokens is None:
            return None
        token = bearer(request.headers.get("Authorization"))
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

    def _take(self, parsed: Parsed, claims: Claims | None, api: str) -> None:
        """The steps after validation and scope: registry and rate limit, then Kafka.

        Closed registry: a stream that is not live is refused from memory before anything is
        charged. Open: the rate limit comes first, so only a sender within its rate can make a
        new stream and take one of the capped live slots.
        """
        address = request.remote_addr or "unknown"
        client = claims.subject if claims is not None and claims.subject else address
        limited_address = None if claims is not None else address
        if self._settings.registry_mode == "closed":
            self._admit(parsed, client)
            self._rate_limit(parsed, limited_address)
        else:
            self._rate_limit(parsed, limited_address)
            self._admit(parsed, client)
        self._enqueue(parsed, api)

    def _token_refused(self, error: TokenError, events: int = 1) -> HttpProblemError:
        self._metrics.token_rejections.labels(error.reason).inc()
        return token_problem(error, "Sender token refused", reason="token", events=events)

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

    def _admin(self, stream_id: str) -> str:
        """The checked stream id of an admin request with the admin bearer token."""
        if self._admin_token is None:
            raise HttpProblemError(403, "the admin API is off: set EMOSTREAM_ADMIN_TOKEN")
        token = bearer(request.headers.get("Authorization"))
        if token is None or not hmac.compare_digest(token.encode(), self._admin_token):
            raise HttpProblemError(
                401,
                "this needs the admin token (Authorization: Bearer)",
                type_=INVALID_TOKEN,
                title="Admin token refused",
                headers={"WWW-Authenticate": 'Bearer realm="emostream-admin"'},
            )
        try:
            return parse_stream_id(stream_id)
        except InvalidEventError as e:
            raise HttpProblemError(
                422,
                f"stream_id: {e.reason}",
                type_=INVALID_REACTIONS,
                title="Invalid stream id",
                extensions={"field": "stream_id"},
            ) from None

    def _registry_call(self, call: Callable[[], bool]) -> bool:
        try:
            return call()
        except redis.RedisError as e:
            raise HttpProblemError(
                503,
                f"the stream registry (Redis) did not answer: {e}",
                headers={"Retry-After": str(self._settings.retry_after_s)},
            ) from e

    def _json_body(self) -> object:
        """The request body parsed as JSON, after the media type and size checks."""
        mimetype = request.mimetype
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
        length = request.content_length
        if length is not None and length > limit:
            raise HttpProblemError(
                413, f"the body is {length} bytes; the limit is {limit}", reason="too_large"
            )
        # A body without Content-Length (chunked) is read up to MAX_CONTENT_LENGTH, one byte
        # more than the limit, so a longer one shows here.
        data = request.get_data(cache=False)
        if len(data) > limit:
            raise HttpProblemError(
                413, f"the body is longer than the limit of {limit} bytes", reason="too_large"
            )
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

    # Error handlers and request metrics.

    def _on_problem(self, problem: HttpProblemError) -> Response:
        if problem.reason is not None:
            self._metrics.rejected.labels(problem.reason).inc(problem.events)
        return problem.to_response()

    def _on_http_exception(self, error: HTTPException) -> Response:
        problem = from_http_exception(error)
        if problem.status == 413:
            # A chunked body over the limit, stopped by Werkzeug while reading: refused events.
            problem.reason = "too_large"
        return self._on_problem(problem)

    def _on_unexpected(self, error: Exception) -> Response:
        log.error("unexpected error", extra={"path": request.path}, exc_info=error)
        return HttpProblemError(
            500, "an unexpected error occurred; it has been logged"
        ).to_response()

    def _start_timer(self) -> None:
        g.emostream_started = time.perf_counter()

    def _count_request(self, response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        key = (route, request.method, response.status_code)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self._metrics.requests.labels(route, request.method, str(response.status_code)),
                self._metrics.request_seconds.labels(route),
            )
            if len(self._request_children) < 1000:
                self._request_children[key] = children
        children[0].inc()
        started = g.get("emostream_started")
        if started is not None:
            children[1].observe(time.perf_counter() - started)
        return response


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


def _json(obj: Any, status: int) -> Response:
    return Response(encode_json(obj), status=status, mimetype="application/json")
