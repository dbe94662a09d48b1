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
    INVALID_TOKEN,
    KAFKA_BACKPRESSURE,
    KAFKA_UNAVAILABLE,
    PROBLEM_JSON,
    RATE_LIMITED,
    STREAM_LIMIT,
    STREAM_NOT_LIVE,
)
from emostream.common.tokens import REASONS as TOKEN_REASONS
from emostream.ingest._validation import (
    EPOCH_SECONDS_BELOW,
    MAX_JSON_INT,
    MAX_USER_ID_CHARS,
    MIN_JSON_INT,
)
from emostream.ingest.settings import IngestSettings

_BODY_ERRORS = {
    "400": {"$ref": "#/components/responses/MalformedJson"},
    "404": {"$ref": "#/components/responses/StreamNotLive"},
    "413": {"$ref": "#/components/responses/ContentTooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
    "422": {"$ref": "#/components/responses/InvalidReactions"},
    "429": {"$ref": "#/components/responses/TooMany"},
    "503": {"$ref": "#/components/responses/KafkaBackpressure"},
}
_TOKEN_ERRORS = {
    "401": {"$ref": "#/components/responses/TokenRefused"},
    "403": {"$ref": "#/components/responses/TokenOutOfScope"},
}
_STREAM_ID_PARAMETER = {
    "name": "stream_id",
    "in": "path",
    "required": True,
    "schema": {"$ref": "#/components/schemas/StreamId"},
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
    # Sender tokens as this deployment takes them: not at all, optionally or always.
    sender: dict[str, Any] = {}
    if settings.sender_tokens != "off":
        required = settings.sender_tokens == "required"
        sender = {
            "security": [{"senderToken": []}] if required else [{}, {"senderToken": []}],
        }
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
                    **sender,
                    "responses": {
                        "200": _json("The reaction was enqueued.", _ref("SendEmojiReply")),
                        **_BODY_ERRORS,
                        **(_TOKEN_ERRORS if sender else {}),
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
                    "parameters": [_STREAM_ID_PARAMETER],
                    **sender,
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
                        **(_TOKEN_ERRORS if sender else {}),
                        "405": {"$ref": "#/components/responses/MethodNotAllowed"},
                    },
                }
            },
            "/v1/streams/{stream_id}": _admin_paths(),
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
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document.",
                    "responses": {"200": _json("OpenAPI 3.1 document.", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": {
                **_schemas(emojis, aliases, user_required=not sender),
                **_stream_problems(),
            },
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before sending again.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            },
            "responses": _responses(),
            "securitySchemes": {
                "senderToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": (
                        "A JWT from the platform's auth (HS256, RS256 or ES256): sub is the "
                        "sender's user id, exp is required, and emostream.send lists the streams "
                        'it may react to ("*": any). With a sub, reactions may leave user_id out, '
                        "and one that gives it must give the sub."
                    ),
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The deployment's admin token (EMOSTREAM_ADMIN_TOKEN).",
                },
            },
        },
    }


def _admin_paths() -> dict[str, Any]:
    admin_errors = {
        "401": _problem("The admin token is missing or wrong."),
        "403": _problem("The admin API is off (no admin token is configured)."),
        "422": _problem("The stream id is not valid."),
        "503": {
            **_problem("The registry (Redis) did not answer; try again."),
            "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}},
        },
    }
    return {
        "put": {
            "operationId": "openStream",
            "parameters": [_STREAM_ID_PARAMETER],
            "summary": "Open a stream: it takes reactions until it is closed.",
            "description": (
                "The stream registry's admin API. In closed mode only streams opened here take "
                "reactions; every ingest and fanout process sees the change within "
                "registry_refresh_s."
            ),
            "security": [{"adminToken": []}],
            "responses": {
                "200": _json("The stream was live already.", _ref("StreamReply")),
                "201": _json("The stream is live now.", _ref("StreamReply")),
                **admin_errors,
            },
        },
        "delete": {
            "operationId": "closeStream",
            "parameters": [_STREAM_ID_PARAMETER],
            "summary": "Close a stream: reactions to it are refused from now on.",
            "security": [{"adminToken": []}],
            "responses": {
                "204": {"description": "The stream is closed."},
                "404": _problem("The stream was not live.", "StreamNotLiveProblem"),
                **admin_errors,
            },
        },
    }


def _schemas(emojis: list[str], aliases: list[str], *, user_required: bool) -> dict[str, Any]:
    # With sender tokens the token's sub is the user: a reaction may leave user_id out.
    user = ["user_id"] if user_required else []
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
            "required": [*user, "emoji_type", "timestamp"],
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
            "required": [*user, "emoji"],
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
        "StreamReply": {
            "type": "object",
            "required": ["stream_id", "live"],
            "properties": {"stream_id": _ref("StreamId"), "live": {"const": True}},
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
                    "required": ["retry_after_s"],
                    "properties": {
                        "type": {"const": RATE_LIMITED},
                        "user_id": {
                            "type": "string",
                            "description": "A user of the request that is over its rate.",
                        },
                        "address": {
                            "type": "string",
                            "description": (
                                "Or: the client address that is over its rate (requests "
                                "without a sender token)."
                            ),
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


def _stream_problems() -> dict[str, Any]:
    return {
        "StreamNotLiveProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": STREAM_NOT_LIVE},
                        "stream_id": _ref("StreamId"),
                    },
                },
            ]
        },
        "StreamLimitProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["stream_id", "limit"],
                    "properties": {
                        "type": {"const": STREAM_LIMIT},
                        "stream_id": _ref("StreamId"),
                        "limit": {
                            "enum": ["live_stream_cap", "new_stream_rate"],
                            "description": (
                                "Which cap: the live streams of the deployment, or the new "
                                "streams one client may start per minute."
                            ),
                        },
                    },
                },
            ]
        },
        "TokenProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["reason"],
                    "properties": {
                        "type": {"const": INVALID_TOKEN},
                        "reason": {"enum": list(TOKEN_REASONS)},
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
        "TooMany": {
            "description": (
                "Nothing of the request was enqueued; send it again after Retry-After seconds. "
                "Either a user of the request (or, without a sender token, its client address) "
                "is over its rate, shared by every server (RateLimitedProblem), or the stream "
                "would be a new one beyond the open registry's caps (StreamLimitProblem)."
            ),
            "content": {
                PROBLEM_JSON: {
                    "schema": {"oneOf": [_ref("RateLimitedProblem"), _ref("StreamLimitProblem")]}
                }
            },
            "headers": retry_after,
        },
        "StreamNotLive": _problem(
            "The stream is not live (closed registry: not opened through the admin API); "
            "nothing was enqueued. Also the answer to a path that names no route.",
            "StreamNotLiveProblem",
        ),
        "TokenRefused": {
            **_problem(
                "The sender token is missing, malformed, forged or expired (reason says "
                "which); get a new one.",
                "TokenProblem",
            ),
            "headers": {
                "WWW-Authenticate": {
                    "description": "Bearer challenge (RFC 6750).",
                    "schema": {"type": "string"},
                }
            },
        },
        "TokenOutOfScope": _problem(
            "The sender token is valid but does not cover this stream, or lives longer than "
            "allowed.",
            "TokenProblem",
        ),
        "KafkaUnavailable": {
            **_problem(f"Kafka is not reachable ({KAFKA_UNAVAILABLE})."),
            "headers": retry_after,
        },
        "MethodNotAllowed": _problem("The route exists but not for this method (see Allow)."),
    }
