"""The checkpoint directory as the job reads it: swarm epochs and planned watermarks."""

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from emostream.aggregate._checkpoint import EPOCH_FILE, Checkpoint, CheckpointError, is_local
from emostream.aggregate.job import CHECKPOINT_MANAGER_KEY, query_conf
from emostream.aggregate.settings import AggregateSettings
from emostream.common.events import now_ms

pytestmark = pytest.mark.integration

OFFSET_ENTRY = (
    'v1\n{"batchWatermarkMs":1764000004000,"batchTimestampMs":1764000007000,"conf":{}}\n'
    '{"reactions":{"0":12,"1":30}}'
)


def test_a_new_checkpoint_gets_a_fresh_epoch(spark: SparkSession, tmp_path: Path) -> None:
    """The epoch is the creation time, written into the checkpoint directory."""
    before = now_ms()
    epoch = Checkpoint(spark, str(tmp_path / "ck")).swarm_epoch()
    assert before <= epoch <= now_ms()
    assert (tmp_path / "ck" / EPOCH_FILE).read_text() == str(epoch)


def test_the_epoch_is_stable_once_batches_exist(spark: SparkSession, tmp_path: Path) -> None:
    """Every restart from a checkpoint with micro-batches reads the same epoch."""
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "0").write_text(OFFSET_ENTRY)
    (tmp_path / EPOCH_FILE).write_text("1763999000000")
    ck = Checkpoint(spark, str(tmp_path))
    assert ck.swarm_epoch() == ck.swarm_epoch() == 1_763_999_000_000


def test_an_epoch_without_batches_is_replaced(spark: SparkSession, tmp_path: Path) -> None:
    """Nothing was published under an epoch whose checkpoint never planned a batch."""
    (tmp_path / EPOCH_FILE).write_text("1763999000000")
    assert Checkpoint(spark, str(tmp_path)).swarm_epoch() > 1_763_999_000_000


def test_a_corrupt_epoch_is_an_error(spark: SparkSession, tmp_path: Path) -> None:
    """Guessing would silently break the order of the ids already published."""
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "0").write_text(OFFSET_ENTRY)
    (tmp_path / EPOCH_FILE).write_text("garbage")
    with pytest.raises(CheckpointError):
        Checkpoint(spark, str(tmp_path)).swarm_epoch()


def test_planned_watermark_is_read_from_the_offset_log(spark: SparkSession, tmp_path: Path) -> None:
    """The watermark a batch ran with comes from its entry in Spark's offset log."""
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "41").write_text(OFFSET_ENTRY)
    ck = Checkpoint(spark, str(tmp_path))
    assert ck.batch_watermark_ms(41) == 1_764_000_004_000
    assert ck.batch_watermark_ms(42) is None


def test_local_checkpoints_rename_through_the_java_file_api() -> None:
    """Local and mounted paths get the fork-free checkpoint manager; object stores keep Spark's."""
    assert is_local("/checkpoints/aggregate")
    assert is_local("file:///tmp/ck")
    assert not is_local("s3a://bucket/ck")
    local = query_conf(AggregateSettings(checkpoint_location="/checkpoints/aggregate"))
    remote = query_conf(AggregateSettings(checkpoint_location="s3a://bucket/aggregate"))
    assert CHECKPOINT_MANAGER_KEY in local
    assert CHECKPOINT_MANAGER_KEY not in remote
    assert local["spark.sql.streaming.stateStore.providerClass"].endswith(
        "HDFSBackedStateStoreProvider"
    )
