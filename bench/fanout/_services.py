"""The processes a run needs: Kafka, Redis, and the servers under test, with their footprint.

A broker or Redis named by ``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``EMOSTREAM_REDIS_URL`` is
used as it is; otherwise one is started on free loopback ports for the run (the broker from the
local stack's Maven jars) and stopped at the end. Every process is started in its own session
through :class:`ProcessDir`, so stopping it also stops its children (gunicorn's workers, the
baseline's forks), on Ctrl-C too.

The fanout is a black box here: the local stack's gunicorn command line and its ``EMOSTREAM_*``
settings, nothing imported from its package.
"""

import os
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port
from tests.support.services import ROOT
from tests.support.waiting import wait_until

from emostream.localstack.process import ProcessDir
from emostream.localstack.stack import gunicorn_command

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    """A server under test: the root of its process tree and where viewers connect."""

    name: str
    pid: int
    addresses: list[tuple[str, int]]
    paths: list[str]
    about: str


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _ready_everywhere(
    url: str, procs: ProcessDir, name: str, times: int = 12
) -> Callable[[], bool]:
    """Ready when ``url`` answers 200 ``times`` in a row: requests land on any worker."""

    def ready() -> bool:
        if procs.running_pid(name) is None:
            raise SystemExit(f"{name} exited during start-up; see {procs.log_file(name)}")
        return all(http_status(url) == 200 for _ in range(times))

    return ready


def fanout(
    env: Mapping[str, str],
    procs: ProcessDir,
    *,
    streams: list[str],
    workers: int,
    max_connections: int,
) -> AbstractContextManager[Server]:
    """The fanout service, started with the local stack's gunicorn command line."""
    port = free_port()
    full_env = {
        **env,
        "EMOSTREAM_WORKERS": str(workers),
        "EMOSTREAM_MAX_CONNECTIONS": str(max_connections),
        "EMOSTREAM_LOG_LEVEL": "WARNING",
        # Its metrics port, out of the way of a local stack's.
        "EMOSTREAM_METRICS_PORT": str(free_port()),
    }
    cmd = gunicorn_command("fanout", port, "gevent")
    description = f"gunicorn -k gevent, {workers} workers x {max_connections} connections"
    return _served(
        "fanout", cmd, full_env, procs,
        port=port, streams=streams, description=description, ready_s=90,
    )  # fmt: skip


def baseline(
    env: Mapping[str, str], procs: ProcessDir, *, streams: list[str], workers: int, topic: str
) -> AbstractContextManager[Server]:
    """The raw asyncio broadcaster of ``bench.fanout._baseline``, reading the same topic."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "bench.fanout._baseline", "--port", str(port),
        "--workers", str(workers), "--bootstrap", env["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"],
        "--topic", topic,
    ]  # fmt: skip
    description = f"raw asyncio, {workers} processes (SO_REUSEPORT), same Kafka topic"
    return _served(
        "baseline", cmd, env, procs,
        port=port, streams=streams, description=description, ready_s=60,
    )  # fmt: skip


@contextmanager
def _served(
    name: str,
    cmd: list[str],
    env: Mapping[str, str],
    procs: ProcessDir,
    *,
    port: int,
    streams: list[str],
    description: str,
    ready_s: float,
) -> Iterator[Server]:
    """Run ``cmd`` as server ``name`` on ``port`` for the block, once every worker is ready."""
    pid = procs.start(name, cmd, env, ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(name, _ready_everywhere(f"{url}/readyz", procs, name), ready_s)
        paths = [f"/v1/streams/{s}/events" for s in streams]
        yield Server(name, pid, [("127.0.0.1", port)], paths, description)
    finally:
        procs.stop(name, grace_s=30)


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children[ppid].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (shared pages counted in each, as ``ps`` does)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by ``pids``."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total
