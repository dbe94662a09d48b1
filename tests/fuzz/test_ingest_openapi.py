"""Ingest fuzzed from the OpenAPI document it serves, over a real socket to a real gunicorn."""

from collections.abc import Iterator

import pytest
import requests
import schemathesis

from emostream.ingest.openapi import openapi_document
from emostream.ingest.settings import IngestSettings
from tests.fuzz._fuzz import fuzz_config, fuzz_operation
from tests.fuzz.conftest import REQUEST_TIMEOUT_S
from tests.ingest.conftest import Server

pytestmark = pytest.mark.integration

OPERATIONS = [
    f"{method.upper()} {path}"
    for path, item in openapi_document(IngestSettings()).get("paths", {}).items()
    for method in item
]


@pytest.fixture(scope="module")
def ingest_schema(ingest_server: Server) -> schemathesis.BaseSchema:
    """The document the server itself serves, aimed at that server."""
    schema = schemathesis.openapi.from_url(
        f"{ingest_server.url}/openapi.json", config=fuzz_config()
    )
    schema.config.update(base_url=ingest_server.url)
    return schema


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    """One keep-alive connection pool, as a real client would use."""
    with requests.Session() as s:
        yield s


@pytest.mark.parametrize("label", OPERATIONS)
def test_ingest_operation_keeps_its_contract(
    label: str, ingest_schema: schemathesis.BaseSchema, session: requests.Session
) -> None:
    """Valid and invalid requests get no 5xx, errors are problems, replies match the document."""
    fuzz_operation(
        ingest_schema, label, lambda case: case.call(session=session, timeout=REQUEST_TIMEOUT_S)
    )
