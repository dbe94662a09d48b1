"""Faults under load: nothing accepted is lost and nothing is counted twice.

Each scenario posts reactions through the real HTTP API to streams of its own, injects one
fault into the private stack, brings the part back the way an operator (or gunicorn) would,
and then waits for the aggregation to catch up. The referee is the ``swarms`` topic: per stream
and emoji, the sum over windows of each window's final count must equal the events that got a
2xx. Recovery times are recorded for the table printed at the end, never asserted.
"""

import contextlib
import functools
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from emostream.localstack.stack import Part
from tests.faults._report import Row
from tests.faults._swarms import SwarmLog
from tests.faults._traffic import Traffic
from tests.faults._viewers import Viewer
from tests.faults.conftest import FaultStack, Say, log_tail
from tests.support.waiting import poll_until, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

#: Events per second over all of a scenario's streams: modest, so the faults, not the load,
#: decide what happens.
RATE = 300.0
#: Generous bounds for a busy two-core machine; they only bound waiting, nothing is timed.
CATCH_UP_S = 300.0
RECOVER_S = 300.0
#: How often a wait checks again.
POLL_S = 0.5


@dataclass
class Scenario:
    """One fault's streams, senders and timestamps."""

    name: str
    stack: FaultStack
    swarm_log: SwarmLog
    streams: list[str]
    traffic: Traffic
    started: float = 0.0
    fault_at: float = 0.0
    restarted: list[str] | None = None

    def run(self, fault: Callable[[], None], *, fault_after_s: float, send_s: float) -> None:
        """Send for ``send_s`` seconds with ``fault`` injected ``fault_after_s`` seconds in, and
        keep sending for at least 10 s after the fault step returned."""
        self.started = time.time()
        self.traffic.start()
        try:
            wait_until(
                "first 2xx", lambda: self.traffic.total_accepted > 0, RECOVER_S, interval_s=POLL_S
            )
            time.sleep(max(0.0, self.started + fault_after_s - time.time()))
            pids = self.pids()
            self.fault_at = time.time()
            fault()
            back = time.time()
            wait_until(
                "2xx after the fault",
                lambda: self.traffic.accepted_since(back) > 0,
                RECOVER_S,
                interval_s=POLL_S,
            )
            time.sleep(max(self.started + send_s - time.time(), 10.0))
        finally:
            self.traffic.stop()
        after = self.pids()
        self.restarted = sorted(name for name, pid in pids.items() if after.get(name) != pid)

    def pids(self) -> dict[str, int | None]:
        """The pid of every part of the stack."""
        return {p.name: self.stack.procs.running_pid(p.name) for p in self.stack.parts}


def _part(stack: FaultStack, name: str) -> Part:
    return next(p for p in stack.parts if p.name == name)


def _scenario(name: str, stack: FaultStack, swarm_log: SwarmLog) -> Scenario:
    tag = uuid.uuid4().hex[:8]
    streams = [f"fault-{tag}-{n}" for n in range(3)]
    return Scenario(name, stack, swarm_log, streams, Traffic(stack.ingest_url, streams, RATE))


def _kill_group(stack: FaultStack, part: str) -> None:
    """kill -9 a part's whole process group (as the OOM killer or a lost node would), and reap
    it so the stack sees it gone."""
    pid = stack.procs.running_pid(part)
    assert pid is not None, f"{part} is not running"
    os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # already reaped
        os.waitpid(pid, 0)
    wait_until(f"{part}'s processes gone", lambda: not _live_members(pid), 60, interval_s=POLL_S)


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields after the command name) of every process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()


