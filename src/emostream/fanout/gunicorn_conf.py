"""gunicorn configuration of fanout.

Used as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf --bind HOST:PORT
'emostream.fanout.app:create_app()'``. The address is left to ``--bind`` (the local contract is
127.0.0.1:8080). Sizing comes from :class:`FanoutSettings`, so ``EMOSTREAM_WORKERS`` and
``EMOSTREAM_MAX_CONNECTIONS`` tune it like every other setting.

Greenlets, not threads: a feed is an idle connection almost all the time, so one process holds
thousands of them; the app is built in each worker after the fork and gevent has patched the
standard library, and ``post_worker_init`` starts the worker's one Kafka consumer.

Metrics: as in ingest, every worker writes its metrics to one directory (prometheus_client's
multiprocess mode, :mod:`emostream.common.gunicorn_metrics`), set up here before anything
imports the library.

Shutdown: SIGTERM (gunicorn's master forwards its own to every worker) starts a drain instead
of gunicorn's immediate stop: the worker keeps accepting, but answers new feeds and ``/readyz``
503 with Retry-After, and ends its open feeds one by one at random moments over ``drain_s``, so
viewers reconnect (with Last-Event-ID) to other pods spread over that period. Then the worker
withdraws its presence, stops its consumer and stops as gunicorn would. Settings validation
keeps ``drain_s`` plus a margin within ``graceful_timeout``, after which the master kills.
SIGINT and SIGQUIT still stop at once (every feed closed immediately).
"""

import logging
import signal
from typing import Any

from emostream.common.gunicorn_metrics import MultiprocessMetrics
from emostream.common.logging import gunicorn_logconfig
from emostream.fanout.settings import KEEPALIVE_S, FanoutSettings

_settings = FanoutSettings()
_log = logging.getLogger(__name__)

_metrics = MultiprocessMetrics(_settings.metrics_dir, "fanout")
metrics_dir = _metrics.dir

bind = "127.0.0.1:8080"
worker_class = "gevent"
workers = _settings.workers
worker_connections = _settings.worker_connections
graceful_timeout = _settings.graceful_timeout_s
timeout = 30
keepalive = KEEPALIVE_S
# gunicorn's control socket has one default path per user, which several servers on one machine
# (ingest, fanout, tests) would fight over; nothing here uses it.
control_socket_disable = True

logconfig_dict = gunicorn_logconfig(_settings.log_level, access_level="INFO")

on_starting = _metrics.on_starting
child_exit = _metrics.child_exit
on_exit = _metrics.on_exit


def post_worker_init(worker: Any) -> None:
    """The app is loaded and gevent is active: start the consumer, take over SIGTERM."""
    import gevent  # noqa: PLC0415 - only a worker process (after patching) needs it

    from emostream.fanout.app import runtime_of  # noqa: PLC0415

    runtime = runtime_of(worker.wsgi)
    runtime.start()
    drain_s = runtime.settings.drain_s

    def drain_then_stop() -> None:
        try:
            runtime.drain(drain_s)
            runtime.shutdown()
        finally:
            # From here on gunicorn's own stop: close the listener, wait for requests.
            worker.alive = False

    def on_sigterm(signum: int, frame: Any) -> None:
        # A signal handler must not block: the drain runs in its own greenlet, once.
        if not runtime.draining:
            runtime.draining = True
            gevent.spawn(drain_then_stop)

    signal.signal(signal.SIGTERM, on_sigterm)

    def close_feeds_on_exit() -> None:
        while worker.alive:
            gevent.sleep(0.25)
        runtime.shutdown()

    gevent.spawn(close_feeds_on_exit)
