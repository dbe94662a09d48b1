"""Request bodies to reactions: field rules, time parsing, clamping and batch all-or-nothing."""

from datetime import UTC, datetime

import pytest

from emostream.common.emoji import DEFAULT_VALENCE, normalise_emoji
from emostream.common.errors import InvalidEventError
from emostream.ingest._validation import (
    EVENT_IDS,
    EventRules,
    InvalidReactionsError,
    clamp_event_time,
    parse_emoji,
    parse_event_time,
    parse_send_emoji,
    parse_stream_id,
    parse_stream_reactions,
    parse_user_id,
)
from emostream.ingest.settings import IngestSettings

HEART = "\u2764\ufe0f"
BARE_HEART = "\u2764"
NOW_MS = 1_750_000_000_000
RULES = EventRules(
    emoji_valence=DEFAULT_VALENCE, max_batch=3, max_future_skew_ms=5_000, max_past_age_ms=60_000
)


def _errors(exc: pytest.ExceptionInfo[InvalidReactionsError]) -> list[tuple[int | None, str]]:
    return [(e.index, e.field) for e in exc.value.errors]


# Event time.


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        (1_750_000_000, 1_750_000_000_000),
        (1_750_000_000.25, 1_750_000_000_250),
        (1_750_000_000_123, 1_750_000_000_123),
        (99_999_999_999, 99_999_999_999_000),
        (100_000_000_000, 100_000_000_000),
        (0, 0),
        ("1750000000", 1_750_000_000_000),
        ("1750000000.5", 1_750_000_000_500),
        ("1750000000123", 1_750_000_000_123),
    ],
)
def test_numbers_below_1e11_are_seconds_and_others_milliseconds(
    value: object, expected_ms: int
) -> None:
    """Epoch numbers (or digit strings) below 1e11 are seconds, from 1e11 up milliseconds."""
    assert parse_event_time(value) == expected_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-15T12:00:00Z", datetime(2025, 6, 15, 12, tzinfo=UTC)),
        ("2025-06-15T12:00:00.123+00:00", datetime(2025, 6, 15, 12, 0, 0, 123_000, tzinfo=UTC)),
        ("2025-06-15T17:30:00+05:30", datetime(2025, 6, 15, 12, tzinfo=UTC)),
        ("2025-06-15T12:00:00.123456", datetime(2025, 6, 15, 12, 0, 0, 123_456, tzinfo=UTC)),
    ],
)
def test_iso_8601_strings_parse_with_naive_times_as_utc(text: str, expected: datetime) -> None:
    """ISO 8601 strings give epoch ms; one without an offset is read as UTC."""
    assert parse_event_time(text) == int(expected.timestamp() * 1000)


@pytest.mark.parametrize(
    "value", [True, None, -1, -0.5, float("nan"), float("inf"), "yesterday", "", [], {}, "9" * 70]
)
def test_unparseable_or_negative_times_are_rejected(value: object) -> None:
    """Booleans, null, negatives, non-finite numbers and non-time strings are invalid."""
    with pytest.raises(InvalidEventError) as exc:
        parse_event_time(value)
    assert exc.value.field == "timestamp"


def test_event_time_within_the_trusted_window_is_kept() -> None:
    """Times up to the future skew ahead and the past age behind the server clock are kept."""
    assert clamp_event_time(NOW_MS + 5_000, NOW_MS, RULES) == (NOW_MS + 5_000, None)
    assert clamp_event_time(NOW_MS - 60_000, NOW_MS, RULES) == (NOW_MS - 60_000, None)


def test_event_time_outside_the_trusted_window_becomes_receive_time() -> None:
    """Times too far ahead or too old are replaced by the receive time, with the direction."""
    assert clamp_event_time(NOW_MS + 5_001, NOW_MS, RULES) == (NOW_MS, "future")
    assert clamp_event_time(NOW_MS - 60_001, NOW_MS, RULES) == (NOW_MS, "past")