def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (an orphan's zombie may linger)."""
    return [pid for pid, f in _proc_stats() if int(f[2]) == pgid and f[0] != "Z"]


def _workers(master: int) -> list[int]:
    """The live child processes of ``master`` (gunicorn's workers)."""
    return [pid for pid, f in _proc_stats() if int(f[1]) == master and f[0] != "Z"]


def _verify(scenario: Scenario, rows: list[Row]) -> None:
    """Wait for every part to be ready and the aggregation to catch up, record the row, then
    check that the counts on ``swarms`` equal what got a 2xx."""
    stack, log, streams, traffic = (
        scenario.stack,
        scenario.swarm_log,
        scenario.streams,
        scenario.traffic,
    )
    # One bound for all the parts together; a part still not ready is reported, not waited for.
    deadline = time.monotonic() + RECOVER_S
    not_ready = [
        part.name
        for part in stack.parts
        if not poll_until(part.ready, deadline - time.monotonic(), interval_s=POLL_S)
    ]
    accepted = Counter(traffic.accepted)
    poll_until(lambda: log.counted(streams) == accepted, CATCH_UP_S, interval_s=1)
    time.sleep(5)  # anything counted twice would still be arriving
    counted = log.counted(streams)
    first_swarm = log.first_counting_after(streams, scenario.fault_at)
    refused = {s: traffic.count(s) for s in (503, 429, 0) if traffic.count(s)}
    extra = ", ".join(f"{n}x {'conn. error' if s == 0 else s}" for s, n in refused.items())
    if traffic.uncertain:
        extra += f", {traffic.uncertain} uncertain"
    rows.append(
        Row(
            scenario.name,
            sum(accepted.values()),
            sum(counted.values()),
            traffic.recovery_s(scenario.fault_at),
            None if first_swarm is None else first_swarm - scenario.fault_at,
            extra.strip(", "),
        )
    )
    assert traffic.unexpected == [], f"unexpected answers: {traffic.unexpected[:5]}"
    assert not_ready == [], f"not ready again: {not_ready}\n" + "\n".join(
        f"--- {n}\n{log_tail(stack.procs.log_file(n))}" for n in not_ready
    )
    assert log.inconsistencies(streams) == []
    if counted != accepted:
        late = _metric(stack, "emostream_aggregate_late_rows_total")
        diff = {k: counted[k] - accepted[k] for k in accepted.keys() | counted.keys()}
        pytest.fail(
            f"{scenario.name}: counted {sum(counted.values())} of {sum(accepted.values())} "
            f"accepted events (counted - accepted per (stream, emoji): "
            f"{ {k: d for k, d in diff.items() if d} }); uncertain requests: "
            f"{traffic.uncertain}; aggregate late rows so far: {late}"
        )


def _stop_and_bring_back(
    scenario: Scenario,
    part: str,
    stop: Callable[[], object],
    say: Say,
    rows: list[Row],
    *,
    after_s: float,
    send_s: float,
) -> None:
    """Run ``scenario`` with ``part`` taken down by ``stop`` ``after_s`` seconds in and brought
    back by the stack's own ``up``; then only ``part`` was restarted and :func:`_verify` holds."""

    def fault() -> None:
        stop()
        scenario.stack.up(say)

    scenario.run(fault, fault_after_s=after_s, send_s=send_s)
    assert scenario.restarted == [part], f"restarted: {scenario.restarted}"
    _verify(scenario, rows)


def _metric(stack: FaultStack, name: str) -> str:
    url = f"http://127.0.0.1:{stack.settings.aggregate_metrics_port}/metrics"
    try:
        text = requests.get(url, timeout=10).text
    except requests.RequestException as exc:
        return f"(metrics unavailable: {exc})"
    return "; ".join(line for line in text.splitlines() if line.startswith(name)) or "(none)"


def test_kafka_broker_killed_for_15_s(
    healed: FaultStack, swarm_log: SwarmLog, say: Say, fault_rows: list[Row]
) -> None:
    """kill -9 the broker for 15 s mid-send: 503s meanwhile, then every 2xx counted once."""

    def kill_for_15_s() -> None:
        _kill_group(healed, "kafka")
        time.sleep(15)

    scenario = _scenario("Kafka broker kill -9, down 15 s", healed, swarm_log)
    _stop_and_bring_back(scenario, "kafka", kill_for_15_s, say, fault_rows, after_s=15, send_s=60)


def test_spark_job_killed_and_restarted(
    healed: FaultStack, swarm_log: SwarmLog, say: Say, fault_rows: list[Row]
) -> None:
    """kill -9 the aggregation mid-send, start it again: it resumes from its checkpoint."""
    scenario = _scenario("Spark job kill -9, restarted", healed, swarm_log)
    kill = functools.partial(_kill_group, healed, "aggregate")
    _stop_and_bring_back(scenario, "aggregate", kill, say, fault_rows, after_s=10, send_s=35)


def test_redis_restarted(
    healed: FaultStack, swarm_log: SwarmLog, say: Say, fault_rows: list[Row]
) -> None:
    """Redis stops and starts again mid-send: ingest and the aggregation carry on."""
    scenario = _scenario("Redis restart", healed, swarm_log)
    stop = functools.partial(healed.procs.stop, "redis", grace_s=30)
    _stop_and_bring_back(scenario, "redis", stop, say, fault_rows, after_s=10, send_s=30)


def test_fanout_worker_killed_under_viewers(
    healed: FaultStack, swarm_log: SwarmLog, fault_rows: list[Row]
) -> None:
    """kill -9 the fanout worker under SSE viewers: each resumes with no gap, no duplicate."""
    scenario = _scenario("fanout worker kill -9 (2 viewers/stream)", healed, swarm_log)
    viewers = [Viewer(healed.fanout_url, s).start() for s in scenario.streams for _ in range(2)]
    master = healed.procs.running_pid("fanout")
    assert master is not None
    killed: list[int] = []

    def fault() -> None:
        workers = _workers(master)
        assert workers, "fanout has no worker"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        killed.extend(workers)
        wait_until(
            "a new fanout worker",
            lambda: bool(set(_workers(master)) - set(killed)) and _part(healed, "fanout").ready(),
            RECOVER_S,
            interval_s=POLL_S,
        )

    try:
        wait_until(
            "viewers connected", lambda: all(v.connections for v in viewers), 120, interval_s=POLL_S
        )
        scenario.run(fault, fault_after_s=10, send_s=30)
        assert scenario.restarted == [], f"restarted: {scenario.restarted}"
        _verify(scenario, fault_rows)
        finals = swarm_log.finals(scenario.streams)
        kafka_ids = {
            s: sorted({f.swarm["id"] for f in swarm_log.of([s])}) for s in scenario.streams
        }
        wait_until(
            lambda: (
                "the viewers to receive their stream's last swarm: "
                + "; ".join(
                    f"{v.stream}: {len(v.ids)} of {len(kafka_ids[v.stream])} swarms, "
                    f"{len(v.connections)} connections, errors {v.errors[-3:]}"
                    for v in viewers
                )
            ),
            lambda: all(v.ids[-1:] == kafka_ids[v.stream][-1:] for v in viewers),
            CATCH_UP_S,
            interval_s=POLL_S,
        )
    finally:
        for v in viewers:
            v.stop()
    resumed = [v.first_after(scenario.fault_at) for v in viewers]
    if all(t is not None for t in resumed):
        fault_rows[-1].recovery_swarm_s = (
            max(t for t in resumed if t is not None) - scenario.fault_at
        )
    resumed_viewers = sum(1 for v in viewers if len(v.connections) >= 2)
    fault_rows[-1].notes = "; ".join(
        x
        for x in (f"{resumed_viewers} of {len(viewers)} viewers resumed", fault_rows[-1].notes)
        if x
    )
    for v in viewers:
        assert len(v.connections) >= 2, f"{v.stream}: the viewer was never disconnected"
        assert all(a < b for a, b in zip(v.ids, v.ids[1:], strict=False)), (
            f"{v.stream}: ids not strictly increasing (a duplicate or a step back)"
        )
        assert v.ids == kafka_ids[v.stream], f"{v.stream}: the viewer missed swarms"
        mine = {w: f["counts"] for (s, w), f in finals.items() if s == v.stream}
        assert v.finals() == mine, f"{v.stream}: final counts differ from swarms"


def test_ingest_sigterm_then_started_again(
    healed: FaultStack, swarm_log: SwarmLog, say: Say, fault_rows: list[Row]
) -> None:
    """SIGTERM ingest under load, start it again: what got a 2xx before it stopped is counted."""
    scenario = _scenario("ingest SIGTERM, started again", healed, swarm_log)
    stop = functools.partial(healed.procs.stop, "ingest", grace_s=60)
    _stop_and_bring_back(scenario, "ingest", stop, say, fault_rows, after_s=10, send_s=35)
