"""The query's checkpoint directory: where it lives, and the two things the job reads from it.

Everything goes through Hadoop's ``FileSystem`` API in the driver's JVM, so a local path, a
mounted Kubernetes volume and an ``s3a://`` or ``hdfs://`` URL all work the same way.

- The *swarm epoch*: swarm ids start with it so that a query that starts over with a new
  checkpoint (whose micro-batch ids restart at 0) still emits ids greater than every id before
  it. It is the time the checkpoint was created, written once into the checkpoint directory, so
  every restart from the same checkpoint reads the same value and a replayed micro-batch
  republishes exactly the ids it published before.
- The watermark a micro-batch was planned with, from Spark's offset log: Spark drops an event
  as late if its window ended at or before the *previous* micro-batch's watermark.
"""

import json
import logging
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from emostream.common.errors import EmostreamError
from emostream.common.events import now_ms

log = logging.getLogger(__name__)

EPOCH_FILE = "swarm_epoch"
_LOCAL_SCHEMES = ("", "file")


class CheckpointError(EmostreamError):
    """The checkpoint directory could not be read or written."""


def is_local(location: str) -> bool:
    """Whether ``location`` is a path on a local or mounted file system (not an object store)."""
    return urlparse(location).scheme in _LOCAL_SCHEMES


class Checkpoint:
    """One streaming query's checkpoint directory, seen through the driver JVM's Hadoop API."""

    def __init__(self, spark: SparkSession, location: str) -> None:
        self.location = location
        # PySpark has no public handle on Hadoop; its JVM gateway is the way in.
        jvm: Any = spark._jvm
        conf = spark._jsc.hadoopConfiguration()
        self._jvm = jvm
        self._root = jvm.org.apache.hadoop.fs.Path(location)
        self._fs = self._root.getFileSystem(conf)

    def _path(self, *parts: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self._root, "/".join(parts))

    def _read(self, *parts: str) -> str | None:
        path = self._path(*parts)
        if not self._fs.exists(path):
            return None
        stream = self._fs.open(path)
        try:
            return bytes(stream.readAllBytes()).decode()
        finally:
            stream.close()

    def _write_atomically(self, text: str, *parts: str) -> None:
        path = self._path(*parts)
        tmp = self._jvm.org.apache.hadoop.fs.Path(path.getParent(), f".{path.getName()}.tmp")
        stream = self._fs.create(tmp, True)
        try:
            stream.write(bytearray(text.encode()))
        finally:
            stream.close()
        self._fs.delete(path, False)
        if not self._fs.rename(tmp, path):
            raise CheckpointError(f"could not write {path.toString()}")

    def has_batches(self) -> bool:
        """Whether Spark has planned at least one micro-batch here (its offset log has entries)."""
        offsets = self._path("offsets")
        if not self._fs.exists(offsets):
            return False
        return any(s.getPath().getName().isdigit() for s in self._fs.listStatus(offsets))

    def swarm_epoch(self) -> int:
        """The epoch of this checkpoint's swarm ids, created on first use.

        A checkpoint without micro-batches gets a fresh epoch (the current time), even if an
        epoch file was left behind: nothing was published under the old one. Call this before
        the query starts, in the one driver that owns the checkpoint.
        """
        if self.has_batches():
            text = self._read(EPOCH_FILE)
            if text is not None:
                try:
                    return int(text.strip())
                except ValueError as exc:
                    raise CheckpointError(f"bad swarm epoch in {self.location}: {text!r}") from exc
        epoch = now_ms()
        self._fs.mkdirs(self._root)
        self._write_atomically(str(epoch), EPOCH_FILE)
        log.info("new swarm epoch", extra={"checkpoint": self.location, "epoch": epoch})
        return epoch

    def batch_watermark_ms(self, batch_id: int) -> int | None:
        """The watermark micro-batch ``batch_id`` was planned with, if its offset entry exists.

        An offset log entry is a version line, a JSON line of batch metadata, then one line of
        offsets per source.
        """
        text = self._read("offsets", str(batch_id))
        if text is None:
            return None
        lines = text.splitlines()
        if len(lines) < 2:
            return None
        try:
            return int(json.loads(lines[1]).get("batchWatermarkMs", 0))
        except (ValueError, AttributeError):
            return None
