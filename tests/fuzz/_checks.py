"""What every fuzzed response must satisfy, as Schemathesis checks and plain assertions.

The contract of both services: bad input never earns a 5xx, and every error reply is an
RFC 9457 problem document (``application/problem+json`` with ``type``, ``title`` and a
``status`` equal to the HTTP status), so clients can handle all errors one way.
"""

from collections.abc import Mapping
from typing import Any

import orjson
import schemathesis
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

PROBLEM_JSON = "application/problem+json"


def problem_errors(status: int, content_type: str, body: bytes) -> list[str]:
    """Why a reply breaks the error contract; empty when it keeps it (or is no error)."""
    errors: list[str] = []
    if status >= 500:
        errors.append(f"server error {status}")
    if status < 400:
        return errors
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != PROBLEM_JSON:
        errors.append(f"error {status} is {content_type or 'untyped'}, not {PROBLEM_JSON}")
        return errors
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return [*errors, f"error {status} body is not JSON: {e}"]
    if not isinstance(document, dict):
        return [*errors, f"error {status} body is not a JSON object"]
    for member, kind in (("type", str), ("title", str), ("status", int)):
        if not isinstance(document.get(member), kind):
            errors.append(f"problem member {member!r} missing or not {kind.__name__}")
    if document.get("status") != status:
        errors.append(f"problem status {document.get('status')!r} differs from HTTP {status}")
    return errors


def header(headers: Mapping[str, Any], name: str) -> str:
    """One header of a Schemathesis response (lower-case names, list values)."""
    values = headers.get(name.lower())
    if isinstance(values, list):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)


def problem_document(
    ctx: CheckContext,
    response: schemathesis.Response,
    case: schemathesis.Case,
) -> bool | None:
    """Schemathesis check: no 5xx, and each error reply is a problem document."""
    errors = problem_errors(
        response.status_code, header(response.headers, "Content-Type"), response.content
    )
    if errors:
        raise AssertionError("; ".join(errors))
    return None


#: Every check a reply must pass: no 5xx, a problem document for each error, and what the
#: document promises (status, media type, headers, body), including that schema-valid requests
#: are accepted and schema-violating ones refused.
CHECKS = [
    not_a_server_error,
    problem_document,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
