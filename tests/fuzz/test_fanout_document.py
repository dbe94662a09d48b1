"""The fanout OpenAPI document matches the app it describes (no server needed)."""

from typing import Any

import orjson
import schemathesis

from emostream import __version__
from emostream.common.events import STREAM_ID_RE
from emostream.fanout.app import create_app
from emostream.fanout.settings import FanoutSettings
from tests.fuzz.conftest import FANOUT_OPENAPI
from tests.openapi_checks import app_operations, documented_operations, refs, resolve


def _document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(FANOUT_OPENAPI.read_bytes())
    return document


def test_document_names_exactly_the_apps_routes() -> None:
    """Every route and method of the app is documented, and nothing else (static files aside)."""
    app = create_app(FanoutSettings(), connect_upstream=False)
    assert documented_operations(_document()) == app_operations(app)


def test_every_reference_resolves() -> None:
    """Each $ref points at a component that exists, and Schemathesis loads the document."""
    document = _document()
    found = refs(document)
    assert found
    for ref in found:
        assert resolve(document, ref), ref
    assert len(list(schemathesis.openapi.from_dict(document).get_all_operations())) == len(
        [m for item in document["paths"].values() for m in item]
    )


def test_stream_id_pattern_and_version_are_the_apps() -> None:
    """The documented stream id pattern is the one routes check; the version is the package's."""
    document = _document()
    assert document["components"]["schemas"]["StreamId"]["pattern"] == STREAM_ID_RE.pattern
    assert document["info"]["version"] == __version__


def test_feed_errors_are_problem_documents() -> None:
    """Every error reply of every operation is documented as application/problem+json."""
    document = _document()
    responses = document["components"]["responses"]
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    resolved = responses[response["$ref"].rsplit("/", 1)[1]]
                    assert list(resolved["content"]) == ["application/problem+json"], status
