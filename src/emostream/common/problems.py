"""Error replies as RFC 9457 problem documents (``application/problem+json``).

Every error ingest and fanout return, their own or Werkzeug's, goes through
:class:`HttpProblemError`, so a client sees one shape from both: ``type``, ``title``,
``status``, ``detail`` and extension members such as ``field`` or ``errors``. The ``type`` URNs
of both services are listed here, as they are one contract.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from emostream.common.errors import EmostreamError
from emostream.common.events import encode_json
from emostream.common.tokens import TokenError

PROBLEM_JSON = "application/problem+json"
#: The ``type`` of problems that need no more than their status code to be understood.
BLANK = "about:blank"
# Ingest's.
INVALID_REACTIONS = "urn:emostream:problem:invalid-reactions"
KAFKA_BACKPRESSURE = "urn:emostream:problem:kafka-backpressure"
KAFKA_UNAVAILABLE = "urn:emostream:problem:kafka-unavailable"
RATE_LIMITED = "urn:emostream:problem:rate-limited"
STREAM_NOT_LIVE = "urn:emostream:problem:stream-not-live"
STREAM_LIMIT = "urn:emostream:problem:stream-limit"
# Fanout's.
INVALID_PARAMETER = "urn:emostream:problem:invalid-parameter"
OVER_CAPACITY = "urn:emostream:problem:over-capacity"
NOT_READY = "urn:emostream:problem:not-ready"
# Both services'.
INVALID_TOKEN = "urn:emostream:problem:invalid-token"  # noqa: S105 - a problem type URN


class HttpProblemError(EmostreamError):
    """An error reply, raised from a route and answered by the app's error handler.

    ``reason`` (a bounded metric label) and ``events`` are set when reactions were refused, so
    ingest can count them.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = BLANK,
        title: str | None = None,
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
        events: int = 1,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        # RFC 9457 4.2.1: with about:blank, the title is the status code's phrase.
        self.title = title or HTTPStatus(status).phrase
        self.extensions = dict(extensions or {})
        self.headers = dict(headers or {})
        self.reason = reason
        self.events = events

    def document(self) -> dict[str, Any]:
        """The problem document's members."""
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }

    def to_response(self) -> Response:
        """The HTTP reply carrying the document."""
        return Response(
            encode_json(self.document()),
            status=self.status,
            mimetype=PROBLEM_JSON,
            headers=self.headers,
        )


def unexpected_error() -> HttpProblemError:
    """The 500 of a bug: what went wrong is in the log, not in the reply."""
    return HttpProblemError(500, "an unexpected error occurred; it has been logged")


def from_http_exception(error: HTTPException) -> HttpProblemError:
    """The problem equivalent of a Werkzeug error (404, 405, 413 while reading, 500 ...)."""
    status = error.code or 500
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    detail = error.description or HTTPStatus(status).description
    return HttpProblemError(status, detail, headers=headers)


def stream_not_live(
    stream_id: str, detail: str = "", *, reason: str | None = None, events: int = 1
) -> HttpProblemError:
    """The 404 of a stream the registry does not hold live (``detail`` adds a hint)."""
    return HttpProblemError(
        404,
        f"stream {stream_id!r} is not live{detail}",
        type_=STREAM_NOT_LIVE,
        title="Stream not live",
        extensions={"stream_id": stream_id},
        reason=reason,
        events=events,
    )


def token_problem(
    error: TokenError, title: str, *, reason: str | None = None, events: int = 1
) -> HttpProblemError:
    """The reply to a refused token: 401 with a Bearer challenge (RFC 6750), 403 or 503."""
    headers = (
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{error.reason}"'}
        if error.status == 401
        else {}
    )
    return HttpProblemError(
        error.status,
        str(error),
        type_=INVALID_TOKEN,
        title=title,
        extensions={"reason": error.reason},
        headers=headers,
        reason=reason,
        events=events,
    )