def test_rules_follow_the_settings() -> None:
    """Event rules take the emoji set, batch size and time bounds (in ms) from the settings."""
    settings = IngestSettings(max_batch=7, max_future_skew_s=2.5, max_past_age_s=30)
    rules = EventRules.from_settings(settings)
    assert (rules.max_batch, rules.max_future_skew_ms, rules.max_past_age_ms) == (7, 2500, 30_000)
    assert rules.emoji_valence == settings.emoji_valence


# Single fields.


@pytest.mark.parametrize(
    ("value", "expected"), [("alice", "alice"), (42, "42"), (-7, "-7"), ("x" * 128, "x" * 128)]
)
def test_user_ids_are_strings_or_integers_as_strings(value: object, expected: str) -> None:
    """A user id may be a string or an integer; integers become their decimal string."""
    assert parse_user_id(value) == expected


@pytest.mark.parametrize("value", [True, False, 1.5, None, "", "x" * 129, 10**200, ["a"], {}])
def test_bad_user_ids_are_rejected(value: object) -> None:
    """Booleans, floats, null, empty and over-long ids are invalid."""
    with pytest.raises(InvalidEventError) as exc:
        parse_user_id(value)
    assert exc.value.field == "user_id"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(BARE_HEART, HEART), (HEART, HEART), ("👏", "👏"), ("👍\ufe0f", "👍")],
)
def test_emojis_are_normalised_to_the_sets_spelling(value: str, expected: str) -> None:
    """A bare U+2764 becomes U+2764 U+FE0F; a superfluous U+FE0F is dropped."""
    assert parse_emoji(value, DEFAULT_VALENCE) == expected


@pytest.mark.parametrize("value", ["🦄", "", ":clap:", 1, None, "👏" * 20])
def test_emojis_outside_the_set_are_rejected(value: object) -> None:
    """Anything not in the configured set, or not a string, is invalid."""
    with pytest.raises(InvalidEventError) as exc:
        parse_emoji(value, DEFAULT_VALENCE)
    assert exc.value.field == "emoji"


@pytest.mark.parametrize("value", ["default", "final-2025_IND", "a" * 64])
def test_valid_stream_ids_pass(value: str) -> None:
    """Letters, digits, '-' and '_' up to 64 characters make a stream id."""
    assert parse_stream_id(value) == value


@pytest.mark.parametrize("value", ["", "a" * 65, "a.b", "a b", "abc\n", "ünï", 5, None])
def test_bad_stream_ids_are_rejected(value: object) -> None:
    """Other characters, a trailing newline, over-long or non-string ids are invalid."""
    with pytest.raises(InvalidEventError):
        parse_stream_id(value)


# Whole bodies.


def test_send_emoji_body_becomes_one_reaction_on_the_default_stream() -> None:
    """An original client's body gives one reaction on stream 'default', times in ms."""
    body = {"user_id": 7, "emoji_type": BARE_HEART, "timestamp": NOW_MS / 1000 - 1}
    parsed = parse_send_emoji(body, RULES, NOW_MS)
    (r,) = parsed.reactions
    assert (r.stream_id, r.user_id, r.emoji) == ("default", "7", HEART)
    assert (r.event_time_ms, r.receive_time_ms) == (NOW_MS - 1000, NOW_MS)
    assert len(r.event_id) == 32
    assert int(r.event_id, 16) >= 0
    assert parsed.clamped == {"future": 0, "past": 0}


def test_send_emoji_names_its_stream_and_ignores_unknown_members() -> None:
    """An optional stream_id picks the stream; members the route does not know are ignored."""
    body = {"user_id": "u", "emoji_type": "👏", "timestamp": NOW_MS, "stream_id": "s1", "x": 1}
    (r,) = parse_send_emoji(body, RULES, NOW_MS).reactions
    assert r.stream_id == "s1"


def test_send_emoji_with_an_ancient_timestamp_is_clamped_not_refused() -> None:
    """The original clients' test timestamp (2009) is accepted at receive time and counted."""
    body = {"user_id": 1, "emoji_type": "😂", "timestamp": 1234567890}
    parsed = parse_send_emoji(body, RULES, NOW_MS)
    assert parsed.reactions[0].event_time_ms == NOW_MS
    assert parsed.clamped == {"future": 0, "past": 1}


