"""Wire formats: a reaction on the ``reactions`` topic and a swarm on the ``swarms`` topic.

Both are compact JSON (orjson). Times on the wire are epoch milliseconds, except the human-facing
window bounds of a swarm, which are ISO 8601 UTC strings.
"""

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

import orjson

#: Stream ids as every route accepts them, and as Kafka and Redis keys carry them: 1 to 64
#: ASCII letters, digits, ``_`` and ``-`` (no ``.``, so a viewer token's message is unambiguous).
STREAM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The stream of a reaction that names none (the original clients' ``/send_emoji``).
DEFAULT_STREAM_ID = "default"


@dataclass(frozen=True, slots=True)
class Reaction:
    """One viewer's tap, as ingest writes it to Kafka (keyed by user id)."""

    event_id: str
    stream_id: str
    user_id: str
    emoji: str
    event_time_ms: int
    receive_time_ms: int

    def encode(self) -> bytes:
        """The Kafka message value."""
        return orjson.dumps(
            {
                "id": self.event_id,
                "stream_id": self.stream_id,
                "user_id": self.user_id,
                "emoji": self.emoji,
                "ts": self.event_time_ms,
                "rts": self.receive_time_ms,
            }
        )

    @classmethod
    def decode(cls, value: bytes) -> "Reaction":
        """Parse a Kafka message value written by :meth:`encode`."""
        d = orjson.loads(value)
        return cls(d["id"], d["stream_id"], d["user_id"], d["emoji"], d["ts"], d["rts"])


class SwarmMessage(TypedDict):
    """A swarm on the ``swarms`` topic (and in Redis's latest snapshot), as the aggregation
    writes it; fanout adds ``viewers`` before a viewer reads it over SSE or WebSocket.

    ``counts`` are the window's running totals so far, ``swarm`` the scaled emoji counts, the
    window bounds ISO 8601 UTC strings, and the ``*_ms``/``emitted_at`` times epoch milliseconds.
    """

    id: str
    stream_id: str
    window_start: str
    window_end: str
    counts: dict[str, int]
    swarm: dict[str, int]
    sentiment: float | None
    first_receive_ms: int
    last_receive_ms: int
    emitted_at: int
    viewers: NotRequired[int]


def swarm_id(batch_id: int, window_start_ms: int, epoch_ms: int = 0) -> str:
    """An id ordered per stream and identical when the same micro-batch is written again.

    Micro-batch ids grow monotonically and a replayed batch keeps its id, so ordering by batch
    first, then window start, gives the emission order; fixed width makes string order match.

    Batch ids restart from 0 when the aggregation starts over with a new checkpoint, so the
    aggregation prefixes them with ``epoch_ms``: the creation time of its checkpoint, the same
    for every restart from that checkpoint and greater for any later one
    (``<epoch, 13 digits>.<batch, 12 digits>-<window start, 13 digits>``). Without an epoch the
    id is the bare ``<batch>-<window start>``, which sorts before every epoch-prefixed id.
    """
    core = f"{batch_id:012d}-{window_start_ms:013d}"
    return f"{epoch_ms:013d}.{core}" if epoch_ms else core


def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC string with millisecond precision."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (from the clock's integer nanoseconds: a tenth of
    what a datetime costs, and it is read for every delivery timed and every request)."""
    return time.time_ns() // 1_000_000


def encode_json(obj: Any) -> bytes:
    """Compact JSON, the one serialiser every role uses."""
    return orjson.dumps(obj)
