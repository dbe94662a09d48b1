"""gunicorn configuration of fanout.

Used as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf --bind HOST:PORT
'emostream.fanout.app:create_app()'``. The address is left to ``--bind`` (the local contract is
127.0.0.1:8080). Sizing comes from :class:`FanoutSettings`, so ``EMOSTREAM_WORKERS`` and
``EMOSTREAM_MAX_CONNECTIONS`` tune it like every other setting.

Greenlets, not threads: a feed is an idle connection almost all the time, so one process holds
thousands of them; the app is built in each worker after the fork and gevent has patched the
standard library, and ``post_worker_init`` starts the worker's one Kafka consumer.

Shutdown: on SIGTERM the worker stops accepting; a watcher then closes every feed, so viewers
reconnect (with Last-Event-ID) to another pod at once instead of at ``graceful_timeout``.
"""

import logging
from typing import Any

from emostream.common.logging import gunicorn_logconfig
from emostream.fanout.settings import FanoutSettings

_settings = FanoutSettings()
_log = logging.getLogger(__name__)

bind = "127.0.0.1:8080"
worker_class = "gevent"
workers = _settings.workers
worker_connections = _settings.worker_connections
graceful_timeout = _settings.graceful_timeout_s
timeout = 30
keepalive = 5
# gunicorn's control socket has one default path per user, which several servers on one machine
# (ingest, fanout, tests) would fight over; nothing here uses it.
control_socket_disable = True

logconfig_dict = gunicorn_logconfig(_settings.log_level, access_level="INFO")


def post_worker_init(worker: Any) -> None:
    """The app is loaded and gevent is active: start the consumer and the shutdown watcher."""
    import gevent  # noqa: PLC0415 - only a worker process (after patching) needs it

    from emostream.fanout.app import runtime_of  # noqa: PLC0415

    runtime = runtime_of(worker.wsgi)
    runtime.start()

    def close_feeds_on_exit() -> None:
        while worker.alive:
            gevent.sleep(0.5)
        runtime.shutdown()

    gevent.spawn(close_feeds_on_exit)
