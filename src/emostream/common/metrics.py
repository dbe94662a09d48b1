"""What the metrics of a gunicorn-served role share: one registry per app, or every worker's.

Under gunicorn a role's metrics must cover every worker process, not only the one that answers
a scrape. ``gunicorn_conf`` points prometheus_client at a directory (its multiprocess mode)
before anything imports the library; each worker writes its values to its own memory-mapped
files there, and the exposition adds up the files of every worker (gauges of live workers only:
the master marks a dead worker's files). Without that directory (an app made in a test) the
metrics live in a registry per app, so each test sees only its own counts.
"""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from emostream.common.errors import ConfigurationError


class ServerMetrics:
    """The registry a role's metrics are declared in, and their exposition.

    ``multiprocess_dir`` is the directory of prometheus_client's multiprocess mode; ``role``
    names the gunicorn configuration that sets it up, for the error when it was not used.
    """

    def __init__(self, multiprocess_dir: str | None, role: str) -> None:
        if multiprocess_dir is not None and values.ValueClass is values.MutexValue:
            raise ConfigurationError(
                "a metrics directory is set but prometheus_client was imported without "
                "PROMETHEUS_MULTIPROC_DIR, so workers would keep their metrics to themselves; "
                f"serve with -c python:emostream.{role}.gunicorn_conf"
            )
        self._multiprocess_dir = multiprocess_dir
        # In multiprocess mode values go to files whatever the registry; none other is needed.
        self.registry = CollectorRegistry()

    def exposition(self) -> tuple[bytes, str]:
        """The metrics (of every worker, in multiprocess mode) in the Prometheus text format."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
