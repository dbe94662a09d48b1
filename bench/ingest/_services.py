"""The services a benchmark run needs: a Kafka broker, a Redis, and gunicorn servers.

A broker or Redis named by ``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``EMOSTREAM_REDIS_URL`` is
used as it is; otherwise one is started on free loopback ports for the run (the broker from the
local stack's Maven jars) and stopped at the end. A server may run behind nginx, configured as
the local stack configures it.
"""

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from tests.support.ports import free_port
from tests.support.servers import running
from tests.support.waiting import wait_until

from emostream.localstack.kafka import ensure_topics
from emostream.localstack.settings import StackSettings
from emostream.localstack.stack import LocalStack


def new_topic(bootstrap: str, partitions: int = 6) -> str:
    """A fresh reactions topic for one run, so its message count is the run's alone."""
    name = f"bench-{uuid.uuid4().hex[:8]}-reactions"
    ensure_topics(bootstrap, {name: partitions})
    return name


def messages_in(bootstrap: str, topic: str) -> int:
    """How many messages the topic holds (the sum of its partitions' high watermarks)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


#: The proxies a server can be measured behind.
FRONTS = ("nginx",)


@dataclass(frozen=True)
class ServerConfig:
    """The gunicorn settings a run compares: worker class, processes and threads, and the proxy
    in front (``nginx``, as the local stack runs ingest) or none."""

    worker_class: str
    workers: int
    threads: int
    front: str = ""

    def __str__(self) -> str:
        front = f"{self.front} + " if self.front else ""
        return f"{front}{self.worker_class} workers={self.workers} threads={self.threads}"

    @classmethod
    def parse(cls, text: str) -> "ServerConfig":
        """``[FRONT+]CLASS:WORKERS:THREADS``, e.g. ``gthread:3:4`` or ``nginx+gthread:2:8``."""
        front, _, rest = text.rpartition("+")
        if front and front not in FRONTS:
            raise SystemExit(f"unknown front {front!r} in {text!r}; one of {FRONTS}")
        kind, workers, threads = rest.split(":")
        return cls(kind, int(workers), int(threads), front)


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its children.

    The children are gunicorn's workers; what one request costs in CPU is steadier on a shared
    machine than how many requests a second it manages.
    """
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command: state(0) ppid(1) ... utime(11) stime(12).
        if int(fields[1]) == pid or stat.parent.name == str(pid):
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


@dataclass(frozen=True)
class Server:
    """A running gunicorn, maybe behind nginx: the URL clients use, the processes serving it
    (gunicorn's master, and nginx's), and its /metrics (on gunicorn's metrics port)."""

    url: str
    pids: tuple[int, ...]
    metrics_url: str

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process serving (workers included)."""
        return sum(cpu_seconds(pid) for pid in self.pids)


@contextmanager
def gunicorn(app: str, config: ServerConfig, env: Mapping[str, str], log: Path) -> Iterator[Server]:
    """Serve ``app`` with ingest's gunicorn configuration and ``config``, behind nginx as the
    local stack runs it if ``config`` says so.

    Stopped with SIGTERM at the end, which makes ingest's workers flush their producers.
    """
    port, metrics_port = free_port(), free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:emostream.ingest.gunicorn_conf",
        "-k", config.worker_class, "--bind", f"127.0.0.1:{port}", app,
    ]  # fmt: skip
    full_env = {
        **env,
        "EMOSTREAM_WORKERS": str(config.workers),
        "EMOSTREAM_THREADS": str(config.threads),
        "EMOSTREAM_LOG_LEVEL": "WARNING",
    }
    local = None
    if config.front == "nginx":
        settings = StackSettings(
            stack_dir=log.parent / "stack",
            ingest_port=free_port(),
            ingest_upstream_port=port,
            ingest_metrics_port=metrics_port,
        )
        local = LocalStack(settings)
        # What the stack gives ingest behind nginx (the client address from X-Forwarded-For).
        full_env.update(next(p.env for p in local.parts if p.name == "ingest"))
    full_env["EMOSTREAM_METRICS_PORT"] = str(metrics_port)
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        proc = stack.enter_context(running(cmd, full_env, log, stop_s=60, append=True))
        wait_until(f"gunicorn serving {app}", lambda: _answers(url, proc), 60)
        pids = (proc.pid,)
        if local is not None:
            proxy = local.ingest_proxy()
            front = stack.enter_context(
                running(proxy.command_after_prepare(), full_env, log, stop_s=10, append=True)
            )
            url = proxy.url
            wait_until("nginx in front of gunicorn", lambda: _answers(url, front), 30)
            pids = (proc.pid, front.pid)
        yield Server(url, pids, f"http://127.0.0.1:{metrics_port}/metrics")


def _answers(url: str, proc: "subprocess.Popen[bytes]") -> bool:
    if proc.poll() is not None:
        raise SystemExit(f"{proc.args!r} exited with {proc.returncode} before answering")
    try:
        urllib.request.urlopen(url + "/healthz", timeout=2).close()  # noqa: S310 - loopback
    except urllib.error.HTTPError:
        return True  # the bare app has no /healthz, but it answers
    except OSError:
        return False
    return True


def _metric_sum(metrics_url: str, prefix: str) -> float:
    """The sum of the server's samples whose line starts with ``prefix``."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def accepted_events(metrics_url: str) -> int:
    """The server's count of accepted events (``emostream_ingest_events_accepted_total``)."""
    return round(_metric_sum(metrics_url, "emostream_ingest_events_accepted_total{"))


def producer_queue(metrics_url: str) -> int:
    """Messages in the server's Kafka producer queues (``emostream_ingest_producer_queue_depth``,
    refreshed by librdkafka's statistics every few seconds)."""
    return round(_metric_sum(metrics_url, "emostream_ingest_producer_queue_depth "))
