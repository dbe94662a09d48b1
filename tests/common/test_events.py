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


def test_a_later_checkpoint_epoch_sorts_after_every_earlier_id() -> None:
    """A fresh checkpoint restarts batch ids at 0, yet its ids still sort after the old ones."""
    old_epoch, new_epoch = 1_764_000_000_000, 1_764_000_600_000
    old = [swarm_id(b, 1_764_000_590_000, old_epoch) for b in (5, 99_999)]
    new = [swarm_id(b, 1_764_000_600_000, new_epoch) for b in (0, 1)]
    legacy = swarm_id(99_999, 1_764_000_590_000)
    assert sorted([*new, *old, legacy]) == [legacy, *old, *new]
    assert old[0] == "1764000000000.000000000005-1764000590000"


def test_swarm_ids_of_one_epoch_have_a_fixed_width() -> None:
    """Every id of one epoch has the same length, so string order is numeric order."""
    ids = {swarm_id(b, w, 1_764_000_000_000) for b in (0, 9, 10**11) for w in (0, 10**12)}
    assert {len(i) for i in ids} == {40}
