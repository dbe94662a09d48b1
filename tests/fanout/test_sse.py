"""The SSE frame encoder."""

import pytest

from emostream.common.errors import InvalidEventError
from emostream.fanout._sse import HEARTBEAT, comment, event_frame, retry_frame


def test_event_frame_has_id_event_and_data_lines() -> None:
    """An event is id, event and data fields, one per line, closed by a blank line."""
    frame = event_frame('{"a":1}', event_id="000000000001-1", event="swarm")
    assert frame == b'id: 000000000001-1\nevent: swarm\ndata: {"a":1}\n\n'


def test_multiline_data_becomes_several_data_lines() -> None:
    """Every kind of line break in data starts a new data field, so no line break leaks."""
    assert event_frame("a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_empty_data_is_still_one_data_line() -> None:
    """Empty data still dispatches an event (one empty data field)."""
    assert event_frame("") == b"data: \n\n"


def test_non_ascii_data_is_utf8() -> None:
    """Emojis travel as UTF-8 bytes."""
    assert event_frame("❤️") == "data: ❤️\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b"])
def test_id_with_line_break_or_nul_is_refused(bad: str) -> None:
    """An id that a browser would split or ignore is refused instead of sent."""
    with pytest.raises(InvalidEventError):
        event_frame("x", event_id=bad)


def test_event_name_with_line_break_is_refused() -> None:
    """An event name cannot inject extra fields."""
    with pytest.raises(InvalidEventError):
        event_frame("x", event="swarm\ndata: evil")


def test_retry_hint_is_a_block_without_data() -> None:
    """The retry hint is its own block, which dispatches no event."""
    assert retry_frame(2000) == b"retry: 2000\n\n"
    with pytest.raises(InvalidEventError):
        retry_frame(-1)


def test_heartbeat_and_comments_start_with_a_colon() -> None:
    """Heartbeats and comments are comment lines that parsers ignore."""
    assert HEARTBEAT == b": hb\n\n"
    assert comment("two\nlines") == b": two\n: lines\n\n"
