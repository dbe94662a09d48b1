"""The emoji generator's simulated audience and the Locust file's traffic model."""

import random

from emostream.common.emoji import DEFAULT_VALENCE
from emostream.loadgen._traffic import reaction, zipf_weights
from emostream.loadgen.generator import BASE_WEIGHTS, BURST_FACTOR, Audience


def test_every_generated_emoji_is_accepted_by_default() -> None:
    """The generator only sends emojis that ingest's default set accepts."""
    assert set(BASE_WEIGHTS) <= set(DEFAULT_VALENCE)


def test_calm_audience_sends_the_requested_count() -> None:
    """Outside a burst, a tick carries exactly the requested number of reactions."""
    audience = Audience(rng=random.Random(1), burst_emoji=None, burst_until=0.0)
    audience.rng.random = lambda: 1.0  # type: ignore[method-assign]  # never start a burst
    assert len(audience.reactions(30, now=0.0)) == 30


def test_burst_multiplies_and_skews_towards_one_emoji() -> None:
    """During a burst the tick grows and one emoji dominates; the burst ends on time."""
    audience = Audience(rng=random.Random(2), burst_emoji="😂", burst_until=10.0)
    burst = audience.reactions(100, now=1.0)
    assert len(burst) == int(100 * BURST_FACTOR)
    assert burst.count("😂") > len(burst) / 2
    audience.rng.random = lambda: 1.0  # type: ignore[method-assign]
    assert len(audience.reactions(100, now=11.0)) == 100
    assert audience.burst_emoji is None


def test_stream_popularity_follows_a_zipf_skew() -> None:
    """The most popular stream gets the most traffic in the load test, in Zipf proportion."""
    weights = zipf_weights(4, 1.0)
    assert weights == [1.0, 0.5, 1 / 3, 0.25]


def test_load_reactions_use_accepted_emojis() -> None:
    """Every simulated tap carries an emoji ingest accepts and a fresh user id."""
    taps = [reaction() for _ in range(50)]
    assert {t["emoji"] for t in taps} <= set(DEFAULT_VALENCE)
    assert len({t["user_id"] for t in taps}) > 40
