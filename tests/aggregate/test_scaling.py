"""The backlog autoscaler's rules: HPA arithmetic, stabilisation, and when executors change."""

import math
from dataclasses import dataclass, field

import pytest

from emostream.aggregate._scaling import (
    BacklogPolicy,
    ExecutorAutoscaler,
    ScalingRules,
    backlog_seconds,
)

RULES = ScalingRules(
    minimum=1, maximum=4, target_backlog_s=10, scale_up_window_s=15, scale_down_window_s=60
)


def test_backlog_seconds_is_records_over_rate() -> None:
    """No backlog is zero seconds; a backlog without a measured rate is unbounded."""
    assert backlog_seconds(0, 0.0) == 0
    assert backlog_seconds(50_000, 10_000.0) == 5
    assert math.isinf(backlog_seconds(10, 0.0))


@pytest.mark.parametrize(
    ("current", "signal_s", "wanted"),
    [(1, 0, 1), (1, 10, 1), (1, 10.1, 2), (1, 25, 3), (2, 25, 4), (1, 1000, 4), (3, 2, 1)],
)
def test_raw_count_is_hpa_arithmetic_within_bounds(
    current: int, signal_s: float, wanted: int
) -> None:
    """ceil(current * signal / target), never below the minimum nor above the maximum."""
    assert BacklogPolicy(RULES).raw(current, signal_s) == wanted


def test_scale_up_needs_the_whole_up_window_to_agree() -> None:
    """A spike that the next readings contradict within the up-window adds no executor."""
    policy = BacklogPolicy(RULES)
    assert policy.decide(0, 1, 5) == 1
    assert policy.decide(5, 1, 40) == 1  # the reading 5 s ago still wants 1
    assert policy.decide(25, 1, 40) == 4  # 20 s later every reading in the window wants 4


def test_scale_down_waits_for_the_down_window() -> None:
    """Executors go only once no reading of the last down-window wanted them."""
    policy = BacklogPolicy(RULES)
    assert policy.decide(0, 4, 40) == 4
    assert policy.decide(30, 4, 0) == 4
    assert policy.decide(59, 4, 0) == 4
    assert policy.decide(61, 4, 0) == 1


@dataclass
class FakeExecutors:
    """Executors that register as soon as they are asked for (a cluster with room)."""

    ids: list[str] = field(default_factory=lambda: ["1"])
    calls: list[tuple[str, object]] = field(default_factory=list)

    def registered(self) -> list[str]:
        """The registered executor ids."""
        return list(self.ids)

    def set_total(self, total: int) -> bool:
        """Register new executors up to ``total`` at once."""
        self.calls.append(("set_total", total))
        next_id = max((int(i) for i in self.ids), default=0) + 1
        while len(self.ids) < total:
            self.ids.append(str(next_id))
            next_id += 1
        return True

    def release(self, ids: list[str]) -> bool:
        """Remove the executors ``ids``."""
        self.calls.append(("release", ids))
        self.ids = [i for i in self.ids if i not in ids]
        return True


def _autoscaler(
    executors: FakeExecutors, backlog: list[tuple[int, float]], idle: list[bool]
) -> ExecutorAutoscaler:
    rules = ScalingRules(
        minimum=1, maximum=3, target_backlog_s=10, scale_up_window_s=0, scale_down_window_s=0
    )
    return ExecutorAutoscaler(
        executors,
        BacklogPolicy(rules),
        backlog=lambda: backlog[0],
        between_batches=lambda: idle[0],
        period_s=1,
    )


def test_a_backlog_adds_executors_and_its_end_removes_the_newest_between_batches() -> None:
    """Up at once to the maximum; down only between micro-batches, newest executors first."""
    executors = FakeExecutors(ids=["1"])
    backlog, idle = [(1_000_000, 10_000.0)], [False]
    scaler = _autoscaler(executors, backlog, idle)
    assert scaler.step(0) == 3
    assert executors.registered() == ["1", "2", "3"]
    backlog[0] = (0, 10_000.0)
    assert scaler.step(1) == 3  # a micro-batch is running: nothing is removed mid-batch
    idle[0] = True
    assert scaler.step(2) == 1
    assert ("release", ["2", "3"]) in executors.calls
    assert executors.registered() == ["1"]


class FullCluster(FakeExecutors):
    """A cluster with no room: executors asked for stay pending."""

    def set_total(self, total: int) -> bool:
        """Take the request; register nothing."""
        self.calls.append(("set_total", total))
        return True


def test_pending_executors_count_as_current() -> None:
    """Executors asked for but not yet registered are not asked for again."""
    executors = FullCluster(ids=["1"])
    scaler = _autoscaler(executors, [(1_000_000, 10_000.0)], [True])
    scaler.step(0)
    scaler.step(1)
    assert executors.calls == [("set_total", 3)]
