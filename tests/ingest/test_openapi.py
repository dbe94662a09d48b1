"""The hand-written OpenAPI document matches the app it describes."""

from emostream.ingest._reactions import SEND_EMOJI, STREAM_REACTIONS
from emostream.ingest.app import create_app
from emostream.ingest.openapi import openapi_document
from emostream.ingest.settings import IngestSettings
from tests.openapi_checks import app_operations, documented_operations, refs, resolve


def test_document_names_exactly_the_apps_routes_and_methods() -> None:
    """Every route and method of the app is documented, and nothing else is: Flask's routes and
    the two reaction routes answered in front of Flask."""
    settings = IngestSettings()
    doc = openapi_document(settings)
    reactions = {
        (route.replace("<stream_id>", "{stream_id}"), "post")
        for route in (SEND_EMOJI, STREAM_REACTIONS)
    }
    assert documented_operations(doc) == app_operations(create_app(settings)) | reactions


def test_every_reference_resolves() -> None:
    """Each $ref in the document points at a component that exists."""
    doc = openapi_document(IngestSettings())
    found = refs(doc)
    assert found
    for ref in found:
        assert resolve(doc, ref) is not None, ref


def test_post_routes_document_every_error_status() -> None:
    """Both POST routes document 400, 413, 415, 422, 429 and 503 as problem documents."""
    doc = openapi_document(IngestSettings())
    errors = ("400", "413", "415", "422", "429", "503")
    for path in ("/send_emoji", "/v1/streams/{stream_id}/reactions"):
        responses = doc["paths"][path]["post"]["responses"]
        assert set(errors) <= responses.keys()
        for status in errors:
            response = resolve(doc, responses[status]["$ref"])
            assert isinstance(response, dict)
            assert "application/problem+json" in response["content"]
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"]


def test_document_reflects_the_deployments_settings() -> None:
    """The emoji enum (with the bare heart alias) and batch limit follow the settings."""
    doc = openapi_document(IngestSettings(max_batch=42))
    assert doc["openapi"].startswith("3.1")
    emoji_enum = doc["components"]["schemas"]["Emoji"]["enum"]
    assert "\u2764\ufe0f" in emoji_enum
    assert "\u2764" in emoji_enum
    body = doc["paths"]["/v1/streams/{stream_id}/reactions"]["post"]["requestBody"]
    batch = body["content"]["application/json"]["schema"]["oneOf"][1]
    assert batch["maxItems"] == 42


def test_served_document_is_the_generated_one() -> None:
    """GET /openapi.json serves the document for the app's settings."""
    settings = IngestSettings()
    resp = create_app(settings).test_client().get("/openapi.json")
    assert resp.status_code == 200
    assert resp.get_json() == openapi_document(settings)
