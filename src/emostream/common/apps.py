"""How a service's app keeps the state of its worker, the routes every service answers, and
the metrics port.

Both HTTP services build, in ``create_app``, one runtime object holding what a worker owns
(settings, metrics, its Kafka and Redis clients) and attach it to the Flask app. Everything else
that needs the worker's state reaches it from the app the same way: the routes at
registration, tests through the app they made, and gunicorn's hooks through ``worker.wsgi``
(the app gunicorn loaded in that worker).

``GET /metrics`` is not a route of the app: gunicorn also listens on the metrics address
(:mod:`emostream.common.gunicorn`), and :class:`MetricsPort` answers what arrives there.
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flask import Flask, Response
from werkzeug.wrappers import Response as PlainResponse

from emostream.common.errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_EXTENSION = "emostream.runtime"

RuntimeT = TypeVar("RuntimeT")


class ServiceRoutes(Protocol):
    """The operational routes of a service: probes and its API document."""

    def healthz(self) -> Response:
        """Liveness: the process answers."""

    def readyz(self) -> Response:
        """Readiness: the service can do its work now."""

    def openapi(self) -> Response:
        """The OpenAPI document of the service."""


def add_service_routes(app: Flask, api: ServiceRoutes) -> None:
    """Answer ``GET /healthz``, ``/readyz`` and ``/openapi.json`` with ``api``."""
    for rule, view in (
        ("/healthz", api.healthz),
        ("/readyz", api.readyz),
        ("/openapi.json", api.openapi),
    ):
        app.add_url_rule(rule, view_func=view, methods=["GET"])


def serve_metrics_port(app: Flask, port: int, exposition: Callable[[], tuple[bytes, str]]) -> None:
    """Answer the requests that reach ``app`` through the metrics ``port`` with ``exposition``
    (the body and content type of the role's Prometheus text)."""
    app.wsgi_app = MetricsPort(app.wsgi_app, port, exposition)  # type: ignore[method-assign]


class MetricsPort:
    """WSGI middleware: a request that came in on the metrics port gets the metrics, and never
    reaches the app; any other goes to the app, where ``/metrics`` is no route.

    The port a request came in on is the local port of its connection (``gunicorn.socket``),
    never the Host header, nor ``SERVER_PORT`` (which gunicorn derives from it): a client sets
    those at will. The metrics port serves ``GET /metrics`` and nothing else. Without gunicorn
    (a Flask test client) there is no socket, and every request is public.
    """

    def __init__(
        self, app: "WSGIApplication", port: int, exposition: Callable[[], tuple[bytes, str]]
    ) -> None:
        self._app = app
        self._port = port
        self._exposition = exposition

    def __call__(
        self, environ: "WSGIEnvironment", start_response: "StartResponse"
    ) -> Iterable[bytes]:
        """Route the request by the port it came in on: one ``getsockname`` per request."""
        sock = environ.get("gunicorn.socket")
        # (host, port) or (host, port, flow, scope) over TCP; a Unix socket's is a path.
        local = sock.getsockname() if sock is not None else None
        if isinstance(local, tuple) and local[1] == self._port:
            return self._metrics(environ)(environ, start_response)
        return self._app(environ, start_response)

    def _metrics(self, environ: "WSGIEnvironment") -> PlainResponse:
        if environ.get("PATH_INFO") != "/metrics":
            return PlainResponse("this port serves GET /metrics only\n", status=404)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return PlainResponse("GET /metrics\n", status=405, headers={"Allow": "GET, HEAD"})
        body, content_type = self._exposition()
        return PlainResponse(body, content_type=content_type)


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
