"""gunicorn configuration of ingest.

Used as ``gunicorn -c python:emostream.ingest.gunicorn_conf --bind HOST:PORT
'emostream.ingest.app:create_app()'``. The address is left to ``--bind`` (gunicorn's own default,
127.0.0.1:8000, is the local contract). Sizing comes from :class:`IngestSettings`, so
``EMOSTREAM_WORKERS`` / ``EMOSTREAM_THREADS`` tune it like every other setting.

Worker model, chosen by measurement (``docs/ingest.md`` has the figures): ``gthread``, one worker
process per core plus one (three on the two-core target) of eight threads each. A request is short
and CPU-bound in Python, and a worker is one interpreter whose threads take turns, so one worker
per core left part of the machine idle under batches (1.4 of 2 cores busy); a third raised batch
throughput by about a sixth at the same CPU per request. The threads keep a process busy while one
request waits on the network, and gthread keeps HTTP keep-alive, which ``sync`` workers lack (every
request would pay a TCP handshake: under half the requests/s). gevent measured no faster for the
bare app and would need care around librdkafka's blocking poll.

Slow clients: a gthread thread reads its request's headers and body with no overall deadline
(gunicorn bounds only the wait for the first byte), so as many clients as there are threads (24),
stalled mid-request, hold every thread and ingest answers no one. Ingest is therefore served behind
a proxy that reads each request whole first: nginx in the local stack
(:mod:`emostream.localstack.nginx`), the Ingress controller in a cluster. ``docs/ingest.md`` ("Slow
clients") has the measurements, against gevent and against a deadline per request in a gthread
worker.

The settings both services share (worker count, timeouts, JSON logs, the metrics directory of
prometheus_client's multiprocess mode and its hooks) come from
:func:`emostream.common.gunicorn.server_config`, called here before anything imports
prometheus_client. A request log line would cost more than the request; the metrics count them.

Shutdown: on SIGTERM a worker stops accepting, finishes its requests, then ``worker_exit`` flushes
its Kafka producer within ``shutdown_flush_timeout_s`` (the hooks reach the app gunicorn loaded,
``worker.wsgi``, and its runtime); ``graceful_timeout`` is longer than that, so gunicorn does not
kill a worker while queued (already acknowledged) events drain.
"""

from typing import Any

from emostream.common.gunicorn import server_config
from emostream.ingest.settings import IngestSettings

_settings = IngestSettings()

# workers, graceful_timeout, timeout, logging, the metrics directory and its hooks.
globals().update(server_config(_settings, "ingest", access_log_level="WARNING"))
worker_class = "gthread"
threads = _settings.threads
keepalive = 5


def _flush(worker: Any, why: str) -> None:
    """Flush the producer of the app this worker serves (none in a worker that never loaded one)."""
    app = getattr(worker, "wsgi", None)
    if app is None:
        return
    from emostream.ingest.app import runtime_of  # noqa: PLC0415 - see the module docstring

    runtime_of(app).flush(why)


def worker_int(worker: Any) -> None:
    """SIGINT/SIGQUIT in a worker: deliver what was accepted before the worker exits."""
    _flush(worker, "worker_int")


def worker_abort(worker: Any) -> None:
    """A worker timed out (SIGABRT): still try to deliver what was accepted."""
    _flush(worker, "worker_abort")


def worker_exit(server: Any, worker: Any) -> None:
    """A worker is exiting (after SIGTERM it has finished its requests): flush its producer."""
    _flush(worker, "worker_exit")
