"""The aggregation's executors follow the ``reactions`` backlog, as an HPA follows its metric.

Spark's dynamic allocation adds executors for *tasks* that wait, not for *records* that wait,
and removes them only after they have sat idle past its timeouts. A streaming query's
micro-batches are capped by ``maxOffsetsPerTrigger`` and finish within seconds however large the
backlog; measured on a cluster, dynamic allocation started its maximum during the job's warm-up,
with no backlog at all, and released them minutes later (docs/autoscaling.md). The driver
therefore runs its own autoscaler (:class:`ExecutorAutoscaler`): every period it turns the
backlog into seconds of work at the rate the job has shown it can process, and sets the executor
count the way an HPA sets replicas,

    desired = ceil(current * backlog_seconds / target_seconds), within [minimum, maximum],

with HPA's stabilisation windows: a scale-up takes the lowest count wanted over the (short)
up-window, a scale-down the highest over the (long) down-window, so a brief spike adds nothing
and a brief lull removes nothing. Executors are added through Spark's executor request API and
removed between micro-batches (their window state is reloaded from the checkpoint elsewhere).
"""

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Gauge

log = logging.getLogger(__name__)

DESIRED = Gauge(
    "emostream_aggregate_executors_desired",
    "Executors the backlog autoscaler wants (after its stabilisation windows).",
)
CURRENT = Gauge("emostream_aggregate_executors", "Executors registered with the driver.")
SIGNAL = Gauge(
    "emostream_aggregate_backlog_seconds",
    "The autoscaler's signal: the reactions backlog in seconds at the measured processing rate.",
)
TARGET = Gauge(
    "emostream_aggregate_backlog_target_seconds",
    "The autoscaler's target: seconds of backlog the current executors may hold.",
)


@dataclass(frozen=True)
class ScalingRules:
    """Bounds, target and stabilisation of the backlog autoscaler."""

    minimum: int
    maximum: int
    target_backlog_s: float
    scale_up_window_s: float
    scale_down_window_s: float


def backlog_seconds(records: int, rate: float) -> float:
    """How long the backlog takes to drain at ``rate`` records/s (infinite without a rate)."""
    if records <= 0:
        return 0.0
    return records / rate if rate > 0 else math.inf


class BacklogPolicy:
    """Decides the executor count from the backlog; pure, so the rules can be tested alone."""

    def __init__(self, rules: ScalingRules) -> None:
        self.rules = rules
        self._wanted: deque[tuple[float, int]] = deque()

    def raw(self, current: int, signal_s: float) -> int:
        """The count the signal asks for now, before stabilisation."""
        r = self.rules
        if math.isinf(signal_s):
            return r.maximum
        wanted = math.ceil(max(current, 1) * signal_s / r.target_backlog_s)
        return min(max(wanted, r.minimum), r.maximum)

    def decide(self, now: float, current: int, signal_s: float) -> int:
        """The stabilised count: up to the lowest wanted over the up-window, down to the highest
        wanted over the down-window, else ``current``."""
        r = self.rules
        self._wanted.append((now, self.raw(current, signal_s)))
        horizon = now - max(r.scale_up_window_s, r.scale_down_window_s)
        while self._wanted and self._wanted[0][0] < horizon:
            self._wanted.popleft()
        up = min(n for t, n in self._wanted if t >= now - r.scale_up_window_s)
        down = max(n for t, n in self._wanted if t >= now - r.scale_down_window_s)
        if up > current:
            return up
        if down < current:
            return down
        return current


class Executors(Protocol):
    """The executors of the running Spark application, as the autoscaler controls them."""

    def registered(self) -> list[str]:
        """Ids of the executors registered with the driver now."""

    def set_total(self, total: int) -> bool:
        """Ask the cluster manager for ``total`` executors, pending ones included."""

    def release(self, ids: list[str]) -> bool:
        """Stop the executors ``ids`` for good (the total goes down with them)."""


