"""What the gunicorn configurations of ingest and fanout share: settings, hooks, metrics directory
and metrics address.

:func:`server_config` gives the settings and hooks both services use; each ``gunicorn_conf``
adds its worker model.

Metrics are served on an address of their own (``metrics_host:metrics_port``), which the master
listens on beside whatever ``--bind`` it was given, so no public port or proxy reaches them; the
app tells the two apart by the socket a request came in on
(:class:`emostream.common.apps.MetricsPort`).

prometheus_client's multiprocess mode has every worker write its metrics to files in one
directory, so a scrape answered by any worker reports them all. The library chooses that mode
when it is first imported, so a gunicorn configuration creates :class:`MultiprocessMetrics`,
which sets the directory and only then imports prometheus_client, before anything else does,
and imports nothing at the top that would import it. The
directory is the configured one if given, else a fresh temporary one removed when the master
exits; stale files are cleared at start, and the files of a worker that died are marked so its
gauges stop counting.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from gunicorn import glogging

from emostream.common.errors import ConfigurationError
from emostream.common.logging import gunicorn_logconfig
from emostream.common.pid import current_pid

#: Seconds a worker may be silent before the master kills it (gunicorn's default).
WORKER_TIMEOUT_S = 30


class GunicornSized(Protocol):
    """The settings of a role served by gunicorn that size and log its server."""

    @property
    def metrics_dir(self) -> str | None: ...
    @property
    def metrics_host(self) -> str: ...
    @property
    def metrics_port(self) -> int: ...
    @property
    def log_level(self) -> str: ...
    @property
    def workers(self) -> int: ...
    @property
    def graceful_timeout_s(self) -> int: ...


def server_config(settings: GunicornSized, role: str, *, access_log_level: str) -> dict[str, Any]:
    """The gunicorn settings both services share, as ``gunicorn_conf`` module globals.

    Creates the metrics directory (and sets ``PROMETHEUS_MULTIPROC_DIR``), so it must run
    before anything imports prometheus_client.
    """
    metrics = MultiprocessMetrics(
        settings.metrics_dir, role, settings.metrics_host, settings.metrics_port
    )
    return {
        "metrics_dir": metrics.dir,
        "workers": settings.workers,
        "graceful_timeout": settings.graceful_timeout_s,
        "timeout": WORKER_TIMEOUT_S,
        # gunicorn 25.1+ opens a control socket with one default path per user, which several
        # servers on one machine (ingest, fanout, tests) would fight over, and which is
        # unwritable in a read-only container. Nothing here uses it.
        "control_socket_disable": True,
        "logconfig_dict": gunicorn_logconfig(settings.log_level, access_level=access_log_level),
        "logger_class": AccessLevelLogger,
        "on_starting": metrics.on_starting,
        "child_exit": metrics.child_exit,
        "on_exit": metrics.on_exit,
    }


class AccessLevelLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, except that an access log whose level drops its lines costs nothing.

    gunicorn builds every request's access-log fields (a dozen, a formatted date among them)
    whenever a logging configuration is given, and only then lets the level discard the line:
    for ingest, whose access log is at WARNING, that was about 6 % of a worker's Python time per
    request.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Log the request, if the access log's level lets its lines through at all."""
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


class MultiprocessMetrics:
    """The metrics of one gunicorn master and its workers: the directory they write to, the
    address they are served on, and the hooks that tend them."""

    def __init__(self, configured_dir: str | None, role: str, host: str, port: int) -> None:
        self._made = configured_dir is None
        self.dir = configured_dir or tempfile.mkdtemp(prefix=f"emostream-{role}-metrics-")
        # prometheus_client reads this itself, in the master and in the workers it forks.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.dir
        from prometheus_client import values  # noqa: PLC0415 - only once the directory is set

        # Its values check on each change whether they run in a new process; by default with a
        # system call (os.getpid), which costs more than the change itself.
        values.ValueClass = values.MultiProcessValue(process_identifier=current_pid)  # type: ignore[no-untyped-call]
        self.port = port
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def on_starting(self, server: Any) -> None:
        """gunicorn hook, the master starts: clear files a previous server left behind, and
        listen on the metrics address too.

        The address is added to ``bind`` here because ``--bind`` on the command line replaces
        the configuration's ``bind``, and the master calls this hook before it opens its
        listeners (``Arbiter.start``). A SIGHUP reload would read ``--bind`` again without it;
        nothing here reloads gunicorn.
        """
        for stale in Path(self.dir).glob("*.db"):
            stale.unlink(missing_ok=True)
        # The app takes a request on this port for a scrape, so no public address may share it.
        if any(isinstance(a, tuple) and a[1] == self.port for a in server.cfg.address):
            raise ConfigurationError(f"--bind and the metrics port {self.port} must differ")
        server.cfg.set("bind", [*server.cfg.bind, self.address])

    def child_exit(self, server: Any, worker: Any) -> None:
        """gunicorn hook, a worker died or stopped: its live gauges stop counting."""
        from prometheus_client import multiprocess  # noqa: PLC0415 - see the module docstring

        multiprocess.mark_process_dead(worker.pid, self.dir)  # type: ignore[no-untyped-call]

    def on_exit(self, server: Any) -> None:
        """gunicorn hook, the master exits: remove the directory if it was made here."""
        if self._made:
            shutil.rmtree(self.dir, ignore_errors=True)
