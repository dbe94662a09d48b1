"""Turning request bodies into :class:`Reaction` events, or precise reasons why not.

Pure functions with no I/O, so every rule can be tested without a server or a broker. Field
checks raise :class:`InvalidEventError` naming the canonical field (``user_id``, ``emoji``,
``timestamp``, ``stream_id``); the body parsers relabel it with the name the client used and
collect every bad field of every item, so one reply tells a client all that is wrong.

This is the hot path of ingest (a batch is up to 500 items), so each field is first tried with
a cheap type check and a dictionary lookup, and only an unusual value goes through the precise
parser that can explain what is wrong. The result is the Kafka messages themselves, encoded once.
"""

import itertools
import math
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson

from emostream.common.emoji import VARIATION_SELECTOR_16, normalise_emoji
from emostream.common.errors import InvalidEventError
from emostream.common.events import DEFAULT_STREAM_ID, STREAM_ID_RE, Reaction
from emostream.ingest.settings import IngestSettings

MAX_USER_ID_CHARS = 128
#: JSON integers ingest reads exactly (orjson's range); a longer one arrives as a float.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1
#: Up to this magnitude a number written with a fraction or exponent (``7.0``, ``7e0``) still
#: names exactly one integer, the same one as without it.
MAX_EXACT_FLOAT_INT = 2**53
#: Numbers below this are epoch seconds (good until the year 5138), from it up epoch milliseconds.
EPOCH_SECONDS_BELOW = 100_000_000_000
#: Longest timestamp string considered; real ISO 8601 strings are far shorter.
MAX_TIME_STRING_CHARS = 64
#: Longest emoji string considered; the longest ZWJ sequences are under a dozen code points.
MAX_EMOJI_CHARS = 16
#: Field errors listed in one reply; a 500-item batch of garbage needs no 500-line answer.
MAX_REPORTED_ERRORS = 20

_NUMERIC = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

