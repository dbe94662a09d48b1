"""The fanout OpenAPI document matches the app it describes (no server needed)."""

import re
from typing import Any

import orjson
import schemathesis

from emostream import __version__
from emostream.fanout._swarm import STREAM_ID_RE
from emostream.fanout.app import create_app
from emostream.fanout.settings import FanoutSettings
from tests.fuzz.conftest import FANOUT_OPENAPI

METHODS = {"get", "post", "put", "patch", "delete"}
#: Served by the app from the document itself, whether or not this build has the route yet.
SELF = ("/openapi.json", "get")


def _document() -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(FANOUT_OPENAPI.read_bytes())
    return document


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_document_names_exactly_the_apps_routes() -> None:
    """Every route and method of the app is documented, and nothing else (static files aside)."""
    app = create_app(FanoutSettings(), connect_upstream=False)
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served |= {(path, m.lower()) for m in rule.methods or () if m.lower() in METHODS}
    document = _document()
    documented = {(p, m) for p, item in document["paths"].items() for m in item}
    assert documented == served | {SELF}


def test_every_reference_resolves() -> None:
    """Each $ref points at a component that exists, and Schemathesis loads the document."""
    document = _document()
    refs = _refs(document)
    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert node, ref
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
