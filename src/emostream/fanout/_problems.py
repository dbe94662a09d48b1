"""Error replies as RFC 9457 problem documents (``application/problem+json``).

Every error fanout returns, its own or Werkzeug's (404, 405), has the same shape: ``type``,
``title``, ``status``, ``detail`` and extension members such as ``field``.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Response

from emostream.common.events import encode_json

PROBLEM_JSON = "application/problem+json"
BLANK = "about:blank"
INVALID_PARAMETER = "urn:emostream:problem:invalid-parameter"
OVER_CAPACITY = "urn:emostream:problem:over-capacity"
NOT_READY = "urn:emostream:problem:not-ready"
INVALID_TOKEN = "urn:emostream:problem:invalid-token"  # noqa: S105 - a problem type URN


def problem(
    status: int,
    detail: str,
    *,
    type_: str = BLANK,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """The reply carrying one problem document."""
    document = {
        "type": type_,
        # RFC 9457 4.2.1: with about:blank, the title is the status code's phrase.
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    return Response(
        encode_json(document), status=status, mimetype=PROBLEM_JSON, headers=dict(headers or {})
    )
