"""A Kafka broker and a Redis for one benchmark run: the ones named, or started here.

A broker or Redis named by ``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``EMOSTREAM_REDIS_URL`` is used
as it is; otherwise one is started on free loopback ports for the run (the broker from the local
stack's Maven jars) and stopped, with its data, at the end.
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

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(ready: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    """Poll ``ready`` until it holds, or give up with an error naming ``what``."""
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
        wait_for(lambda: kafka_ready(broker.bootstrap), "Kafka broker")
        yield broker.bootstrap
    finally:
        procs.stop("kafka", grace_s=20)


@contextmanager
def redis(given: str | None, procs: ProcessDir, workdir: Path) -> Iterator[str]:
    """URL of a Redis: ``given``, or one started here for the block."""
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
        wait_for(lambda: checks.redis_ready(url), "Redis")
        yield url
    finally:
        procs.stop("redis", grace_s=10)
