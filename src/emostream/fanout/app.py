"""The fanout app factory, served as ``gunicorn -k gevent -c python:emostream.fanout.gunicorn_conf
'emostream.fanout.app:create_app()'``.

Routes (see ``openapi.json`` beside this module for the full contract):

- ``GET /v1/streams/<stream_id>/events``: Server-Sent Events, one ``swarm`` event per update.
- ``GET /v1/streams/<stream_id>/ws``: a WebSocket carrying the same JSON objects.
- ``GET /watch/<stream_id>``: the live viewer page.
- ``GET /healthz``, ``GET /readyz``, ``GET /openapi.json``.

``GET /metrics`` is served on the metrics port only (``metrics_host:metrics_port``, which
gunicorn_conf binds beside ``--bind``); on the public port it is 404.

Both feeds resume after the id given as ``Last-Event-ID`` (or the ``last_event_id`` query
parameter, which a page can set when it reconnects by hand); without one, a viewer starts from
the stream's latest swarm. Every swarm carries ``"viewers"``, the stream's viewer count across
all pods. When viewer tokens are required, both feeds need a signed token (``?token=`` or
``Authorization: Bearer``; see :mod:`emostream.common.tokens`), and with the closed stream
registry a feed of a stream that is not live is 404. Creating the app opens no connection
(gunicorn builds it in each worker after forking); the worker's Kafka consumer starts with the
worker or the first request.
"""

from collections.abc import Callable
from typing import Any

from flask import Flask

from emostream.common import apps
from emostream.common.logging import configure_logging
from emostream.fanout._api import STATIC_DIR, FanoutApi
from emostream.fanout._runtime import FanoutRuntime
from emostream.fanout.settings import FanoutSettings


def create_app(
    settings: FanoutSettings | None = None,
    *,
    connect_upstream: bool = True,
    consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
) -> Flask:
    """A new fanout app; settings default to the ``EMOSTREAM_*`` environment.

    ``connect_upstream=False`` leaves out the Kafka consumer (tests of the HTTP layer publish
    into the hub themselves); ``consumer_factory`` replaces ``confluent_kafka.Consumer``.
    """
    settings = settings or FanoutSettings()
    configure_logging(settings.log_level)
    app = Flask(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    runtime = FanoutRuntime(
        settings, connect_upstream=connect_upstream, consumer_factory=consumer_factory
    )
    FanoutApi(runtime).register(app)
    apps.serve_metrics_port(app, settings.metrics_port, runtime.metrics.exposition)
    apps.attach_runtime(app, runtime)
    return app


def runtime_of(app: Flask) -> FanoutRuntime:
    """The worker state of an app made by :func:`create_app`."""
    return apps.runtime_of(app, FanoutRuntime)
