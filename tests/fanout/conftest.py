"""Fixtures of the fanout tests that use a real Kafka broker."""

import uuid

import pytest
from confluent_kafka import Producer


@pytest.fixture(scope="session")
def producer(kafka_bootstrap: str) -> Producer:
    """A producer writing swarm messages the way the aggregation does (keyed by stream)."""
    return Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0})


@pytest.fixture
def stream() -> str:
    """A stream id no other test uses."""
    return f"it-{uuid.uuid4().hex[:10]}"
