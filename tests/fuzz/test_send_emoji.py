"""The original clients' ``POST /send_emoji``, fuzzed with every payload variant they send.

Timestamps as epoch seconds, epoch milliseconds or ISO 8601 (with ``Z``, an offset or none),
user ids as integers or strings, known emojis in every accepted spelling (the bare U+2764
heart among them) and unknown ones. Each accepted reaction must then be on the Kafka topic
exactly once, with the canonical emoji and, for a time in the trusted window, the time sent.
"""

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostream.common.emoji import DEFAULT_VALENCE, VARIATION_SELECTOR_16, normalise_emoji
from tests.conftest import Topics
from tests.fuzz._checks import problem_errors
from tests.fuzz.conftest import FUZZ_EXAMPLES, REQUEST_TIMEOUT_S
from tests.ingest.conftest import Server, read_topic

pytestmark = pytest.mark.integration

BARE_HEART = "\u2764"
#: Every spelling of the default set the original clients may send, with and without U+FE0F.
SPELLINGS = sorted(
    {e for known in DEFAULT_VALENCE for e in (known, known.removesuffix(VARIATION_SELECTOR_16))}
    | {BARE_HEART}
)


@dataclass(frozen=True)
class Sent:
    """One payload and what ingest must make of it."""

    body: dict[str, object]
    #: The canonical emoji, or None when the emoji is not in the set (a 422 is due).
    emoji: str | None
    #: Epoch ms the event must carry, or None when only "some time" is promised (clamped).
    event_ms: int | None


def _recent_times() -> st.SearchStrategy[tuple[object, int]]:
    """A time up to 30 s ago in each accepted spelling, with its epoch milliseconds."""

    def spell(offset_ms: int, form: str, zone_minutes: int) -> tuple[object, int]:
        ms = int(time.time() * 1000) - offset_ms
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
        if form == "seconds":
            return ms / 1000, ms
        if form == "milliseconds":
            return ms, ms
        if form == "digits":
            return str(ms), ms
        if form == "iso-z":
            return moment.isoformat().replace("+00:00", "Z"), ms
        if form == "iso-naive":
            return moment.replace(tzinfo=None).isoformat(), ms
        zone = timezone(timedelta(minutes=zone_minutes))
        return moment.astimezone(zone).isoformat(), ms

    return st.builds(
        spell,
        st.integers(0, 30_000),
        st.sampled_from(["seconds", "milliseconds", "digits", "iso-z", "iso-naive", "iso-offset"]),
        st.integers(-14 * 60, 14 * 60),
    )


def _any_times() -> st.SearchStrategy[object]:
    """Valid times anywhere (accepted, clamped to receive time when out of the window)."""
    return st.one_of(
        st.integers(0, 10**15),
        st.floats(0, 1e15, allow_nan=False),
        st.datetimes(
            min_value=datetime(1, 1, 2),  # noqa: DTZ001 - naive on purpose, read as UTC
            max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        ).map(datetime.isoformat),
    )


@st.composite
def payloads(draw: st.DrawFn, stream_prefix: str) -> Sent:
    """One ``/send_emoji`` body in the original clients' format."""
    user_id: object = draw(
        st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(min_size=1, max_size=128))
    )
    known = draw(st.booleans())
    if known:
        emoji = draw(st.sampled_from(SPELLINGS))
    else:
        emoji = draw(
            st.one_of(st.sampled_from(["🦄", "❤❤", "", "\ufe0f"]), st.text(max_size=8)).filter(
                lambda e: normalise_emoji(e, DEFAULT_VALENCE) is None
            )
        )
    recent = draw(st.booleans())
    if recent:
        timestamp, event_ms = draw(_recent_times())
    else:
        timestamp, event_ms = draw(_any_times()), None
    body = {
        "user_id": user_id,
        "emoji_type": emoji,
        "timestamp": timestamp,
        "stream_id": f"{stream_prefix}-{uuid.uuid4().hex[:12]}",
    }
    canonical = normalise_emoji(emoji, DEFAULT_VALENCE) if known else None
    return Sent(body, canonical, event_ms)


def test_send_emoji_payload_variants_are_taken_exactly_once(
    ingest_server: Server, kafka_bootstrap: str, topics: Topics
) -> None:
    """Known emojis in any time format are enqueued once, normalised; unknown ones are 422."""
    prefix = f"fuzz-{uuid.uuid4().hex[:8]}"
    accepted: list[Sent] = []

    @settings(
        max_examples=FUZZ_EXAMPLES * 2,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(sent=payloads(prefix))
    def is_taken_or_refused(sent: Sent) -> None:
        resp = requests.post(
            f"{ingest_server.url}/send_emoji", json=sent.body, timeout=REQUEST_TIMEOUT_S
        )
        content_type = resp.headers.get("Content-Type", "")
        assert not problem_errors(resp.status_code, content_type, resp.content), resp.text
        if sent.emoji is None:
            assert resp.status_code == 422, resp.text
            assert resp.json()["field"] == "emoji_type"
        elif resp.status_code != 429:  # a user id drawn many times may run out of its burst
            assert resp.status_code == 200, resp.text
            assert content_type == "application/json"
            assert resp.json() == {"status": "Emoji data received"}
            accepted.append(sent)

    is_taken_or_refused()
    assert accepted, "no payload was accepted: the property was never exercised"
    on_topic = [
        read.reaction
        for read in read_topic(
            kafka_bootstrap, topics.reactions, prefix, len(accepted), prefix=True
        )
    ]
    by_stream = {r.stream_id: r for r in on_topic}
    # Stream ids are unique per payload, so a duplicate would show as a count above one.
    assert Counter(r.stream_id for r in on_topic) == Counter(
        str(s.body["stream_id"]) for s in accepted
    )
    for sent in accepted:
        reaction = by_stream[str(sent.body["stream_id"])]
        assert reaction.user_id == str(sent.body["user_id"])
        assert reaction.emoji == sent.emoji
        if sent.event_ms is not None:
            assert reaction.event_time_ms == sent.event_ms, sent.body
