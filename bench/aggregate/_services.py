"""A Kafka broker and a Redis for one benchmark run: the ones named, or started here.

The broker runs from the local stack's Maven jars on free loopback ports and is stopped (with
its data) at the end, so the run's millions of events leave nothing behind.
"""

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from emostream.localstack import checks
from emostream.localstack.jars import kafka_broker_jars
from emostream.localstack.kafka import KafkaBroker, kafka_ready
from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(ready: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(0.25)


@contextmanager
def kafka(given: str | None, procs: ProcessDir, workdir: Path) -> Iterator[str]:
    """Bootstrap servers of a broker: ``given``, or one started here for the block."""
    if given:
        yield given
        return
    stack = StackSettings()
    broker = KafkaBroker(
        jars=kafka_broker_jars(ROOT / stack.stack_dir / "jars", stack.kafka_version),
        data_dir=workdir / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="512m",
    )
    broker.prepare()
    procs.start("kafka", broker.command(), {}, ROOT)
    try:
        _wait(lambda: kafka_ready(broker.bootstrap), "Kafka broker")
        yield broker.bootstrap
    finally:
        procs.stop("kafka", grace_s=20)


@contextmanager
def redis(given: str | None, procs: ProcessDir, workdir: Path) -> Iterator[str]:
    """URL of a Redis (the sink keeps the latest snapshots there): ``given``, or one started."""
    if given:
        yield given
        return
    server = checks.require_program("redis-server", "apt-get install -y redis-server")
    port = free_port()
    data = workdir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--save", ""]
    procs.start("redis", cmd, {}, ROOT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait(lambda: checks.redis_ready(url), "Redis")
        yield url
    finally:
        procs.stop("redis", grace_s=10)
