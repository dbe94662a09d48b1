"""The ceiling of the benchmark: a bare Flask app that answers every POST with 204.

Served by the same gunicorn configuration as ingest, so the difference between this app and
ingest is what validation, rate limiting and the Kafka producer cost.
"""

from flask import Flask, Response


def create_app() -> Flask:
    """A Flask app answering 204 to a POST on any path, without reading the body."""
    app = Flask(__name__, static_folder=None)

    @app.post("/<path:_path>")
    def accept(_path: str) -> Response:
        return Response(status=204)

    return app
