"""Fanout fuzzed from its OpenAPI document, over real sockets to a real gunicorn (gevent).

The feeds never end by themselves, so each fuzz request reads the reply's head and at most
one chunk of an event stream, then drops the connection: enough to see the status, the
headers and the ``retry:`` hint that opens every feed, and the fuzzer never hangs.
"""

from typing import Any

import orjson
import pytest
import requests
import schemathesis
from schemathesis.core.transport import STREAM_CUT_SHORT_ATTRIBUTE

from tests.fuzz._fuzz import fuzz_config, fuzz_operation
from tests.fuzz.conftest import FANOUT_OPENAPI, REQUEST_TIMEOUT_S

pytestmark = pytest.mark.integration

DOCUMENT: dict[str, Any] = orjson.loads(FANOUT_OPENAPI.read_bytes())
OPERATIONS = [f"{m.upper()} {p}" for p, item in DOCUMENT["paths"].items() for m in item]
#: Most bytes read of a reply: the retry hint and a feed's backlog fit in far less.
MAX_READ_BYTES = 65536


@pytest.fixture(scope="module")
def fanout_schema(fanout_url: str) -> schemathesis.BaseSchema:
    """The document in the package, aimed at the running server."""
    schema = schemathesis.openapi.from_path(str(FANOUT_OPENAPI), config=fuzz_config())
    schema.config.update(base_url=fanout_url)
    return schema


def call_bounded(case: schemathesis.Case) -> requests.Response:
    """Send ``case`` on a fresh connection; read at most one chunk of a feed, then hang up.

    A fresh connection each time, closed at once: after a 101 the socket speaks WebSocket and
    must not go back to a pool.
    """
    with requests.Session() as session:
        response = session.request(
            **case.as_transport_kwargs(), stream=True, timeout=REQUEST_TIMEOUT_S
        )
        try:
            if response.status_code == 101:
                content = b""
            elif response.headers.get("Content-Type", "").startswith("text/event-stream"):
                content = response.raw.read1(MAX_READ_BYTES)
                setattr(response, STREAM_CUT_SHORT_ATTRIBUTE, True)
            else:
                content = response.raw.read(MAX_READ_BYTES)
            # The body read so far, where the checks look for it.
            response._content = content
            response._content_consumed = True
        finally:
            response.close()
    return response


def feed_opens_with_retry_hint(
    _case: schemathesis.Case, response: requests.Response | schemathesis.Response
) -> None:
    """An open SSE feed starts with the reconnection hint, before any event."""
    if response.status_code == 200:
        assert response.content.startswith(b"retry: "), response.content[:200]


def query_id_is_used(case: schemathesis.Case) -> bool:
    """False when a Last-Event-ID header is given: the feeds then ignore ``last_event_id``."""
    return not (case.headers or {}).get("Last-Event-ID") or "last_event_id" not in (
        case.query or {}
    )


@pytest.mark.parametrize("label", OPERATIONS)
def test_fanout_operation_keeps_its_contract(
    label: str, fanout_schema: schemathesis.BaseSchema, fanout_url: str
) -> None:
    """Valid and invalid requests get no 5xx, errors are problems, replies match the document."""
    if label == "GET /openapi.json":
        served = requests.get(f"{fanout_url}/openapi.json", timeout=REQUEST_TIMEOUT_S)
        assert served.status_code == 200
        assert served.json() == DOCUMENT
    inspect = feed_opens_with_retry_hint if label.endswith("/events") else None
    fuzz_operation(fanout_schema, label, call_bounded, inspect=inspect, relevant=query_id_is_used)
