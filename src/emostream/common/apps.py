"""How a service's app keeps the state of its worker, and the routes every service answers.

Both HTTP services build, in ``create_app``, one runtime object holding what a worker owns
(settings, metrics, its Kafka and Redis clients) and attach it to the Flask app. Everything else
that needs the worker's state reaches it from the app the same way: the routes at
registration, tests through the app they made, and gunicorn's hooks through ``worker.wsgi``
(the app gunicorn loaded in that worker).
"""

from typing import Any, Protocol, TypeVar

from flask import Flask, Response

from emostream.common.errors import ConfigurationError

_EXTENSION = "emostream.runtime"

RuntimeT = TypeVar("RuntimeT")


class ServiceRoutes(Protocol):
    """The operational routes of a service: probes, metrics and its API document."""

    def healthz(self) -> Response:
        """Liveness: the process answers."""

    def readyz(self) -> Response:
        """Readiness: the service can do its work now."""

    def metrics(self) -> Response:
        """The Prometheus exposition of every worker."""

    def openapi(self) -> Response:
        """The OpenAPI document of the service."""


def add_service_routes(app: Flask, api: ServiceRoutes) -> None:
    """Answer ``GET /healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` with ``api``."""
    for rule, view in (
        ("/healthz", api.healthz),
        ("/readyz", api.readyz),
        ("/metrics", api.metrics),
        ("/openapi.json", api.openapi),
    ):
        app.add_url_rule(rule, view_func=view, methods=["GET"])


def attach_runtime(app: Flask, runtime: object) -> None:
    """Keep ``runtime`` as the state of ``app``'s worker."""
    app.extensions[_EXTENSION] = runtime


def runtime_of(app: Any, kind: type[RuntimeT]) -> RuntimeT:
    """The runtime of type ``kind`` attached to ``app`` (a Flask app made by a ``create_app``)."""
    extensions = getattr(app, "extensions", {})
    runtime = extensions.get(_EXTENSION)
    if not isinstance(runtime, kind):
        raise ConfigurationError(f"{app!r} is not an app with a {kind.__name__}")
    return runtime
