"""A Kafka broker and a Redis for one benchmark run: the ones named, or started here.

A broker or Redis named by ``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``EMOSTREAM_REDIS_URL`` is used
as it is; otherwise one is started on free loopback ports for the run (the broker from the local
stack's Maven jars, as the tests start theirs: tests.support.services) and stopped, with its
data, at the end.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import ROOT, local_broker, start_broker, start_redis

from emostream.localstack.jars import kafka_broker_jars
from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings


@contextmanager
def kafka(given: str | None, procs: ProcessDir, workdir: Path) -> Iterator[str]:
    """Bootstrap servers of a broker: ``given``, or one started here for the block."""
    if given:
        yield given
        return
    stack = StackSettings()
    broker = local_broker(
        workdir / "kafka",
        jars=kafka_broker_jars(ROOT / stack.stack_dir / "jars", stack.kafka_version),
        heap="512m",
    )
    try:
        yield start_broker(procs, broker, env={})
    finally:
        procs.stop("kafka", grace_s=20)


@contextmanager
def redis(given: str | None, procs: ProcessDir, workdir: Path) -> Iterator[str]:
    """URL of a Redis: ``given``, or one started here for the block."""
    if given:
        yield given
        return
    try:
        yield start_redis(procs, workdir / "redis", env={})
    finally:
        procs.stop("redis", grace_s=10)
