"""Wire formats of reactions and swarm ids."""

from emostream.common.events import Reaction, iso_utc, swarm_id


def test_reaction_round_trips_through_its_encoding() -> None:
    """What ingest writes is what the aggregation reads."""
    r = Reaction("e1", "final", "u7", "❤️", 1_764_000_000_123, 1_764_000_000_456)
    assert Reaction.decode(r.encode()) == r


def test_swarm_ids_order_by_batch_then_window() -> None:
    """String order of ids is emission order, even across digit-count boundaries."""
    ids = [swarm_id(9, 2_000), swarm_id(10, 1_000), swarm_id(10, 3_000), swarm_id(100, 0)]
    assert ids == sorted(ids)


def test_iso_utc_has_millisecond_precision_and_z_suffix() -> None:
    """Window bounds are unambiguous UTC instants."""
    assert iso_utc(1_764_000_000_123) == "2025-11-24T16:00:00.123Z"
