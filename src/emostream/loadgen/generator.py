"""The emoji generator: simulated viewers tapping reactions at a steady rate, with bursts.

A live audience is not uniform noise: most taps are a few favourite emojis, and moments in the
match (a six, a wicket) cause short bursts of one emoji. The generator models both so the demo's
swarm and trend chart look like a real event.
"""

import logging
import random
import time
from dataclasses import dataclass, field

from emostream.client import EmostreamClient
from emostream.common.errors import EmostreamError
from emostream.common.events import now_ms

log = logging.getLogger(__name__)

TICK_S = 0.1
BURST_CHANCE_PER_S = 0.05
BURST_SECONDS = 3.0
BURST_FACTOR = 5.0

# Relative popularity of the original clients' eight reactions in a typical live event.
BASE_WEIGHTS = {"❤️": 30, "😂": 20, "👏": 15, "👍": 12, "😍": 10, "😭": 5, "😡": 4, "👎": 4}


@dataclass
class Audience:
    """Chooses the next tick's reactions, with an occasional burst of one emoji."""

    rng: random.Random = field(default_factory=random.Random)
    burst_emoji: str | None = None
    burst_until: float = 0.0

    def reactions(self, count: int, now: float) -> list[str]:
        """``count`` emojis for this tick, skewed towards the burst emoji during a burst."""
        if self.burst_emoji is None and self.rng.random() < BURST_CHANCE_PER_S * TICK_S:
            self.burst_emoji = self.rng.choice(list(BASE_WEIGHTS))
            self.burst_until = now + BURST_SECONDS
        weights: dict[str, float] = dict(BASE_WEIGHTS)
        if self.burst_emoji is not None:
            if now >= self.burst_until:
                self.burst_emoji = None
            else:
                weights[self.burst_emoji] *= BURST_FACTOR * len(weights)
                count = int(count * BURST_FACTOR)
        return self.rng.choices(list(weights), list(weights.values()), k=count)


def run_generator(
    ingest_url: str,
    streams: str,
    rate: float,
    duration_s: float,
    *,
    token: str | None = None,
    admin_token: str | None = None,
) -> None:
    """Send ``rate`` reactions/s (split over ``streams``) until ``duration_s`` ends or Ctrl-C.

    ``token``: a sender token to send with (one without ``sub``, as a platform's backend
    holds, keeps the simulated viewers' user ids). ``admin_token``: open the streams first, for
    a deployment whose stream registry is closed.
    """
    client = EmostreamClient(ingest_url=ingest_url, token=token, admin_token=admin_token)
    stream_ids = [s.strip() for s in streams.split(",") if s.strip()]
    if admin_token:
        for stream_id in stream_ids:
            client.open_stream(stream_id)
    audiences = {s: Audience() for s in stream_ids}
    per_tick = max(1, round(rate * TICK_S / len(stream_ids)))
    started = time.monotonic()
    sent = 0
    next_report = started + 5
    log.info("generating", extra={"streams": stream_ids, "rate": rate})
    while duration_s <= 0 or time.monotonic() - started < duration_s:
        tick_start = time.monotonic()
        for stream_id, audience in audiences.items():
            emojis = audience.reactions(per_tick, tick_start)
            batch = [
                {"user_id": f"viewer-{random.randrange(100_000)}", "emoji": e, "ts": now_ms()}  # noqa: S311
                for e in emojis
            ]
            try:
                sent += client.send(stream_id, batch)
            except EmostreamError as exc:
                log.warning("send failed", extra={"error": str(exc)})
        if tick_start >= next_report:
            elapsed = tick_start - started
            log.info("progress", extra={"sent": sent, "per_second": round(sent / elapsed)})
            next_report = tick_start + 5
        time.sleep(max(0.0, TICK_S - (time.monotonic() - tick_start)))
