"""The SDK's incremental SSE parser, checked against the browser algorithm."""

import pytest

from emostream.client import SSEEvent, SSEParser


def parse(*chunks: bytes) -> tuple[list[SSEEvent], SSEParser]:
    """Feed ``chunks`` in order; return every event and the parser."""
    parser = SSEParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)]
    return events, parser


def test_swarm_frame_parses_to_one_event() -> None:
    """The fanout's frame gives one event with its type, id and data."""
    events, parser = parse(b'retry: 2000\n\nid: 1-2\nevent: swarm\ndata: {"a":1}\n\n')
    assert events == [SSEEvent(event="swarm", data='{"a":1}', id="1-2")]
    assert parser.retry_ms == 2000
    assert parser.last_event_id == "1-2"


def test_multiline_data_joins_with_newlines() -> None:
    """Several data lines make one data value joined by LF, without a trailing LF."""
    events, _ = parse(b"data: one\ndata: two\ndata:\n\n")
    assert events == [SSEEvent(event="message", data="one\ntwo\n", id=None)]


def test_comments_are_ignored_but_counted() -> None:
    """Comment lines (heartbeats) dispatch nothing."""
    events, parser = parse(b": hb\n\n: hb\n\ndata: x\n\n")
    assert [e.data for e in events] == ["x"]
    assert parser.comments == 2


def test_only_one_leading_space_is_removed() -> None:
    """'data:  x' keeps one space; 'data:x' has none removed."""
    events, _ = parse(b"data:  x\n\ndata:y\n\n")
    assert [e.data for e in events] == [" x", "y"]


def test_field_without_colon_has_empty_value() -> None:
    """A line 'data' is the field data with an empty value."""
    events, _ = parse(b"data\n\n")
    assert events == [SSEEvent(event="message", data="", id=None)]


def test_block_without_data_dispatches_nothing_but_sets_the_id() -> None:
    """An id-only block changes the last event id without an event."""
    events, parser = parse(b"id: 7\nevent: swarm\n\ndata: x\n\n")
    assert events == [SSEEvent(event="message", data="x", id="7")]
    assert parser.last_event_id == "7"


def test_id_is_kept_until_changed_and_can_be_reset() -> None:
    """The last event id carries over to later events; an empty id field clears it."""
    events, _ = parse(b"id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["5", "5", None]


def test_id_with_nul_is_ignored() -> None:
    """An id containing NUL does not change the last event id."""
    events, _ = parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


@pytest.mark.parametrize("value", [b"abc", b"12a", b"-5", b"  5", b" \xd9\xa5"])
def test_retry_needs_ascii_digits(value: bytes) -> None:
    """A retry value that is not all ASCII digits is ignored."""
    _, parser = parse(b"retry: 1000\n\nretry:" + value + b"\n\n")
    assert parser.retry_ms == 1000


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_is_accepted(eol: bytes) -> None:
    """LF, CRLF and CR all end lines."""
    events, _ = parse(b"event: swarm" + eol + b"data: x" + eol + eol)
    assert events == [SSEEvent(event="swarm", data="x", id=None)]


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    """A CR at the end of one chunk and LF at the start of the next make one line end."""
    events, _ = parse(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n")
    assert [e.data for e in events] == ["a", "b"]


def test_frames_split_at_every_byte_parse_the_same() -> None:
    """Feeding one byte at a time, including inside UTF-8 emojis, gives the same events."""
    stream = 'id: 1\nevent: swarm\ndata: {"❤️":3}\n\n: hb\n\nid: 2\ndata: 😂\n\n'.encode()
    whole, _ = parse(stream)
    bytewise, _ = parse(*(stream[i : i + 1] for i in range(len(stream))))
    assert bytewise == whole
    assert [e.data for e in whole] == ['{"❤️":3}', "😂"]


def test_incomplete_event_is_not_dispatched() -> None:
    """An event without its closing blank line (connection dropped) is not delivered."""
    events, parser = parse(b"id: 9\ndata: half")
    assert events == []
    assert parser.last_event_id == ""


def test_leading_byte_order_mark_is_skipped() -> None:
    """A UTF-8 BOM at the very start of the stream is not part of the first field name."""
    events, _ = parse(b"\xef\xbb\xbfdata: x\n\n")
    assert [e.data for e in events] == ["x"]


def test_unknown_fields_are_ignored() -> None:
    """Fields other than event, data, id and retry change nothing."""
    events, _ = parse(b"foo: bar\ndata: x\n\n")
    assert events == [SSEEvent(event="message", data="x", id=None)]
