"""One private full stack (Kafka, Redis, Spark job, ingest, fanout) for the fault scenarios.

The stack lives in a temporary directory on free fixed ports, so it never meets a developer's
``make up`` stack or the other tests' services; only the jar cache is shared (a symlink), so
nothing is downloaded twice. Each scenario may kill a part; before the next one starts, the
stack's own ``up`` brings back anything still missing. Everything is stopped at the end, also
when a scenario fails.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack
from tests.faults._report import ROWS, Row, table
from tests.faults._swarms import SwarmLog
from tests.support.ports import fixed_ports
from tests.support.services import JAR_CACHE

#: Small producer queues, so a broker outage turns into 503s within seconds (the default queue
#: holds all of a 15 s outage's events in memory, and the senders would never be refused), and
#: /readyz answering from a fresh probe, so recovery shows at once.
TUNING = {
    "EMOSTREAM_PRODUCER_QUEUE_MAX_MESSAGES": "1000",
    "EMOSTREAM_READINESS_CACHE_S": "0",
}


class FaultStack(LocalStack):
    """The local stack with the fault tests' settings added to every part's environment."""

    def child_env(self) -> dict[str, str]:
        """The stack's environment plus :data:`TUNING`."""
        return {**super().child_env(), **TUNING}

    @property
    def ingest_url(self) -> str:
        """Base URL of ingest."""
        return f"http://127.0.0.1:{self.settings.ingest_port}"

    @property
    def fanout_url(self) -> str:
        """Base URL of fanout."""
        return f"http://127.0.0.1:{self.settings.fanout_port}"

    @property
    def ingest_metrics_url(self) -> str:
        """/metrics of ingest, on its metrics port."""
        return f"http://127.0.0.1:{self.settings.ingest_metrics_port}/metrics"


class Say:
    """Collects the stack's progress lines, to show them when something goes wrong."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture(scope="session")
def say() -> Say:
    """Where the stack reports its progress."""
    return Say()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, say: Say) -> Iterator[FaultStack]:
    """The private stack, started once and stopped at the end of the run."""
    root = tmp_path_factory.mktemp("fault-stack")
    JAR_CACHE.mkdir(parents=True, exist_ok=True)
    (root / "jars").symlink_to(JAR_CACHE, target_is_directory=True)
    ports = fixed_ports(9)
    kafka, controller, redis, ingest, upstream, fanout = ports[:6]
    ingest_metrics, fanout_metrics, aggregate_metrics = ports[6:]
    settings = StackSettings(
        stack_dir=root,
        kafka_port=kafka,
        kafka_controller_port=controller,
        redis_port=redis,
        ingest_port=ingest,
        ingest_upstream_port=upstream,
        fanout_port=fanout,
        ingest_metrics_port=ingest_metrics,
        fanout_metrics_port=fanout_metrics,
        aggregate_metrics_port=aggregate_metrics,
        ready_timeout_s=300,
    )
    local = FaultStack(settings)
    try:
        local.up(say)
        yield local
    finally:
        local.down(say)


@pytest.fixture(scope="session")
def swarm_log(stack: FaultStack) -> Iterator[SwarmLog]:
    """Every swarm the aggregation publishes during the run."""
    log = SwarmLog(stack.kafka_bootstrap, stack.settings.swarms_topic).start()
    try:
        yield log
    finally:
        log.stop()


@pytest.fixture
def healed(stack: FaultStack, say: Say) -> FaultStack:
    """The stack with every part running and ready (a failed scenario may have left one down)."""
    stack.up(say)
    return stack


@pytest.fixture(scope="session")
def fault_rows(request: pytest.FixtureRequest) -> list[Row]:
    """The fault table, filled by the scenarios and printed at the end of the run."""
    return request.config.stash.setdefault(ROWS, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault table after the test results."""
    rows = terminalreporter.config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("fault tests: events accepted vs. counted, recovery times")
    for line in table(rows):
        terminalreporter.write_line(line)


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a part's log, for failure messages."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
