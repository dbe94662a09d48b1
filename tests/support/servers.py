"""The project's servers under gunicorn, for tests and benchmarks: started, waited for, stopped.

Two ways, both with the server's output in a log file. :func:`start_role` runs a role's app
under a :class:`ProcessDir` (in its own session, stopped with its workers by name), for servers
a module or a session shares; :func:`start_fronted_ingest` runs ingest the way the local stack
does, gunicorn behind nginx. :func:`running` runs any command as a plain child process for the
length of a ``with`` block, for a test that signals the server itself or a benchmark that
compares several configurations one after the other.
"""

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from emostream.localstack import checks
from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack, gunicorn_command
from tests.support.ports import free_port
from tests.support.services import ROOT
from tests.support.waiting import wait_until


def start_role(
    processes: ProcessDir,
    name: str,
    role: str,
    worker_class: str,
    env: Mapping[str, str],
    *,
    timeout_s: float = 60,
) -> str:
    """Serve ``role`` (ingest or fanout) under gunicorn's ``worker_class`` on a free loopback
    port as process ``name``; return its base URL once ``/readyz`` answers 200.
    """
    port = free_port()
    processes.start(name, gunicorn_command(role, port, worker_class), env, ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until(f"{role} server {name}", lambda: checks.http_ok(f"{url}/readyz"), timeout_s)
    return url


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
