"""Helpers for streaming tests that run their own queries in the session's Spark.

Each scenario gets its own topics and checkpoint, so its watermark, metrics (labelled by query
name) and swarms belong to it alone. Queries run one at a time beside the session's shared
``aggregation`` query; there is only ever one Spark session.
"""

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from emostream.aggregate._metrics import ProgressListener
from emostream.aggregate.job import start_query
from emostream.aggregate.settings import AggregateSettings
from emostream.common.events import Reaction
from emostream.localstack.kafka import ensure_topics
from tests.support.waiting import wait_until

WINDOW_MS = 2000
#: How long a scenario waits for its query to get somewhere, and how often it checks.
QUERY_WAIT_S = 90
QUERY_POLL_S = 0.1


@pytest.fixture(scope="session")
def listener(spark: SparkSession) -> Iterator[ProgressListener]:
    """The metrics listener, attached once to the session (it labels series by query name)."""
    progress = ProgressListener()
    spark.streams.addListener(progress)
    yield progress
    spark.streams.removeListener(progress)


@dataclass
class Scenario:
    """Topics, settings and helpers of one streaming scenario."""

    spark: SparkSession
    bootstrap: str
    settings: AggregateSettings
    produced: int = 0
    _producer: Producer | None = None

    @property
    def name(self) -> str:
        """The query name (and the ``query`` label of its metrics)."""
        return self.settings.query_name

    def start(self, **overrides: Any) -> StreamingQuery:
        """Start the query (again, from the same checkpoint unless ``overrides`` say otherwise)."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return start_query(self.spark, settings)

    def produce(self, reactions: Iterable[Reaction]) -> int:
        """Write ``reactions`` to the scenario's reactions topic; returns how many."""
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 2})
        producer = self._producer
        n = 0
        for r in reactions:
            producer.produce(
                self.settings.reactions_topic, key=r.user_id.encode(), value=r.encode()
            )
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
        assert producer.flush(10) == 0
        self.produced += n
        return n

    def swarms(self, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 60) -> list:
        """Every swarm on the topic so far, in partition order, once ``until`` holds on them."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": uuid.uuid4().hex,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([self.settings.swarms_topic])
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    got.append(orjson.loads(msg.value()))
                elif until(got):
                    return got
        finally:
            consumer.close()
        return got

    def wait_processed(self, query: StreamingQuery, what: str) -> None:
        """Wait until ``query`` has read every reaction produced so far; fail naming ``what``."""
        wait_until(
            what,
            lambda: rows_processed(query) >= self.produced,
            QUERY_WAIT_S,
            interval_s=QUERY_POLL_S,
        )

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this scenario's query from the Prometheus registry (0 if absent)."""
        value = REGISTRY.get_sample_value(name, {"query": self.name, **labels})
        return value or 0.0


def make_scenario(
    spark: SparkSession, bootstrap: str, redis_url: str, tmp: Path, **settings: Any
) -> Scenario:
    """Fresh topics and a checkpoint directory for one scenario."""
    tag = uuid.uuid4().hex[:8]
    reactions, swarms = f"test-{tag}-reactions", f"test-{tag}-swarms"
    ensure_topics(bootstrap, {reactions: 6, swarms: 3})
    return Scenario(
        spark,
        bootstrap,
        AggregateSettings(
            kafka_bootstrap_servers=bootstrap,
            redis_url=redis_url,
            reactions_topic=reactions,
            swarms_topic=swarms,
            checkpoint_location=str(tmp / "checkpoint"),
            query_name=f"q_{tag}",
            **settings,
        ),
    )


def rows_processed(query: StreamingQuery) -> int:
    """Input rows of every micro-batch this run of ``query`` still remembers."""
    return sum(p.numInputRows for p in query.recentProgress)


def watermark_ms(query: StreamingQuery) -> int:
    """The watermark of the last completed micro-batch of ``query`` (0 before any)."""
    last = query.lastProgress
    if last is None or not last.eventTime.get("watermark"):
        return 0
    return round(datetime.fromisoformat(last.eventTime["watermark"]).timestamp() * 1000)


def final_counts(swarms: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (stream, window start): the counts of its swarm with the greatest id."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for s in swarms:
        key = (s["stream_id"], s["window_start"])
        if key not in latest or s["id"] > latest[key]["id"]:
            latest[key] = s
    return {key: s["counts"] for key, s in latest.items()}
