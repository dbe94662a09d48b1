"""gunicorn configuration of ingest.

Used as ``gunicorn -c python:emostream.ingest.gunicorn_conf --bind HOST:PORT
'emostream.ingest.app:create_app()'``. The address is left to ``--bind`` (gunicorn's own default,
127.0.0.1:8000, is the local contract). Sizing comes from :class:`IngestSettings`, so
``EMOSTREAM_WORKERS`` / ``EMOSTREAM_THREADS`` tune it like every other setting.

Worker model, chosen by measurement (``docs/ingest.md`` has the figures): ``gthread``, two
worker processes (one per core of the two-core target) of eight threads each. A request is
short and CPU-bound in Python, so more processes than cores only add context switches (three and
four workers measured lower batch throughput); the threads keep each process busy while other
requests wait on their Redis round trip, and gthread keeps HTTP keep-alive, which ``sync``
workers lack (every request would pay a TCP handshake: under half the requests/s). gevent
measured no faster for the bare app and would need care around librdkafka's blocking poll.

Metrics: every worker writes its metrics to files in one directory (prometheus_client's
multiprocess mode), so a scrape of any worker reports them all. The library chooses that mode
when it is first imported, which is why this module sets ``PROMETHEUS_MULTIPROC_DIR`` before
anything imports it (the app is imported later, or in the workers), and imports nothing that
does at the top. The directory is ``EMOSTREAM_METRICS_DIR`` (or ``PROMETHEUS_MULTIPROC_DIR``) if
given, else a fresh temporary one removed at exit; stale files are cleared at start, and the
files of a worker that died are marked so its gauges stop counting.

Shutdown: on SIGTERM a worker stops accepting, finishes its requests, then ``worker_exit`` flushes
its Kafka producer within ``shutdown_flush_timeout_s``; ``graceful_timeout`` is longer than
that, so gunicorn does not kill a worker while queued (already acknowledged) events drain.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from emostream.common.logging import gunicorn_logconfig
from emostream.ingest.settings import IngestSettings

_settings = IngestSettings()
_log = logging.getLogger(__name__)

_made_metrics_dir = _settings.metrics_dir is None
metrics_dir = _settings.metrics_dir or tempfile.mkdtemp(prefix="emostream-ingest-metrics-")
# The one place ingest writes the environment: prometheus_client reads this variable itself, in
# this process and in the workers it forks.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
graceful_timeout = _settings.graceful_timeout_s
timeout = 30
keepalive = 5
# gunicorn 25.1+ opens a control socket under $HOME by default: one fixed path shared by every
# gunicorn on the host, and unwritable in a read-only container. Nothing here uses it.
control_socket_disable = True

# A log line per request would cost more than the request; the metrics count them.
logconfig_dict = gunicorn_logconfig(_settings.log_level, access_level="WARNING")


def on_starting(server: Any) -> None:
    """The master starts: clear metric files a previous server left in the directory."""
    for stale in Path(metrics_dir).glob("*.db"):
        stale.unlink(missing_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A worker died or stopped (master): its live gauges stop counting; counters stay."""
    from prometheus_client import multiprocess  # noqa: PLC0415 - see the module docstring

    multiprocess.mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """The master exits: remove the metrics directory if this configuration made it."""
    if _made_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _flush(why: str) -> None:
    from emostream.ingest._producer import flush_all  # noqa: PLC0415 - see the module docstring

    remaining = flush_all(_settings.shutdown_flush_timeout_s)
    _log.info("worker flushed its Kafka producer", extra={"why": why, "remaining": remaining})


def worker_int(worker: Any) -> None:
    """SIGINT/SIGQUIT in a worker: deliver what was accepted before the worker exits."""
    _flush("worker_int")


def worker_abort(worker: Any) -> None:
    """A worker timed out (SIGABRT): still try to deliver what was accepted."""
    _flush("worker_abort")


def worker_exit(server: Any, worker: Any) -> None:
    """A worker is exiting (after SIGTERM it has finished its requests): flush its producer."""
    _flush("worker_exit")
