"""gunicorn configuration of fanout.

Used as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf --bind HOST:PORT
'emostream.fanout.app:create_app()'``. Without ``--bind`` it listens on the local contract's
address (:mod:`emostream.common.endpoints`). Sizing comes from :class:`FanoutSettings`, so
``EMOSTREAM_WORKERS`` and ``EMOSTREAM_MAX_CONNECTIONS`` tune it like every other setting.

Greenlets, not threads: a feed is an idle connection almost all the time, so one process holds
thousands of them; the app is built in each worker after the fork and gevent has patched the
standard library, and ``post_worker_init`` starts the worker's one Kafka consumer.

The settings both services share (worker count, timeouts, JSON logs with an access log, the
metrics directory of prometheus_client's multiprocess mode and its hooks) come from
:func:`emostream.common.gunicorn.server_config`, called here before anything imports
prometheus_client.

Shutdown: SIGTERM drains the worker's feeds over ``drain_s`` instead of stopping at once
(:meth:`~emostream.fanout._runtime.FanoutRuntime.serve_worker` says how).
"""

from typing import Any

from emostream.common import endpoints
from emostream.common.gunicorn import server_config
from emostream.fanout.settings import KEEPALIVE_S, FanoutSettings

_settings = FanoutSettings()

# workers, graceful_timeout, timeout, logging, the metrics directory and its hooks.
globals().update(server_config(_settings, "fanout", access_log_level="INFO"))
bind = f"{endpoints.LOCAL_HOST}:{endpoints.FANOUT_PORT}"
worker_class = "gevent"
worker_connections = _settings.worker_connections
keepalive = KEEPALIVE_S


def post_worker_init(worker: Any) -> None:
    """The app is loaded and gevent is active: start the consumer, take over SIGTERM."""
    from emostream.fanout.app import runtime_of  # noqa: PLC0415 - only a worker needs it

    runtime_of(worker.wsgi).serve_worker(worker)
