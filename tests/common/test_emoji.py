"""The emoji set, the swarm rule and the sentiment index."""

import pytest

from emostream.common.emoji import (
    DEFAULT_VALENCE,
    normalise_emoji,
    sentiment_index,
    swarm_of,
    swarm_size,
)


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (3785, 4)]
)
def test_swarm_size_is_ceil_of_count_over_divisor(count: int, expected: int) -> None:
    """swarm[e] = ceil(count / 1000), and nothing for a zero count."""
    assert swarm_size(count, 1000) == expected


def test_swarm_of_omits_zero_counts() -> None:
    """Only emojis with reactions appear in a swarm."""
    assert swarm_of({"👏": 0, "😂": 1500}, 1000) == {"😂": 2}


def test_default_set_holds_the_original_eight() -> None:
    """The original clients' eight emojis are accepted by default."""
    for emoji in ["👏", "😂", "❤️", "😍", "😭", "😡", "👍", "👎"]:
        assert normalise_emoji(emoji, DEFAULT_VALENCE) == emoji


def test_bare_heart_is_normalised_to_the_emoji_presentation() -> None:
    """U+2764 alone is the same heart as U+2764 U+FE0F."""
    assert normalise_emoji("\u2764", DEFAULT_VALENCE) == "\u2764\ufe0f"


def test_selector_is_dropped_when_the_set_uses_the_bare_form() -> None:
    """An emoji sent with U+FE0F matches a set entry spelled without it."""
    assert normalise_emoji("👍\ufe0f", DEFAULT_VALENCE) == "👍"


def test_unknown_emoji_is_not_a_member() -> None:
    """Anything outside the configured set is rejected."""
    assert normalise_emoji("🦄", DEFAULT_VALENCE) is None
    assert normalise_emoji("", DEFAULT_VALENCE) is None


def test_sentiment_is_the_count_weighted_mean_valence() -> None:
    """Three loves (+1) and one anger (-1) average to +0.5."""
    assert sentiment_index({"❤️": 3, "😡": 1}, DEFAULT_VALENCE) == 0.5


def test_sentiment_of_an_empty_window_is_none() -> None:
    """No reactions, no sentiment."""
    assert sentiment_index({}, DEFAULT_VALENCE) is None