def test_send_emoji_reports_every_missing_field() -> None:
    """Each required member that is missing is named, and the stream id is checked too."""
    with pytest.raises(InvalidReactionsError) as exc:
        parse_send_emoji({"stream_id": "bad id"}, RULES, NOW_MS)
    assert {f for _, f in _errors(exc)} == {"stream_id", "user_id", "emoji_type", "timestamp"}


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_send_emoji_body_must_be_an_object(body: object) -> None:
    """A body that is not a JSON object is a shape error on the body itself."""
    with pytest.raises(InvalidReactionsError) as exc:
        parse_send_emoji(body, RULES, NOW_MS)
    assert exc.value.kind == "shape"
    assert exc.value.errors[0].pointer == ""


def test_v1_single_object_without_ts_takes_receive_time() -> None:
    """A lone reaction without ts (or with ts null) is timed at receive time."""
    for body in ({"user_id": "a", "emoji": "🔥"}, {"user_id": "a", "emoji": "🔥", "ts": None}):
        (r,) = parse_stream_reactions("s", body, RULES, NOW_MS).reactions
        assert (r.stream_id, r.event_time_ms, r.receive_time_ms) == ("s", NOW_MS, NOW_MS)


def test_v1_batch_gives_one_reaction_per_item_in_order() -> None:
    """Each item of a batch becomes a reaction with its own id, in the order sent."""
    body = [
        {"user_id": "a", "emoji": "👏", "ts": NOW_MS - 10},
        {"user_id": 2, "emoji": BARE_HEART},
        {"user_id": "c", "emoji": "👎", "ts": NOW_MS + 60_000},
    ]
    parsed = parse_stream_reactions("s", body, RULES, NOW_MS)
    assert [(r.user_id, r.emoji, r.event_time_ms) for r in parsed.reactions] == [
        ("a", "👏", NOW_MS - 10),
        ("2", HEART, NOW_MS),
        ("c", "👎", NOW_MS),
    ]
    assert len({r.event_id for r in parsed.reactions}) == 3
    assert parsed.clamped == {"future": 1, "past": 0}


def test_v1_batch_is_all_or_nothing_naming_each_bad_item_and_field() -> None:
    """One bad item rejects the batch; the error names every bad item index and field."""
    body = [
        {"user_id": "a", "emoji": "👏"},
        {"user_id": True, "emoji": "🦄"},
        "not an object",
    ]
    with pytest.raises(InvalidReactionsError) as exc:
        parse_stream_reactions("s", body, RULES, NOW_MS)
    assert _errors(exc) == [(1, "user_id"), (1, "emoji"), (2, "")]
    assert exc.value.errors[0].pointer == "/1/user_id"
    assert exc.value.errors[0].describe() == "item 1: user_id: must be a string or an integer"
    assert exc.value.kind == "user_id"


def test_v1_bad_ts_is_reported_under_its_own_name() -> None:
    """A bad time on the v1 route is reported as 'ts', counted under the 'timestamp' kind."""
    with pytest.raises(InvalidReactionsError) as exc:
        parse_stream_reactions("s", [{"user_id": "a", "emoji": "👏", "ts": "soon"}], RULES, NOW_MS)
    assert _errors(exc) == [(0, "ts")]
    assert exc.value.kind == "timestamp"


@pytest.mark.parametrize("size", [0, 4])
def test_v1_batch_size_is_bounded(size: int) -> None:
    """An empty batch or one above max_batch is refused as a whole."""
    body = [{"user_id": "a", "emoji": "👏"}] * size
    with pytest.raises(InvalidReactionsError) as exc:
        parse_stream_reactions("s", body, RULES, NOW_MS)
    assert exc.value.kind == "batch_size"


def test_v1_path_stream_id_is_validated() -> None:
    """A stream id in the path that breaks the pattern is refused before the body is read."""
    with pytest.raises(InvalidReactionsError) as exc:
        parse_stream_reactions("a.b", {"user_id": "a", "emoji": "👏"}, RULES, NOW_MS)
    assert _errors(exc) == [(None, "stream_id")]


