"""A swarm message as the fanout holds it: validated once, encoded once for every viewer."""

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from emostream.common.errors import InvalidEventError
from emostream.common.events import STREAM_ID_RE
from emostream.fanout._sse import chunked, event_frame

#: Swarm ids are short printable tokens; the aggregation's are ``<batch>-<window start>``.
_SWARM_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

SWARM_EVENT = "swarm"
#: The member fanout adds to every swarm it delivers: the stream's viewers across all pods.
VIEWERS_FIELD = "viewers"


@dataclass(frozen=True, slots=True)
class _Rendering:
    """One swarm with one viewer count, encoded for each transport."""

    text: str
    frame: bytes
    chunk: bytes


@dataclass(frozen=True, slots=True)
class Swarm:
    """One swarm update of one stream.

    ``time_ms`` (when the aggregation emitted it) decides when it leaves the replay buffer;
    ``last_receive_ms`` (when ingest received the newest reaction it counts) is where the
    latency a viewer perceives for a tap starts; ``text`` is the message as Kafka holds it,
    re-encoded compactly. Viewers get it with the stream's current viewer count added
    (:meth:`render`); the encodings for the latest count are cached, so sending one swarm to
    ten thousand viewers costs ten thousand writes and one serialisation (one more whenever the
    count changes in between).
    """

    id: str
    stream_id: str
    time_ms: int
    emitted_at_ms: int | None
    text: str
    last_receive_ms: int | None = None
    _rendered: list[tuple[int, _Rendering]] = field(default_factory=list, compare=False, repr=False)

    def render(self, viewers: int) -> tuple[str, bytes]:
        """The WebSocket text and the SSE frame of this swarm carrying ``"viewers": viewers``."""
        rendering = self._rendering(viewers)
        return rendering.text, rendering.frame

    def chunk(self, viewers: int) -> bytes:
        """The SSE frame as one HTTP/1.1 chunk, for feeds written straight into their sockets."""
        return self._rendering(viewers).chunk

    def forget_renderings(self) -> None:
        """Drop the cached encodings: a newer swarm of the stream superseded this one, so only
        a viewer resuming from the replay buffer still needs it, and it is encoded again then.
        Kept, they would triple what the buffered swarms take."""
        self._rendered.clear()

    def _rendering(self, viewers: int) -> _Rendering:
        cached = self._rendered
        # A loop over the one entry, not an index: safe against a clear in between.
        for count, rendering in cached:
            if count == viewers:
                return rendering
        # ``text`` is a compact JSON object without a viewers member (see from_object), so the
        # member can be spliced in before the closing brace instead of encoding it all again.
        text = f'{self.text[:-1]},"{VIEWERS_FIELD}":{int(viewers)}}}'
        frame = event_frame(text, event_id=self.id, event=SWARM_EVENT)
        rendering = _Rendering(text, frame, chunked(frame))
        # One slot, replaced whole: readers on other greenlets see the old or the new entry.
        cached[:] = [(viewers, rendering)]
        return rendering

    @classmethod
    def from_object(cls, obj: Any, *, fallback_time_ms: int) -> "Swarm":
        """Validate a decoded swarm object; ``fallback_time_ms`` stands in for ``emitted_at``."""
        if not isinstance(obj, dict):
            raise InvalidEventError("swarm", "must be a JSON object")
        swarm_id = obj.get("id")
        if not isinstance(swarm_id, str) or not _SWARM_ID_RE.fullmatch(swarm_id):
            raise InvalidEventError("id", "must be 1-128 printable ASCII characters")
        stream_id = obj.get("stream_id")
        if not isinstance(stream_id, str) or not STREAM_ID_RE.fullmatch(stream_id):
            raise InvalidEventError("stream_id", f"must match {STREAM_ID_RE.pattern}")
        if not isinstance(obj.get("counts"), dict) or not isinstance(obj.get("swarm"), dict):
            raise InvalidEventError("counts", "counts and swarm must be JSON objects")
        emitted = obj.get("emitted_at")
        emitted_at_ms = emitted if isinstance(emitted, int) and emitted > 0 else None
        received = obj.get("last_receive_ms")
        last_receive_ms = received if isinstance(received, int) and received > 0 else None
        # The count fanout publishes is its own; a member of that name upstream would be stale.
        obj = {k: v for k, v in obj.items() if k != VIEWERS_FIELD}
        # Re-encoding guarantees one compact line whatever the producer wrote.
        text = orjson.dumps(obj).decode()
        return cls(
            id=swarm_id,
            stream_id=stream_id,
            time_ms=emitted_at_ms or fallback_time_ms,
            emitted_at_ms=emitted_at_ms,
            text=text,
            last_receive_ms=last_receive_ms,
        )

    @classmethod
    def decode(cls, value: bytes | str, *, fallback_time_ms: int) -> "Swarm":
        """Parse and validate a swarm message as the aggregation writes it (Kafka or Redis)."""
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEventError("swarm", f"not JSON: {exc}") from exc
        return cls.from_object(obj, fallback_time_ms=fallback_time_ms)


def batch_of(swarm_id: str) -> str:
    """The micro-batch part of an aggregation swarm id (``<batch>-<window start>``)."""
    return swarm_id.partition("-")[0]