class SparkExecutors:
    """:class:`Executors` through the driver's SparkContext (coarse-grained backends: k8s).

    These are Spark's developer API for an application's own executor allocation; they refuse
    to work beside dynamic allocation, which the chart turns off when this autoscaler is on.
    """

    def __init__(self, spark_context: Any) -> None:
        self._jvm = spark_context._jvm  # the py4j gateway of the driver
        self._sc = spark_context._jsc.sc()  # the JVM SparkContext

    def registered(self) -> list[str]:
        """Ids of the registered executors (the driver itself is not one)."""
        ids = self._sc.getExecutorIds()
        return [str(ids.apply(i)) for i in range(ids.size())]

    def set_total(self, total: int) -> bool:
        """SparkContext.requestTotalExecutors: a later call overrides an earlier one."""
        scala_map = getattr(self._jvm.scala.collection.immutable, "Map$")  # the companion object
        no_locality = getattr(scala_map, "MODULE$").empty()
        return bool(self._sc.requestTotalExecutors(total, 0, no_locality))

    def release(self, ids: list[str]) -> bool:
        """SparkContext.killExecutors: removes them and lowers the total (no replacements)."""
        java_ids = self._jvm.java.util.ArrayList()
        for executor_id in ids:
            java_ids.add(executor_id)
        seq = self._jvm.scala.jdk.javaapi.CollectionConverters.asScala(java_ids).toSeq()
        return bool(self._sc.killExecutors(seq))


class ExecutorAutoscaler:
    """Every ``period_s``: read the backlog and rate, decide, add or remove executors.

    ``backlog`` returns (records behind the latest offsets, records/s the job processes);
    ``between_batches`` tells whether no micro-batch is running, the only time executors are
    removed. Executors requested but not yet registered count as current, so they are not
    requested twice.
    """

    def __init__(
        self,
        executors: Executors,
        policy: BacklogPolicy,
        backlog: Callable[[], tuple[int, float]],
        between_batches: Callable[[], bool],
        period_s: float,
    ) -> None:
        self._executors = executors
        self._policy = policy
        self._backlog = backlog
        self._between_batches = between_batches
        self._period_s = period_s
        self._total = max(policy.rules.minimum, len(executors.registered()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="executor-autoscaler", daemon=True)
        TARGET.set(policy.rules.target_backlog_s)

    def start(self) -> None:
        """Start deciding in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop deciding (the executors stay as they are)."""
        self._stop.set()
        self._thread.join(timeout=self._period_s + 10)

    def step(self, now: float) -> int:
        """One decision: returns the executor total after acting on it."""
        records, rate = self._backlog()
        signal_s = backlog_seconds(records, rate)
        SIGNAL.set(signal_s if math.isfinite(signal_s) else -1)
        registered = self._executors.registered()
        desired = self._policy.decide(now, max(self._total, len(registered)), signal_s)
        DESIRED.set(desired)
        if desired > self._total:
            if self._executors.set_total(desired):
                log.info("adding executors", extra={"to": desired, "backlog_s": signal_s})
                self._total = desired
        elif desired < self._total and self._between_batches():
            # The newest executors go first: the oldest hold most of the cached window state.
            leaving = sorted(registered, key=_executor_order)[desired:]
            if (not leaving or self._executors.release(leaving)) and self._executors.set_total(
                desired
            ):
                log.info("removing executors", extra={"to": desired, "backlog_s": signal_s})
                self._total = desired
        # Executors come and go asynchronously: the count read for this step is as current as any.
        CURRENT.set(len(registered))
        return self._total

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.step(time.monotonic())
            except Exception:
                # Scaling must never take the job down with it: log and try again next period.
                log.exception("executor autoscaling step failed")


def _executor_order(executor_id: str) -> tuple[bool, int, str]:
    """Spark numbers executors 1, 2, ...: oldest first, then any non-numeric id."""
    numeric = executor_id.isdigit()
    return (not numeric, int(executor_id) if numeric else 0, executor_id)
