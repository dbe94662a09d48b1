"""gunicorn configuration of ingest.

Used as ``gunicorn -c python:emostream.ingest.gunicorn_conf --bind HOST:PORT
'emostream.ingest.app:create_app()'``. The address is left to ``--bind`` (gunicorn's own default,
127.0.0.1:8000, is the local contract). Sizing comes from :class:`IngestSettings`, so
``EMOSTREAM_WORKERS`` / ``EMOSTREAM_THREADS`` tune it like every other setting.

Shutdown: on SIGTERM a worker stops accepting, finishes its requests, then ``worker_exit`` flushes
its Kafka producer within ``shutdown_flush_timeout_s``; ``graceful_timeout`` is longer than
that, so gunicorn does not kill a worker while queued (already acknowledged) events drain.
"""

import logging
from typing import Any

from emostream.ingest._producer import flush_all
from emostream.ingest.settings import IngestSettings

_settings = IngestSettings()
_log = logging.getLogger(__name__)

# Threads, not greenlets: request handling is short and CPU-light, and librdkafka's own threads
# do the network work, so a few threads per process keep the producer batching well.
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
graceful_timeout = _settings.graceful_timeout_s
timeout = 30
keepalive = 5
# gunicorn 25.1+ opens a control socket under $HOME by default: one fixed path shared by every
# gunicorn on the host, and unwritable in a read-only container. Nothing here uses it.
control_socket_disable = True

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": _settings.log_level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        # A log line per request would cost more than the request; the metrics count them.
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        }
    },
    "formatters": {"json": {"()": "emostream.common.logging.JsonFormatter"}},
}


def _flush(why: str) -> None:
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
