"""Kafka goes away while reactions keep coming, then comes back.

The test runs a broker of its own (the session's broker is shared with every other test, so it
must never be stopped), stops it while senders post, and starts it again on the same ports and
data directory. Ingest must answer 503 (never a 2xx) for what it cannot enqueue, recover by
itself, and in the end every event that got a 2xx must be in Kafka exactly once.
"""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from emostream.localstack.jars import kafka_broker_jars
from emostream.localstack.kafka import KafkaBroker, ensure_topics
from emostream.localstack.process import ProcessDir
from tests.ingest.conftest import read_topic, serve
from tests.ingest.test_server import Sender
from tests.support.services import JAR_CACHE, KAFKA_VERSION, local_broker, start_broker
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@dataclass
class OwnBroker:
    """A broker this module may stop and start again."""

    broker: KafkaBroker
    procs: ProcessDir
    topic: str

    @property
    def bootstrap(self) -> str:
        """Its bootstrap servers."""
        return self.broker.bootstrap

    def start(self) -> None:
        """Start it (again, on the same ports and data) and wait until it answers."""
        start_broker(
            self.procs,
            self.broker,
            env=os.environ,
            name="outage-kafka",
            what="the outage test's broker",
        )

    def stop(self) -> None:
        """Stop it (SIGTERM, as an orchestrator would)."""
        self.procs.stop("outage-kafka", grace_s=30)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    """A single-node broker on free ports, with a six-partition reactions topic."""
    root = tmp_path_factory.mktemp("outage")
    broker = local_broker(
        root / "kafka", jars=kafka_broker_jars(JAR_CACHE, KAFKA_VERSION), heap="256m"
    )
    own = OwnBroker(broker, ProcessDir(root / "run", root / "logs"), "outage-reactions")
    own.start()
    ensure_topics(own.bootstrap, {own.topic: 6})
    try:
        yield own
    finally:
        own.stop()


def test_broker_outage_is_503_then_recovers_and_loses_nothing(
    own_broker: OwnBroker, service_env: dict[str, str], tmp_path: Path
) -> None:
    """While Kafka is down: 503s once the queue is full, never a wrong 2xx; then it recovers."""
    stream = f"outage-{uuid.uuid4().hex[:8]}"
    env = {
        **service_env,
        "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap,
        "EMOSTREAM_REACTIONS_TOPIC": own_broker.topic,
        "EMOSTREAM_WORKERS": "2",
        "EMOSTREAM_THREADS": "2",
        # A small queue fills within a second of the broker going away.
        "EMOSTREAM_PRODUCER_QUEUE_MAX_MESSAGES": "500",
        "EMOSTREAM_MAX_BATCH": "10",
        "EMOSTREAM_RATE_LIMIT_BURST": "10",
        "EMOSTREAM_PRODUCE_RETRY_S": "0.05",
        "EMOSTREAM_READINESS_CACHE_S": "0",
    }
    with serve(env, tmp_path / "gunicorn.log") as server:
        sender = Sender(f"{server.url}/v1/streams/{stream}/reactions").start(threads=2)
        wait_until("events accepted before the outage", lambda: len(sender.accepted) >= 200, 30)

        own_broker.stop()
        wait_until("503s while the broker is down", lambda: sender.count(503) >= 20, 60)
        during = len(sender.accepted)
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 503

        own_broker.start()
        wait_until(
            "2xx again after the broker is back", lambda: len(sender.accepted) >= during + 500, 90
        )
        sender.stop()
        assert requests.get(f"{server.url}/readyz", timeout=10).status_code == 200
        assert server.stop() == 0

    assert (sender.unexpected, sender.failed) == ([], 0)
    found = read_topic(own_broker.bootstrap, own_broker.topic, stream, len(sender.accepted), 60)
    users = [m.reaction.user_id for m in found]
    assert len(users) == len(set(users)), "an event is in Kafka more than once"
    assert set(users) == sender.accepted
