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

Metrics: every worker writes its metrics to one directory (prometheus_client's multiprocess
mode, :mod:`emostream.common.gunicorn_metrics`), set up here before anything imports the library.

Shutdown: on SIGTERM a worker stops accepting, finishes its requests, then ``worker_exit`` flushes
its Kafka producer within ``shutdown_flush_timeout_s``; ``graceful_timeout`` is longer than
that, so gunicorn does not kill a worker while queued (already acknowledged) events drain.
"""

import logging
from typing import Any

from emostream.common.gunicorn_metrics import MultiprocessMetrics
from emostream.common.logging import gunicorn_logconfig
from emostream.ingest.settings import IngestSettings

_settings = IngestSettings()
_log = logging.getLogger(__name__)

_metrics = MultiprocessMetrics(_settings.metrics_dir, "ingest")
metrics_dir = _metrics.dir

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

on_starting = _metrics.on_starting
child_exit = _metrics.child_exit
on_exit = _metrics.on_exit


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
