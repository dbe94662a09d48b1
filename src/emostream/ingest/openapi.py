"""The OpenAPI 3.1 description of ingest, written by hand and served at ``/openapi.json``.

Hand-written because the contract is the product here: clients outside the project depend on it,
so it changes only on purpose. The emoji set and batch size come from the settings, so the
document describes the deployment that serves it; a test checks it names exactly the app's routes.
"""

from typing import Any

from emostream import __version__
from emostream.common.emoji import VARIATION_SELECTOR_16
from emostream.common.events import DEFAULT_STREAM_ID, STREAM_ID_RE
from emostream.common.problems import (
    BLANK,
    INVALID_REACTIONS,
    KAFKA_BACKPRESSURE,
    KAFKA_UNAVAILABLE,
    PROBLEM_JSON,
    RATE_LIMITED,
)
from emostream.ingest._validation import (
    EPOCH_SECONDS_BELOW,
    MAX_JSON_INT,
    MAX_USER_ID_CHARS,
    MIN_JSON_INT,
)
from emostream.ingest.settings import IngestSettings

_BODY_ERRORS = {
    "400": {"$ref": "#/components/responses/MalformedJson"},
    "413": {"$ref": "#/components/responses/ContentTooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
    "422": {"$ref": "#/components/responses/InvalidReactions"},
    "429": {"$ref": "#/components/responses/RateLimited"},
    "503": {"$ref": "#/components/responses/KafkaBackpressure"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str, schema: str = "Problem") -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _ref(schema)}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(settings: IngestSettings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of this deployment's ingest API."""
    emojis = list(settings.emojis)
    # The bare heart (U+2764 without U+FE0F) is accepted and normalised, so it is part of the
    # contract too.
    aliases = sorted(
        {e.removesuffix(VARIATION_SELECTOR_16) for e in emojis if e.endswith(VARIATION_SELECTOR_16)}
        - set(emojis)
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Emostream ingest",
            "version": __version__,
            "description": (
                "Takes viewers' emoji reactions and enqueues them for Kafka. A 2xx reply means "
                "every event of the request was enqueued; errors are RFC 9457 problem documents."
            ),
        },
        "paths": {
            "/send_emoji": {
                "post": {
                    "operationId": "sendEmoji",
                    "summary": "One reaction, in the original clients' format.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("SendEmoji")}},
                    },
                    "responses": {
                        "200": _json("The reaction was enqueued.", _ref("SendEmojiReply")),
                        **_BODY_ERRORS,
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                    },
                }
            },
            "/v1/streams/{stream_id}/reactions": {
                "post": {
                    "operationId": "postReactions",
                    "summary": "One reaction or a batch of reactions to a stream.",
                    "description": (
                        "A batch is all or nothing: one invalid item rejects the request with "
                        "422 naming the item's index and field."
                    ),
                    "parameters": [
                        {
                            "name": "stream_id",
                            "in": "path",
                            "required": True,
                            "schema": _ref("StreamId"),
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref("Reaction"),
                                        {
                                            "type": "array",
                                            "items": _ref("Reaction"),
                                            "minItems": 1,
                                            "maxItems": settings.max_batch,
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Every reaction was enqueued.", _ref("AcceptedReply")),
                        **_BODY_ERRORS,
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers.",
                    "responses": {"200": _json("Alive.", _ref("Status"))},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: Kafka answers and knows the reactions topic.",
                    "responses": {
                        "200": _json("Ready to take reactions.", _ref("Status")),
                        "503": {"$ref": "#/components/responses/KafkaUnavailable"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (emostream_ingest_*) of the answering worker.",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": _json("OpenAPI 3.1 document.", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": _schemas(emojis, aliases),
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before sending again.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "responses": _responses(),
        },
    }


def _schemas(emojis: list[str], aliases: list[str]) -> dict[str, Any]:
    return {
        "UserId": {
            "description": (
                "Who reacted; an integer is turned into its decimal string (7 and 7.0 are the "
                "same user). Integers are read exactly within 64 bits, so longer ids must be "
                "sent as strings."
            ),
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS},
                {"type": "integer", "minimum": MIN_JSON_INT, "maximum": MAX_JSON_INT},
            ],
        },
        "Emoji": {
            "description": (
                "A member of the configured emoji set. Emoji written without the presentation "
                "selector U+FE0F (such as a bare U+2764 heart) are accepted and normalised."
            ),
            "type": "string",
            "enum": emojis + aliases,
        },
        "Timestamp": {
            "description": (
                f"When the viewer reacted: a number below {EPOCH_SECONDS_BELOW:.0e} is epoch "
                "seconds, a larger one epoch milliseconds; a string is a number in digits or "
                "ISO 8601 (UTC when it has no offset). A time outside the trusted window around "
                "the server clock is replaced by the receive time."
            ),
            "oneOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]{1,20}(\\.[0-9]{1,9})?$"},
                {"type": "string", "format": "date-time"},
            ],
        },
        "StreamId": {"type": "string", "pattern": STREAM_ID_RE.pattern},
        "SendEmoji": {
            "type": "object",
            "required": ["user_id", "emoji_type", "timestamp"],
            "properties": {
                "user_id": _ref("UserId"),
                "emoji_type": _ref("Emoji"),
                "timestamp": _ref("Timestamp"),
                "stream_id": {
                    "oneOf": [_ref("StreamId"), {"type": "null"}],
                    "default": DEFAULT_STREAM_ID,
                    "description": f"Absent or null means the stream `{DEFAULT_STREAM_ID}`.",
                },
            },
        },
        "Reaction": {
            "type": "object",
            "required": ["user_id", "emoji"],
            "properties": {
                "user_id": _ref("UserId"),
                "emoji": _ref("Emoji"),
                "ts": {
                    "oneOf": [_ref("Timestamp"), {"type": "null"}],
                    "description": "Defaults to the receive time.",
                },
            },
        },
        "SendEmojiReply": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "Emoji data received"}},
        },
        "AcceptedReply": {
            "type": "object",
            "required": ["accepted"],
            "properties": {"accepted": {"type": "integer", "minimum": 1}},
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string"}, "detail": {"type": "string"}},
        },
        "Problem": {
            "description": "RFC 9457 problem details.",
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "format": "uri-reference", "default": BLANK},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
        },
        "FieldError": {
            "type": "object",
            "required": ["field", "pointer", "reason"],
            "properties": {
                "field": {"type": "string", "description": "Member name; empty for the body."},
                "pointer": {"type": "string", "description": "JSON Pointer into the body."},
                "index": {"type": "integer", "description": "Item index within a batch."},
                "reason": {"type": "string"},
            },
        },
        "InvalidReactionsProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["field", "pointer", "errors"],
                    "properties": {
                        "type": {"const": INVALID_REACTIONS},
                        "field": {"type": "string", "description": "The first bad field."},
                        "pointer": {"type": "string"},
                        "index": {"type": "integer", "description": "Its item's index."},
                        "errors": {"type": "array", "items": _ref("FieldError")},
                        "error_count": {"type": "integer"},
                    },
                },
            ]
        },
        "BackpressureProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["accepted"],
                    "properties": {
                        "type": {"const": KAFKA_BACKPRESSURE},
                        "accepted": {
                            "type": "integer",
                            "description": (
                                "How many of the request's reactions were enqueued anyway "
                                "(normally 0: a request is enqueued whole or not at all)."
                            ),
                        },
                        "not_enqueued": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "description": (
                                "Present when some were enqueued: the batch indices of the "
                                "reactions that were not; send only those again."
                            ),
                        },
                    },
                },
            ]
        },
        "RateLimitedProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["user_id", "retry_after_s"],
                    "properties": {
                        "type": {"const": RATE_LIMITED},
                        "user_id": {
                            "type": "string",
                            "description": "A user of the request that is over its rate.",
                        },
                        "retry_after_s": {
                            "type": "number",
                            "description": "When the request would fit, in seconds.",
                        },
                    },
                },
            ]
        },
    }


def _responses() -> dict[str, Any]:
    retry_after = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    return {
        "MalformedJson": _problem("The body is not valid JSON (or not UTF-8)."),
        "ContentTooLarge": _problem("The body is larger than the configured limit."),
        "UnsupportedMediaType": _problem("The body is not declared as application/json."),
        "InvalidReactions": _problem(
            "The JSON has the wrong shape or a field has a bad value; nothing was enqueued.",
            "InvalidReactionsProblem",
        ),
        "KafkaBackpressure": {
            **_problem(
                "Kafka cannot take more right now; send again after Retry-After seconds.",
                "BackpressureProblem",
            ),
            "headers": retry_after,
        },
        "RateLimited": {
            **_problem(
                "A user of the request is over its rate (per user id, shared by every server); "
                "nothing of the request was enqueued. Send it again after Retry-After seconds.",
                "RateLimitedProblem",
            ),
            "headers": retry_after,
        },
        "KafkaUnavailable": {
            **_problem(f"Kafka is not reachable ({KAFKA_UNAVAILABLE})."),
            "headers": retry_after,
        },
        "NotFound": _problem("No such route."),
        "MethodNotAllowed": _problem("The route exists but not for this method (see Allow)."),
    }
