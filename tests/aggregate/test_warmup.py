"""The warm-up runs the query's plan on synthetic reactions and leaves nothing behind."""

import pytest
from pyspark.sql import SparkSession

from emostream.aggregate._warmup import WARM_UP_QUERY, warm_up
from emostream.aggregate.settings import AggregateSettings

pytestmark = pytest.mark.integration


def test_warm_up_runs_batches_with_data_then_stops(spark: SparkSession) -> None:
    """It counts only micro-batches that carried swarms, and stops its query afterwards."""
    settings = AggregateSettings(
        # Unreachable services: the warm-up must never publish anything.
        kafka_bootstrap_servers="127.0.0.1:9",
        redis_url="redis://127.0.0.1:9/0",
        warm_up_batches=2,
        warm_up_timeout_s=600,
        trigger_ms=100,
    )
    assert warm_up(spark, settings) == 2
    assert all(q.name != WARM_UP_QUERY for q in spark.streams.active)


def test_no_warm_up_when_disabled(spark: SparkSession) -> None:
    """``warm_up_batches=0`` starts no query at all."""
    before = len(spark.streams.active)
    assert warm_up(spark, AggregateSettings(warm_up_batches=0)) == 0
    assert len(spark.streams.active) == before
