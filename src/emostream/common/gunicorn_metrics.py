"""Prometheus metrics of a gunicorn server with several workers: one directory they all write.

prometheus_client's multiprocess mode has every worker write its metrics to files in one
directory, so a scrape answered by any worker reports them all. The library chooses that mode
when it is first imported, so a gunicorn configuration creates :class:`MultiprocessMetrics`
before anything imports prometheus_client, and imports nothing that does at the top. The
directory is the configured one if given, else a fresh temporary one removed when the master
exits; stale files are cleared at start, and the files of a worker that died are marked so its
gauges stop counting.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class MultiprocessMetrics:
    """The metrics directory of one gunicorn master and its workers, and the hooks that tend it."""

    def __init__(self, configured_dir: str | None, role: str) -> None:
        self._made = configured_dir is None
        self.dir = configured_dir or tempfile.mkdtemp(prefix=f"emostream-{role}-metrics-")
        # prometheus_client reads this itself, in the master and in the workers it forks.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.dir

    def on_starting(self, server: Any) -> None:
        """gunicorn hook, the master starts: clear files a previous server left behind."""
        for stale in Path(self.dir).glob("*.db"):
            stale.unlink(missing_ok=True)

    def child_exit(self, server: Any, worker: Any) -> None:
        """gunicorn hook, a worker died or stopped: its live gauges stop counting."""
        from prometheus_client import multiprocess  # noqa: PLC0415 - see the module docstring

        multiprocess.mark_process_dead(worker.pid, self.dir)  # type: ignore[no-untyped-call]

    def on_exit(self, server: Any) -> None:
        """gunicorn hook, the master exits: remove the directory if it was made here."""
        if self._made:
            shutil.rmtree(self.dir, ignore_errors=True)
