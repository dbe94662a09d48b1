"""An incremental Server-Sent Events parser (WHATWG HTML, "Server-sent events", 9.2.6).

Bytes go in as the network delivers them, split anywhere (inside a UTF-8 sequence, between the
CR and LF of a line break); complete events come out. It follows the browser algorithm: lines
end with CRLF, LF or CR; ``:`` starts a comment; a field's value loses one leading space;
several ``data`` lines join with LF; a blank line dispatches, and a block without data
dispatches nothing; ``id`` sets the last event id (kept across events, ignored if it holds NUL);
``retry`` takes only ASCII digits.
"""

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")
_DIGITS = re.compile(r"^[0-9]+$")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its type (``message`` if none was given), data and last id."""

    event: str
    data: str
    id: str | None


class SSEParser:
    """Feed it bytes with :meth:`feed`; read ``last_event_id`` and ``retry_ms`` at any time."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False
        self._data: list[str] = []
        self._event = ""
        self._id_buffer = ""
        #: The id to send as Last-Event-ID when reconnecting ("" before any).
        self.last_event_id = ""
        #: The reconnection delay the server asked for, if it did.
        self.retry_ms: int | None = None
        #: Comment lines seen (heartbeats); useful to tell a quiet feed from a dead one.
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next bytes of the stream; returns the events they complete."""
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf:
            # The previous chunk ended with CR: a LF now is the second half of that CRLF.
            self._skip_lf = False
            text = text.removeprefix("\n")
        buffer = self._buffer + text
        events: list[SSEEvent] = []
        pos = 0
        for match in _LINE_END.finditer(buffer):
            event = self._line(buffer[pos : match.start()])
            if event is not None:
                events.append(event)
            pos = match.end()
        self._skip_lf = pos == len(buffer) and pos > 0 and buffer[pos - 1] == "\r"
        self._buffer = buffer[pos:]
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and _DIGITS.match(value):
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        self.last_event_id = self._id_buffer
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self.last_event_id or None,
        )
        self._data = []
        self._event = ""
        return event
