"""The ingest app factory, served as ``gunicorn -c python:emostream.ingest.gunicorn_conf
'emostream.ingest.app:create_app()'``.

Routes (see :mod:`emostream.ingest.openapi` for the full contract):

- ``POST /send_emoji``: one reaction in the original clients' format, 200.
- ``POST /v1/streams/<stream_id>/reactions``: one reaction or a batch, 202.
- ``PUT`` / ``DELETE /v1/streams/<stream_id>``: the admin API of the stream registry.
- ``GET /healthz``, ``GET /readyz``, ``GET /openapi.json``.

The two reaction routes are answered by :class:`~emostream.ingest._reactions.ReactionRoutes`
before a request reaches Flask; Flask answers the rest.

``GET /metrics`` is served on the metrics port only (``metrics_host:metrics_port``, which
gunicorn_conf binds beside ``--bind``); on the public port it is 404.

Creating the app makes no Kafka or Redis client (gunicorn may fork after it); the first request
that needs one does.
"""

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from emostream.common import apps
from emostream.common.logging import configure_logging
from emostream.ingest._api import IngestApi
from emostream.ingest._producer import ReactionSink
from emostream.ingest._reactions import ReactionRoutes
from emostream.ingest._runtime import IngestRuntime, RateLimit, Registry
from emostream.ingest.settings import IngestSettings


def create_app(
    settings: IngestSettings | None = None,
    *,
    sink: ReactionSink | None = None,
    limiter: RateLimit | None = None,
    registry: Registry | None = None,
) -> Flask:
    """A new ingest app; settings default to the ``EMOSTREAM_*`` environment.

    ``sink`` replaces the Kafka producer, ``limiter`` the Redis rate limit and ``registry`` the
    Redis stream registry, for tests of the HTTP layer alone.
    """
    settings = settings or IngestSettings()
    # Whoever owns the process (gunicorn_conf's logconfig_dict, a test runner) may already have
    # configured logging; only an unconfigured process gets the JSON default here.
    if not logging.getLogger().handlers:
        configure_logging(settings.log_level)
    app = Flask(__name__, static_folder=None)
    runtime = IngestRuntime(settings, sink=sink, limiter=limiter, registry=registry)
    IngestApi(runtime).register(app)
    app.wsgi_app = ReactionRoutes(runtime, app.wsgi_app)  # type: ignore[method-assign]
    if settings.forwarded_for_hops:
        # The client address (rate limit, new-stream cap) from the proxies' X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.forwarded_for_hops)  # type: ignore[method-assign]
    apps.serve_metrics_port(app, settings.metrics_port, runtime.exposition)
    apps.attach_runtime(app, runtime)
    return app


def runtime_of(app: Flask) -> IngestRuntime:
    """The worker state of an app made by :func:`create_app`."""
    return apps.runtime_of(app, IngestRuntime)
