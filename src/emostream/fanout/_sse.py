"""Server-Sent Events framing (WHATWG HTML, "Server-sent events", section 9.2).

Frames are built once per swarm and shared by every connection, so the encoder must be exact:
a field value may not contain a line break (a ``data`` value with several lines becomes several
``data:`` lines), and ``id`` may not contain NUL either, or a browser would ignore it.
"""

import re

from emostream.common.errors import InvalidEventError

#: A comment line; any bytes keep proxies and load balancers from closing an idle feed.
HEARTBEAT = b": hb\n\n"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = re.compile(r"[\r\n\x00]")


def event_frame(data: str, *, event_id: str | None = None, event: str | None = None) -> bytes:
    """One event: optional ``id`` and ``event`` fields, one ``data`` line per line of ``data``."""
    parts: list[str] = []
    if event_id is not None:
        if _FORBIDDEN_IN_FIELD.search(event_id):
            raise InvalidEventError("id", "must not contain CR, LF or NUL")
        parts.append(f"id: {event_id}\n")
    if event is not None:
        if not event or _FORBIDDEN_IN_FIELD.search(event):
            raise InvalidEventError("event", "must be non-empty without CR, LF or NUL")
        parts.append(f"event: {event}\n")
    parts.extend(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    parts.append("\n")
    return "".join(parts).encode()


def retry_frame(retry_ms: int) -> bytes:
    """The reconnection-delay hint; a block with no data dispatches no event."""
    if retry_ms < 0:
        raise InvalidEventError("retry", "must not be negative")
    return f"retry: {retry_ms}\n\n".encode()


def comment(text: str) -> bytes:
    """A comment block (ignored by parsers), one ``:`` line per line of ``text``."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode() + b"\n"


def chunked(data: bytes) -> bytes:
    """``data`` as one chunk of an HTTP/1.1 chunked body (RFC 9112 section 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)