def test_errors_listed_are_capped_but_counted() -> None:
    """A batch of many bad items lists a bounded number of errors and counts them all."""
    rules = EventRules(DEFAULT_VALENCE, 100, 5_000, 60_000)
    with pytest.raises(InvalidReactionsError) as exc:
        parse_stream_reactions("s", [{}] * 50, rules, NOW_MS)
    assert exc.value.total_errors == 100
    assert len(exc.value.errors) == 20


# The hot path's shortcuts agree with the precise rules.


def test_every_spelling_maps_like_normalise_emoji() -> None:
    """The emoji lookup table covers each emoji and its bare form, and agrees where it answers.

    A spelling it misses (a doubled U+FE0F, say) goes to normalise_emoji itself.
    """
    valence = {**DEFAULT_VALENCE, "\u2b50": 0.5, "\u263a\ufe0f": 0.5}
    rules = EventRules(valence, 3, 5_000, 60_000)
    for emoji in valence:
        assert emoji in rules.spellings
        assert emoji.removesuffix("\ufe0f") in rules.spellings
    candidates = {s for e in valence for s in (e, e.removesuffix("\ufe0f"), e + "\ufe0f")}
    for spelling in candidates | {"\u2b50\ufe0f", "x", "\ufe0f"}:
        if spelling in rules.spellings:
            assert rules.spellings[spelling] == normalise_emoji(spelling, valence), spelling
        else:
            assert normalise_emoji(spelling, valence) in {None, *valence}
    body = {"user_id": "a", "emoji": "\u263a\ufe0f\ufe0f"}
    (r,) = parse_stream_reactions("s", body, rules, NOW_MS).reactions
    assert r.emoji == "\u263a\ufe0f"


def test_messages_are_byte_for_byte_the_shared_wire_format() -> None:
    """Each value is what Reaction.encode writes for the same event; the key is the user id."""
    body = [
        {"user_id": "a", "emoji": BARE_HEART, "ts": NOW_MS - 5},
        {"user_id": 12, "emoji": "👏", "ts": "2025-06-15T15:06:40Z"},
        {"user_id": '\u00e9"\\', "emoji": "😂", "ts": 1_750_000_000.5},
    ]
    parsed = parse_stream_reactions("s", body, RULES, NOW_MS)
    for message, reaction in zip(parsed.messages, parsed.reactions, strict=True):
        assert message["value"] == reaction.encode()
        assert message["key"] == reaction.user_id.encode()
    assert [r.event_time_ms for r in parsed.reactions] == [NOW_MS - 5, NOW_MS, NOW_MS + 500]
    assert parsed.users == {"a": 1, "12": 1, '\u00e9"\\': 1}


def test_users_count_each_users_reactions() -> None:
    """A batch's reactions are counted per user id, an integer id as its string."""
    body = [{"user_id": u, "emoji": "👏"} for u in ("a", 1, "a")]
    assert parse_stream_reactions("s", body, RULES, NOW_MS).users == {"a": 2, "1": 1}


@pytest.mark.parametrize("ts", [True, -1, float("nan"), float("inf"), 1e30, "1.5e3", [1], {"t": 1}])
def test_odd_times_take_the_precise_path(ts: object) -> None:
    """Values the fast path does not handle get the precise parser's verdict."""
    body = {"user_id": "a", "emoji": "👏", "ts": ts}
    try:
        expected: object = parse_event_time(ts)
    except InvalidEventError as e:
        expected = e.reason
    try:
        (r,) = parse_stream_reactions("s", body, RULES, NOW_MS).reactions
        got: object = r.event_time_ms if r.event_time_ms != NOW_MS else expected
    except InvalidReactionsError as e:
        got = e.errors[0].reason
    assert got == expected


def test_event_ids_are_unique_hex_and_new_after_a_reset() -> None:
    """Ids are 32 hex digits, never repeated within or across requests; a forked child draws a
    new prefix."""
    ids = [i for n in (1, 3, 600, 1, 395) for i in EVENT_IDS.take(n)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    prefix = EVENT_IDS.prefix
    EVENT_IDS.reset()
    assert EVENT_IDS.prefix != prefix
