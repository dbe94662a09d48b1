"""The project's servers under gunicorn, for tests and benchmarks: started, waited for, stopped.

Two ways, both with the server's output in a log file. :func:`start_role` runs a role's app
under a :class:`ProcessDir` (in its own session, stopped with its workers by name), for servers
a module or a session shares; :func:`start_fronted_ingest` runs ingest the way the local stack
does, gunicorn behind nginx. :func:`running` runs any command as a plain child process for the
length of a ``with`` block, for a test that signals the server itself or a benchmark that
compares several configurations one after the other. A role's /metrics is on a metrics port of
its own (:func:`check_metrics_port_only` holds a server to that).
"""

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from emostream.localstack import checks
from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack, gunicorn_command
from tests.support.ports import free_port
from tests.support.services import ROOT
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Served:
    """Where a server started by :func:`start_role` answers: its base URL, and its /metrics on
    the metrics port."""

    url: str
    metrics_url: str


def start_role(
    processes: ProcessDir,
    name: str,
    role: str,
    worker_class: str,
    env: Mapping[str, str],
    *,
    timeout_s: float = 60,
) -> Served:
    """Serve ``role`` (ingest or fanout) under gunicorn's ``worker_class`` on a free loopback
    port, its metrics on another, as process ``name``; return where, once ``/readyz`` answers
    200.
    """
    port, metrics_port = free_port(), free_port()
    env = {**env, "EMOSTREAM_METRICS_PORT": str(metrics_port)}
    processes.start(name, gunicorn_command(role, port, worker_class), env, ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(f"{role} server {name}", lambda: checks.http_ok(f"{url}/readyz"), timeout_s)
    return Served(url, f"http://127.0.0.1:{metrics_port}/metrics")


def check_metrics_port_only(
    url: str, metrics_url: str, family_prefix: str, public_path: str
) -> None:
    """Assert that the server at ``url`` serves /metrics at ``metrics_url`` and nowhere else.

    The metrics port answers ``GET /metrics`` with the role's families (``family_prefix``) and
    404 for ``public_path``; the public port answers /metrics with its 404 problem document,
    even when the Host header names the metrics port (gunicorn derives SERVER_PORT from it).
    """
    metrics = requests.get(metrics_url, timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert f"# TYPE {family_prefix}" in metrics.text
    base = metrics_url.removesuffix("/metrics")
    assert requests.get(base + public_path, timeout=10).status_code == 404
    assert requests.post(metrics_url, timeout=10).status_code == 405
    metrics_host = base.removeprefix("http://")
    for headers in ({}, {"Host": metrics_host}):
        public = requests.get(f"{url}/metrics", headers=headers, timeout=10)
        assert public.status_code == 404, headers
        assert public.headers["Content-Type"] == "application/problem+json", headers
        assert family_prefix not in public.text


def start_fronted_ingest(
    processes: ProcessDir,
    name: str,
    env: Mapping[str, str],
    *,
    timeout_s: float = 60,
    **stack_settings: Any,
) -> str:
    """Serve ingest as the local stack does, with its own parts "ingest" (gunicorn) and "nginx"
    in front, on free loopback ports as processes ``<name>-ingest`` and ``<name>-nginx``.

    Returns nginx's base URL once ``/readyz`` answers 200 through it. ``stack_settings`` are
    :class:`StackSettings` fields (the proxy's timeouts, say); nginx's files live next to
    ``processes``' directories.
    """
    settings = StackSettings(
        stack_dir=processes.run_dir.parent / name,
        ingest_port=free_port(),
        ingest_upstream_port=free_port(),
        ingest_metrics_port=free_port(),
        **stack_settings,
    )
    stack = LocalStack(settings)
    url = ""
    for part in stack.parts:
        if part.name in ("ingest", "nginx"):
            processes.start(f"{name}-{part.name}", part.command(), {**env, **part.env}, ROOT)
            wait_until(f"{part.name} of {name}", part.ready, timeout_s)
            url = part.url
    return url


@contextmanager
def running(
    cmd: list[str], env: Mapping[str, str], log: Path, *, stop_s: float, append: bool = False
) -> Iterator["subprocess.Popen[bytes]"]:
    """Run ``cmd`` from the repository root, its output in ``log``, until the block ends.

    Then, if it is still running, SIGTERM it and wait ``stop_s`` for it to exit before killing
    it. ``append`` keeps what ``log`` held already.
    """
    with log.open("ab" if append else "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=stop_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
