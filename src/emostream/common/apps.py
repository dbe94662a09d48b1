"""How a service's app keeps the state of its worker, and how hooks and tests find it again.

Both HTTP services build, in ``create_app``, one runtime object holding what a worker owns
(settings, metrics, its Kafka and Redis clients) and attach it to the Flask app. Everything else
that needs the worker's state reaches it from the app the same way: the routes at
registration, tests through the app they made, and gunicorn's hooks through ``worker.wsgi``
(the app gunicorn loaded in that worker).
"""

from typing import Any, TypeVar

from flask import Flask

from emostream.common.errors import ConfigurationError

_EXTENSION = "emostream.runtime"

RuntimeT = TypeVar("RuntimeT")


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
