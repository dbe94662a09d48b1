"""The Flask routes of ingest (the stream registry's admin API, probes, the OpenAPI document)
and the translation of their failures into problem documents.

The reaction routes are not here: :mod:`emostream.ingest._reactions` answers them before a
request reaches Flask.
"""

import hmac
import logging
import time
from collections.abc import Callable

import redis
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from emostream.common import apps
from emostream.common.errors import InvalidEventError
from emostream.common.events import encode_json
from emostream.common.problems import (
    INVALID_REACTIONS,
    INVALID_TOKEN,
    KAFKA_UNAVAILABLE,
    HttpProblemError,
    from_http_exception,
    stream_not_live,
    unexpected_error,
)
from emostream.common.tokens import bearer
from emostream.ingest._runtime import IngestRuntime
from emostream.ingest._validation import parse_stream_id
from emostream.ingest.openapi import openapi_document

log = logging.getLogger(__name__)


class IngestApi:
    """The Flask routes bound to one worker's runtime."""

    def __init__(self, runtime: IngestRuntime) -> None:
        settings = self._settings = runtime.settings
        self._metrics = runtime.metrics
        self._sink = runtime.sink
        self._registry = runtime.registry
        self._metrics.registry_limit.labels("live_streams").set(settings.registry_max_live_streams)
        self._metrics.registry_limit.labels("new_streams_per_min").set(
            settings.registry_new_streams_per_min
        )
        admin = settings.admin_token
        self._admin_token = admin.get_secret_value().encode() if admin else None
        self._openapi = encode_json(openapi_document(settings))

    def register(self, app: Flask) -> None:
        """Add the routes, error handlers and request metrics to ``app``."""
        app.add_url_rule("/v1/streams/<stream_id>", view_func=self.open_stream, methods=["PUT"])
        app.add_url_rule("/v1/streams/<stream_id>", view_func=self.close_stream, methods=["DELETE"])
        apps.add_service_routes(app, self)
        app.register_error_handler(HttpProblemError, HttpProblemError.to_response)
        app.register_error_handler(HTTPException, self._on_http_exception)
        app.register_error_handler(Exception, self._on_unexpected)
        app.before_request(self._start_timer)
        app.after_request(self._count_request)

    # Routes.

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

    # Steps of an admin request.

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

    # Error handlers and request metrics.

    def _on_http_exception(self, error: HTTPException) -> Response:
        return from_http_exception(error).to_response()

    def _on_unexpected(self, error: Exception) -> Response:
        log.error("unexpected error", extra={"path": request.path}, exc_info=error)
        return unexpected_error().to_response()

    def _start_timer(self) -> None:
        g.emostream_started = time.perf_counter()

    def _count_request(self, response: Response) -> Response:
        started = g.get("emostream_started")
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            elapsed = time.perf_counter() - started
            self._metrics.count_request(route, request.method, response.status_code, elapsed)
        return response


def _json(obj: object, status: int) -> Response:
    return Response(encode_json(obj), status=status, mimetype="application/json")
