"""The latency benchmark follows each reaction through the stack exactly (pure logic)."""

import pytest
from bench.latency._breakdown import BatchIndex, follow, swarm_key
from bench.latency._senders import USERS_PER_THREAD, Sent

WINDOW_MS = 2000
EPOCH = 1_764_000_000_000


def _id(batch: int, window: int) -> str:
    return f"{EPOCH}.{batch:012d}-{window}"


def test_a_swarm_id_names_its_batch_and_window() -> None:
    assert swarm_key("s", _id(42, 4000)) == ("s", 42, 4000)


def test_an_offset_belongs_to_the_first_batch_that_read_past_it() -> None:
    index = BatchIndex({7: (100, {0: 10, 1: 5}), 8: (600, {0: 10, 1: 9}), 9: (1100, {0: 12, 1: 9})})
    assert index.batch_of(0, 9) == 7
    assert index.batch_of(0, 10) == 9  # batch 8 read nothing new on partition 0
    assert index.batch_of(1, 5) == 8
    assert index.batch_of(1, 9) is None  # not read yet


def test_the_users_of_a_batch_cycle_through_the_threads_ids() -> None:
    batch = Sent("s", 0, "t0u", USERS_PER_THREAD - 1, 2, 0.0, 0.0, 202)
    assert batch.users() == [f"t0u{USERS_PER_THREAD - 1}", "t0u0"]


def test_each_reaction_is_timed_at_every_boundary_it_reached() -> None:
    ts = 10_000  # window 10,000-12,000
    sent = [
        Sent("s", ts, "u", 0, 2, 10_000.0, 10_004.0, 202),
        Sent("s", ts + 1, "v", 0, 1, 10_001.0, 10_005.0, 503),
        Sent("s", 9_000, "w", 0, 1, 9_000.0, 9_001.0, 202),  # before the measured period
    ]
    reactions = [("u0", ts, 0, 3, 10_010.0), ("u1", ts, 1, 0, 10_012.0)]
    batches = {5: (9_500, {0: 3, 1: 0}), 6: (10_100, {0: 4, 1: 1})}
    swarms = [("s", _id(6, 10_000), 10_300, 10_310.0)]
    viewers = [("s", _id(6, 10_000), 10_330.0), ("s", _id(6, 10_000), 10_900.0)]
    paths = follow(
        sent, reactions, batches, swarms, viewers, window_ms=WINDOW_MS, since_ms=10_000.0
    )
    assert paths.followed == 2
    assert paths.refused == 1
    assert not paths.lost
    assert paths.stages["answered"] == [4.0, 4.0]
    assert paths.stages["in Kafka"] == [6.0, 8.0]
    assert paths.stages["batch started"] == [90.0, 88.0]
    assert paths.stages["swarm emitted"] == [200.0, 200.0]
    assert paths.stages["swarm in Kafka"] == [10.0, 10.0]
    assert paths.stages["at the viewer"] == [20.0, 20.0]  # the first arrival of the swarm
    assert paths.since_send["at the viewer"] == [330.0, 330.0]


@pytest.mark.parametrize(
    ("reactions", "swarms", "viewers", "where"),
    [
        ([], [], [], "in Kafka"),
        ([("u0", 0, 0, 9, 1.0)], [], [], "batch started"),
        ([("u0", 0, 0, 0, 1.0)], [], [], "swarm emitted"),
        ([("u0", 0, 0, 0, 1.0)], [("s", _id(1, 0), 5, 6.0)], [], "at the viewer"),
    ],
)
def test_a_reaction_lost_on_the_way_is_counted_where_it_stopped(
    reactions: list[tuple[object, ...]],
    swarms: list[tuple[object, ...]],
    viewers: list[tuple[object, ...]],
    where: str,
) -> None:
    sent = [Sent("s", 0, "u", 0, 1, 0.0, 1.0, 202)]
    batches = {1: (2, {0: 1})}
    paths = follow(sent, reactions, batches, swarms, viewers, window_ms=WINDOW_MS, since_ms=0.0)
    assert paths.lost == {where: 1}