Clamp = Literal["future", "past"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class EventRules:
    """What an acceptable event is: the emoji set, batch size and trusted clock window."""

    emoji_valence: Mapping[str, float]
    max_batch: int
    max_future_skew_ms: int
    max_past_age_ms: int
    #: Every accepted spelling of an emoji (with and without U+FE0F) to its canonical one.
    spellings: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spellings: dict[str, str] = {}
        for emoji in self.emoji_valence:
            bare = emoji.removesuffix(VARIATION_SELECTOR_16)
            for spelling in (emoji, bare, bare + VARIATION_SELECTOR_16):
                canonical = normalise_emoji(spelling, self.emoji_valence)
                if canonical is not None:
                    spellings[spelling] = canonical
        object.__setattr__(self, "spellings", spellings)

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> "EventRules":
        """The rules configured for this deployment."""
        return cls(
            emoji_valence=settings.emoji_valence,
            max_batch=settings.max_batch,
            max_future_skew_ms=round(settings.max_future_skew_s * 1000),
            max_past_age_ms=round(settings.max_past_age_s * 1000),
        )


@dataclass(frozen=True, slots=True)
class FieldError:
    """One bad field: where it is (item index in a batch, field name) and what is wrong."""

    field: str
    reason: str
    index: int | None = None
    #: Canonical field kind, a bounded set fit for a metric label.
    kind: str = "shape"

    @property
    def pointer(self) -> str:
        """JSON Pointer (RFC 6901) to the field within the request body."""
        parts = [] if self.index is None else [str(self.index)]
        if self.field:
            parts.append(self.field)
        return "".join(f"/{p}" for p in parts)

    def describe(self) -> str:
        """A one-line human account, e.g. ``item 3: emoji: not in the emoji set``."""
        where = self.field or "body"
        prefix = "" if self.index is None else f"item {self.index}: "
        return f"{prefix}{where}: {self.reason}"


class InvalidReactionsError(InvalidEventError):
    """A body failed validation; nothing of it may be enqueued. ``errors`` lists every bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        super().__init__(first.field, first.describe())
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total_errors = len(errors)
        self.index = first.index
        self.kind = first.kind


#: A Kafka message as ``Producer.produce_batch`` takes it: ``{"key": ..., "value": ...}``.
KafkaMessage = dict[str, bytes]


@dataclass(slots=True)
class Parsed:
    """The valid reactions of one request, encoded as Kafka messages (key: user id).

    ``users`` counts the reactions of each user id (what the rate limit charges), ``clamped``
    how many had their event time replaced by the receive time.
    """

    stream_id: str = DEFAULT_STREAM_ID
    messages: list[KafkaMessage] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)
    clamped: dict[Clamp, int] = field(default_factory=lambda: {"future": 0, "past": 0})

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def reactions(self) -> list[Reaction]:
        """The messages decoded again; for tests and in-memory sinks, not the hot path."""
        return [Reaction.decode(m["value"]) for m in self.messages]


class _EventIds:
    """Unique event ids, 32 hex digits: a random per-process prefix (16), a request counter (12)
    and the event's place in its request (4).

    Much cheaper than a UUID per event (no system call, and a batch's ids are one format and a
    concatenation each). The prefix is drawn again in a forked child, so gunicorn workers forked
    from one master never share ids.
    """

    def __init__(self) -> None:
        self._grow = threading.Lock()
        self._places: list[str] = []
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        """Draw a new prefix and restart the counter."""
        self.prefix = secrets.token_hex(8)
        self._requests = itertools.count()

    def take(self, n: int) -> list[str]:
        """Fresh ids for the ``n`` events of one request (``next`` on the counter is atomic
        under the GIL, so threads may share)."""
        places = self._places
        if n > len(places):
            with self._grow:
                places.extend(f"{i:04x}" for i in range(len(places), n))
        request = f"{self.prefix}{next(self._requests):012x}"
        return [request + place for place in places[:n]]


EVENT_IDS = _EventIds()


def parse_user_id(value: object) -> str:
    """A user id as a string: given as a string or an integer (not a boolean), 1..128 chars.

    JSON has one number type, so ``7.0`` is the integer 7 (as JSON Schema counts it too) and
    becomes ``"7"``, the same user as ``7``.
    """
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= MAX_EXACT_FLOAT_INT:
            value = int(value)
        elif not MIN_JSON_INT <= value <= MAX_JSON_INT:
            # An integer beyond 64 bits, which orjson reads as a float, more likely than not.
            raise InvalidEventError(
                "user_id", "is beyond the 64-bit integer range; send long ids as strings"
            )
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEventError("user_id", "must be a string or an integer")
    if isinstance(value, int) and abs(value) >= 10**MAX_USER_ID_CHARS:
        raise InvalidEventError("user_id", f"must be at most {MAX_USER_ID_CHARS} characters")
    text = str(value)
    if not 1 <= len(text) <= MAX_USER_ID_CHARS:
        raise InvalidEventError("user_id", f"must be 1 to {MAX_USER_ID_CHARS} characters")
    return text


def parse_emoji(value: object, known: Mapping[str, float]) -> str:
    """The canonical spelling of an emoji in the configured set (a bare U+2764 is the heart)."""
    if not isinstance(value, str):
        raise InvalidEventError("emoji", "must be a string")
    canonical = normalise_emoji(value, known) if len(value) <= MAX_EMOJI_CHARS else None
    if canonical is None:
        raise InvalidEventError("emoji", "is not in the emoji set")
    return canonical


def parse_stream_id(value: object) -> str:
    """A stream id: 1 to 64 of ASCII letters, digits, ``_`` and ``-``."""
    if not isinstance(value, str) or STREAM_ID_RE.fullmatch(value) is None:
        raise InvalidEventError("stream_id", f"must match {STREAM_ID_RE.pattern}")
    return value


def parse_event_time(value: object) -> int:
    """Epoch milliseconds from epoch seconds, epoch milliseconds or an ISO 8601 string.

    Numbers below 1e11 are seconds, others milliseconds: 1e11 s is the year 5138 while 1e11 ms
    is 1973, so no plausible clock reading is ambiguous. A string of digits counts as a number.
    An ISO 8601 time without an offset is UTC.
    """
    if isinstance(value, bool):
        raise InvalidEventError("timestamp", "must be a number or a string, not a boolean")
    if isinstance(value, int | float):
        return _epoch_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TIME_STRING_CHARS:
            raise InvalidEventError("timestamp", "is too long for a timestamp")
        if _NUMERIC.fullmatch(text):
            return _epoch_ms(float(text) if "." in text else int(text))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidEventError(
                "timestamp", "must be epoch seconds, epoch milliseconds or ISO 8601"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _ONE_MS
    raise InvalidEventError("timestamp", "must be epoch seconds, epoch milliseconds or ISO 8601")


def _epoch_ms(number: float) -> int:
    if not math.isfinite(number):
        raise InvalidEventError("timestamp", "must be a finite number")
    if number < 0:
        raise InvalidEventError("timestamp", "must not be negative")
    if number < EPOCH_SECONDS_BELOW:
        return round(number * 1000)
    return round(number)


def clamp_event_time(event_ms: int, receive_ms: int, rules: EventRules) -> tuple[int, Clamp | None]:
    """The event time to use, and whether (and which way) it was out of the trusted window.

    An event time too far ahead of or behind the server clock is replaced by the receive time:
    the aggregation's watermark follows the largest event time it sees, so one fast clock would
    otherwise make everyone else's events late, and one slow clock would fill old windows.
    """
    if event_ms > receive_ms + rules.max_future_skew_ms:
        return receive_ms, "future"
    if event_ms < receive_ms - rules.max_past_age_ms:
        return receive_ms, "past"
    return event_ms, None


@dataclass(frozen=True, slots=True)
class _Names:
    """How one route spells the fields of a reaction."""

    emoji: str
    time: str
    time_required: bool


_SEND_EMOJI = _Names(emoji="emoji_type", time="timestamp", time_required=True)
_V1 = _Names(emoji="emoji", time="ts", time_required=False)


def parse_send_emoji(
    body: object, rules: EventRules, receive_ms: int, *, sender: str | None = None
) -> Parsed:
    """The one reaction of an original client's ``POST /send_emoji`` body.

    ``{"user_id", "emoji_type", "timestamp", "stream_id"?}``; unknown members are ignored so
    older and newer clients keep working. With ``sender`` (a sender token's subject) the
    ``user_id`` may be left out, and if given must be the sender.
    """
    if not isinstance(body, dict):
        raise InvalidReactionsError([FieldError("", "the body must be a JSON object")])
    reader = _Reader(DEFAULT_STREAM_ID, _SEND_EMOJI, rules, receive_ms, sender)
    if body.get("stream_id") is not None:
        reader.stream_id = (
            reader.member(body, None, "stream_id", "stream_id", parse_stream_id) or ""
        )
    reader.read([body], batch=False)
    return reader.result()


def parse_stream_reactions(
    stream_id: str,
    body: object,
    rules: EventRules,
    receive_ms: int,
    *,
    sender: str | None = None,
) -> Parsed:
    """The reactions of a ``POST /v1/streams/<stream_id>/reactions`` body.

    One object ``{"user_id", "emoji", "ts"?}`` or a JSON array of up to ``max_batch`` of them.
    A batch is all or nothing: one bad item rejects the whole request, so a client never has to
    work out which part of a batch got in. ``sender`` as in :func:`parse_send_emoji`.
    """
    try:
        stream_id = parse_stream_id(stream_id)
    except InvalidEventError as e:
        raise InvalidReactionsError([FieldError("stream_id", e.reason, kind="stream_id")]) from None
    reader = _Reader(stream_id, _V1, rules, receive_ms, sender)
    if isinstance(body, dict):
        reader.read([body], batch=False)
    elif isinstance(body, list):
        if not 1 <= len(body) <= rules.max_batch:
            reason = f"a batch must hold 1 to {rules.max_batch} reactions, not {len(body)}"
            raise InvalidReactionsError([FieldError("", reason, kind="batch_size")])
        reader.read(body, batch=True)
    else:
        raise InvalidReactionsError(
            [FieldError("", "the body must be a JSON object or an array of objects")]
        )
    return reader.result()


@dataclass(slots=True)
class _Reader:
    """Turns the items of one request into reactions, collecting every bad field on the way."""

    stream_id: str
    names: _Names
    rules: EventRules
    receive_ms: int
    #: The user id of a sender token: every item's user, whatever the item says.
    sender: str | None = None
    parsed: Parsed = field(default_factory=Parsed)
    errors: list[FieldError] = field(default_factory=list)

    def read(self, items: list[Any], *, batch: bool) -> None:
        """Add each item's reaction, or its bad fields; ``batch``: the items are an array's, so
        their errors name their index.

        The common item (a string user id, an emoji spelled as configured, no time or a plain
        number within the trusted window, no sender token) is read inline with everything it
        needs in locals: this loop runs for every reaction ingest takes. Any other goes through
        :meth:`_fields`, which can say what is wrong.
        """
        ids = EVENT_IDS.take(len(items))
        spellings = self.rules.spellings
        emoji_name, time_name = self.names.emoji, self.names.time
        time_optional = not self.names.time_required
        stream_id, receive_ms = self.stream_id, self.receive_ms
        earliest = receive_ms - self.rules.max_past_age_ms
        latest = receive_ms + self.rules.max_future_skew_ms
        users = self.parsed.users
        append = self.parsed.messages.append
        dumps = orjson.dumps
        plain = self.sender is None
        # Any: the loop narrows by exact type, which mypy cannot follow.
        user_id: Any
        when: Any
        for index, item in enumerate(items):
            event_ms: int | None = None
            if plain and type(item) is dict:
                user_id = item.get("user_id")
                given = item.get(emoji_name)
                when = item.get(time_name)
                kind = type(when)
                if (
                    type(user_id) is str
                    and 0 < len(user_id) <= MAX_USER_ID_CHARS
                    and type(given) is str
                    and (emoji := spellings.get(given)) is not None
                ):
                    if when is None and time_optional:
                        event_ms = receive_ms
                    elif (kind is int or kind is float) and 0 <= when < EPOCH_SECONDS_BELOW:
                        event_ms = round(when * 1000)
                    elif kind is int and when >= EPOCH_SECONDS_BELOW:
                        event_ms = when
                    if event_ms is not None and not earliest <= event_ms <= latest:
                        event_ms = None  # to be clamped, and counted, by _fields
            if event_ms is None:
                fields = self._fields(item, index if batch else None)
                if fields is None:
                    continue
                user_id, emoji, event_ms = fields
            users[user_id] = users.get(user_id, 0) + 1
            # The same members, in the same order, as Reaction.encode: the one wire format.
            value = dumps(
                {
                    "id": ids[index],
                    "stream_id": stream_id,
                    "user_id": user_id,
                    "emoji": emoji,
                    "ts": event_ms,
                    "rts": receive_ms,
                }
            )
            append({"key": user_id.encode(), "value": value})

    def _fields(self, item: object, index: int | None) -> tuple[str, str, int] | None:
        """The user id, emoji and (clamped) event time of any item; None, and its bad fields
        in ``errors``, when it is not a valid reaction."""
        if not isinstance(item, dict):
            self.errors.append(FieldError("", "each reaction must be a JSON object", index))
            return None
        found = len(self.errors)
        names = self.names
        given_user = item.get("user_id")
        user_id = (
            given_user
            if type(given_user) is str and 0 < len(given_user) <= MAX_USER_ID_CHARS
            else self._user(item, index)
        )
        if self.sender is not None and user_id != self.sender:
            if user_id is not None and given_user is not None:
                self.errors.append(
                    FieldError(
                        "user_id",
                        "must be the sender token's subject, or be left out",
                        index,
                        "user_id",
                    )
                )
            user_id = self.sender
        given = item.get(names.emoji)
        emoji = self.rules.spellings.get(given) if type(given) is str else None
        if emoji is None:
            emoji = self.member(item, index, names.emoji, "emoji", self._emoji)
        event_ms = self._time(item, index)
        if len(self.errors) > found or user_id is None or emoji is None:
            return None
        if event_ms is None:
            return user_id, emoji, self.receive_ms  # absent or null: the receive time
        event_ms, clamp = clamp_event_time(event_ms, self.receive_ms, self.rules)
        if clamp is not None:
            self.parsed.clamped[clamp] += 1
        return user_id, emoji, event_ms

    def _user(self, item: dict[str, object], index: int | None) -> str | None:
        if self.sender is not None and item.get("user_id") is None:
            return self.sender
        return self.member(item, index, "user_id", "user_id", parse_user_id)

    def _time(self, item: dict[str, object], index: int | None) -> int | None:
        return self.member(
            item,
            index,
            self.names.time,
            "timestamp",
            parse_event_time,
            required=self.names.time_required,
        )

    def member(
        self,
        item: dict[str, object],
        index: int | None,
        name: str,
        kind: str,
        parse: Callable[[object], T],
        *,
        required: bool = True,
    ) -> T | None:
        """The parsed member ``name`` of ``item``; None (and an entry in errors) if it is bad.

        An optional member given as JSON null counts as absent.
        """
        if name not in item or (not required and item[name] is None):
            if required:
                self.errors.append(FieldError(name, "is required", index, kind))
            return None
        try:
            return parse(item[name])
        except InvalidEventError as e:
            self.errors.append(FieldError(name, e.reason, index, kind))
            return None

    def result(self) -> Parsed:
        """The reactions, or :class:`InvalidReactionsError` listing every bad field."""
        if self.errors:
            raise InvalidReactionsError(self.errors)
        self.parsed.stream_id = self.stream_id
        return self.parsed

    def _emoji(self, value: object) -> str:
        return parse_emoji(value, self.rules.emoji_valence)
