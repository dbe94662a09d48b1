"""The emoji set, its sentiment valences, and the swarm rule.

Valence is how positive a reaction is, in [-1, 1]; the sentiment index of a window is the
count-weighted mean valence of its reactions, which is what the viewer page draws as the
"sentiment wave".
"""

import math
from collections.abc import Mapping

VARIATION_SELECTOR_16 = "\ufe0f"

#: The original clients' eight reactions first, then common live-event additions.
DEFAULT_VALENCE: dict[str, float] = {
    "👏": 0.8,
    "😂": 0.6,
    "❤️": 1.0,
    "😍": 0.9,
    "😭": -0.6,
    "😡": -1.0,
    "👍": 0.7,
    "👎": -0.7,
    "🔥": 0.8,
    "🎉": 0.9,
    "😮": 0.0,
    "😱": -0.4,
    "🙏": 0.5,
    "💯": 0.8,
}


def normalise_emoji(emoji: str, known: Mapping[str, float]) -> str | None:
    """Return the canonical spelling of ``emoji`` in ``known``, or None if it is not a member.

    Clients differ on the emoji presentation selector (U+FE0F): a bare U+2764 and U+2764 U+FE0F
    are the same heart, so either spelling maps to the one the set uses.
    """
    if emoji in known:
        return emoji
    if emoji + VARIATION_SELECTOR_16 in known:
        return emoji + VARIATION_SELECTOR_16
    bare = emoji.removesuffix(VARIATION_SELECTOR_16)
    if bare != emoji and bare in known:
        return bare
    return None


def swarm_size(count: int, divisor: int) -> int:
    """How many emojis to float for ``count`` reactions: ceil(count / divisor), 0 for none."""
    return math.ceil(count / divisor) if count > 0 else 0


def swarm_of(counts: Mapping[str, int], divisor: int) -> dict[str, int]:
    """The swarm of a window: every emoji with a non-zero count, scaled by the swarm rule."""
    return {e: swarm_size(n, divisor) for e, n in counts.items() if n > 0}


def sentiment_index(counts: Mapping[str, int], valence: Mapping[str, float]) -> float | None:
    """Count-weighted mean valence in [-1, 1]; None when the window holds no reactions."""
    total = sum(counts.values())
    if total == 0:
        return None
    weighted = sum(n * valence.get(e, 0.0) for e, n in counts.items())
    return round(weighted / total, 4)
