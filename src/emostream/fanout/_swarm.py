"""A swarm message as the fanout holds it: validated once, encoded once for every viewer."""

import re
from dataclasses import dataclass
from typing import Any

import orjson

from emostream.common.errors import InvalidEventError
from emostream.fanout._sse import event_frame

#: Stream ids as the public routes accept them (and as Kafka keys and Redis keys carry them).
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Swarm ids are short printable tokens; the aggregation's are ``<batch>-<window start>``.
_SWARM_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

SWARM_EVENT = "swarm"


@dataclass(frozen=True, slots=True)
class Swarm:
    """One swarm update of one stream.

    ``time_ms`` (when the aggregation emitted it) decides when it leaves the replay buffer;
    ``text`` and ``frame`` are the WebSocket and SSE encodings, computed here once so that
    sending to ten thousand viewers costs ten thousand writes and no serialisation.
    """

    id: str
    stream_id: str
    time_ms: int
    emitted_at_ms: int | None
    text: str
    frame: bytes

    @classmethod
    def from_object(cls, obj: Any, *, fallback_time_ms: int) -> "Swarm":
        """Validate a decoded swarm object; ``fallback_time_ms`` stands in for ``emitted_at``."""
        if not isinstance(obj, dict):
            raise InvalidEventError("swarm", "must be a JSON object")
        swarm_id = obj.get("id")
        if not isinstance(swarm_id, str) or not _SWARM_ID_RE.match(swarm_id):
            raise InvalidEventError("id", "must be 1-128 printable ASCII characters")
        stream_id = obj.get("stream_id")
        if not isinstance(stream_id, str) or not STREAM_ID_RE.match(stream_id):
            raise InvalidEventError("stream_id", f"must match {STREAM_ID_RE.pattern}")
        if not isinstance(obj.get("counts"), dict) or not isinstance(obj.get("swarm"), dict):
            raise InvalidEventError("counts", "counts and swarm must be JSON objects")
        emitted = obj.get("emitted_at")
        emitted_at_ms = emitted if isinstance(emitted, int) and emitted > 0 else None
        # Re-encoding guarantees one compact line whatever the producer wrote.
        text = orjson.dumps(obj).decode()
        return cls(
            id=swarm_id,
            stream_id=stream_id,
            time_ms=emitted_at_ms or fallback_time_ms,
            emitted_at_ms=emitted_at_ms,
            text=text,
            frame=event_frame(text, event_id=swarm_id, event=SWARM_EVENT),
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
