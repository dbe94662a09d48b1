"""User ids sent as JSON numbers, and the document's account of them and of a null stream id.

JSON has one number type: ``7.0`` is the integer 7, and an integer beyond 64 bits reaches the
validator as a float (orjson reads it so). Both were once refused as "must be a string or an
integer", though the document promised them; a null ``stream_id`` was accepted though the
document did not allow it.
"""

import orjson
import pytest

from emostream.ingest._validation import (
    MAX_JSON_INT,
    MIN_JSON_INT,
    EventRules,
    InvalidReactionsError,
    parse_send_emoji,
    parse_user_id,
)
from emostream.ingest.openapi import openapi_document
from emostream.ingest.settings import IngestSettings

NOW_MS = 1_750_000_000_000
RULES = EventRules.from_settings(IngestSettings())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7.0, "7"), (-9874.0, "-9874"), (0.0, "0"), (-0.0, "0"), (2.0**53, str(2**53))],
)
def test_whole_number_user_ids_are_that_integer(value: float, expected: str) -> None:
    """A user id written with a zero fraction is the same user as the plain integer."""
    assert parse_user_id(value) == expected
    assert parse_user_id(int(value)) == expected


def test_integer_user_id_beyond_64_bits_is_refused_with_advice() -> None:
    """An integer id orjson cannot read exactly is a 422 that says to send it as a string."""
    body = orjson.loads(
        b'{"user_id": 123456789012345678901234567890, "emoji_type": "\\ud83d\\udc4f",'
        b' "timestamp": 1750000000}'
    )
    with pytest.raises(InvalidReactionsError) as exc:
        parse_send_emoji(body, RULES, NOW_MS)
    assert exc.value.errors[0].field == "user_id"
    assert "send long ids as strings" in exc.value.errors[0].reason


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63)])
def test_integer_user_ids_at_the_64_bit_bounds_are_read_exactly(value: int) -> None:
    """The largest and smallest integers orjson reads exactly are accepted as written."""
    body = orjson.loads(
        b'{"user_id": %d, "emoji_type": "\\ud83d\\udc4f", "timestamp": 1750000000}' % value
    )
    [reaction] = parse_send_emoji(body, RULES, NOW_MS).reactions
    assert reaction.user_id == str(value)


def test_fractional_user_id_is_still_refused() -> None:
    """A number with a fraction names no user."""
    with pytest.raises(InvalidReactionsError):
        parse_send_emoji({"user_id": 1.5, "emoji_type": "👏", "timestamp": 1}, RULES, NOW_MS)


def test_null_stream_id_is_the_default_stream() -> None:
    """``"stream_id": null`` on /send_emoji means the default stream, as for an absent one."""
    body = {"user_id": "u", "emoji_type": "👏", "timestamp": 1750000000, "stream_id": None}
    [reaction] = parse_send_emoji(body, RULES, NOW_MS).reactions
    assert reaction.stream_id == "default"


def test_document_states_the_integer_range_and_the_null_stream_id() -> None:
    """The document bounds integer user ids to 64 bits and lets stream_id be null."""
    schemas = openapi_document(IngestSettings())["components"]["schemas"]
    integer = next(s for s in schemas["UserId"]["oneOf"] if s["type"] == "integer")
    assert (integer["minimum"], integer["maximum"]) == (MIN_JSON_INT, MAX_JSON_INT)
    stream_id = schemas["SendEmoji"]["properties"]["stream_id"]
    assert {"type": "null"} in stream_id["oneOf"]
