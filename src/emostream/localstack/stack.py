"""The local stack as an ordered list of parts: start them, wait for each, stop them, report."""

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from emostream.common.errors import StackError
from emostream.localstack import checks
from emostream.localstack.jars import kafka_broker_jars, spark_kafka_jars
from emostream.localstack.kafka import KafkaBroker, ensure_topics, kafka_ready
from emostream.localstack.nginx import IngestProxy
from emostream.localstack.process import ProcessDir
from emostream.localstack.settings import StackSettings

Say = Callable[[str], None]


@dataclass
class Part:
    """One process of the stack and how to tell it is ready."""

    name: str
    port: int
    command: Callable[[], list[str]]
    ready: Callable[[], bool]
    after_ready: Callable[[], None] = field(default=lambda: None)
    url: str = ""
    #: Variables this part gets on top of the stack's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    #: The port of its Prometheus /metrics, if it has one (may be ``port`` itself).
    metrics_port: int | None = None

    @property
    def ports(self) -> set[int]:
        """Every port the part listens on."""
        return {self.port} if self.metrics_port is None else {self.port, self.metrics_port}

    @property
    def metrics_url(self) -> str:
        """Where its Prometheus metrics are; empty if it has none."""
        return "" if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}/metrics"


class LocalStack:
    """Kafka, Redis, the Spark aggregation, ingest and fanout on one machine, in start order."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        s = self.settings
        self.root = s.stack_dir.resolve()
        self.procs = ProcessDir(self.root / "run", self.root / "logs")
        self.kafka_bootstrap = f"127.0.0.1:{s.kafka_port}"
        self.redis_url = f"redis://127.0.0.1:{s.redis_port}/0"
        self.broker = KafkaBroker(
            jars=self.root / "jars" / f"kafka-{s.kafka_version}",
            data_dir=self.root / "kafka",
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
            heap=s.kafka_heap,
        )
        ingest = f"http://127.0.0.1:{s.ingest_port}"
        upstream = f"http://127.0.0.1:{s.ingest_upstream_port}"
        fanout = f"http://127.0.0.1:{s.fanout_port}"
        aggregate_metrics = f"http://127.0.0.1:{s.aggregate_metrics_port}/metrics"
        self.parts = [
            Part(
                "kafka",
                s.kafka_port,
                self.broker.command_after_prepare,
                lambda: kafka_ready(self.kafka_bootstrap),
                after_ready=self._create_topics,
                url=self.kafka_bootstrap,
            ),
            Part(
                "redis",
                s.redis_port,
                self._redis_command,
                lambda: checks.redis_ready(self.redis_url),
                url=self.redis_url,
            ),
            Part(
                "aggregate",
                s.aggregate_metrics_port,
                lambda: [sys.executable, "-m", "emostream.aggregate"],
                lambda: checks.http_ok(aggregate_metrics, "emostream_aggregate_query_active 1.0"),
                url=aggregate_metrics,
                env={"EMOSTREAM_METRICS_PORT": str(s.aggregate_metrics_port)},
                metrics_port=s.aggregate_metrics_port,
            ),
            # Clients reach ingest through nginx, which reads each request whole before
            # gunicorn's threads see it (emostream.localstack.nginx says why).
            Part(
                "ingest",
                s.ingest_upstream_port,
                lambda: gunicorn_command("ingest", s.ingest_upstream_port, "gthread"),
                lambda: checks.http_ok(f"{upstream}/readyz"),
                url=upstream,
                # The client's address (per-address rate limit) is nginx's X-Forwarded-For.
                env={
                    "EMOSTREAM_FORWARDED_FOR_HOPS": "1",
                    "EMOSTREAM_METRICS_PORT": str(s.ingest_metrics_port),
                },
                metrics_port=s.ingest_metrics_port,
            ),
            Part(
                "nginx",
                s.ingest_port,
                lambda: self.ingest_proxy().command_after_prepare(),
                lambda: checks.http_ok(f"{ingest}/readyz"),
                url=ingest,
            ),
            Part(
                "fanout",
                s.fanout_port,
                lambda: gunicorn_command("fanout", s.fanout_port, "gevent"),
                lambda: checks.http_ok(f"{fanout}/readyz"),
                url=fanout,
                env={"EMOSTREAM_METRICS_PORT": str(s.fanout_metrics_port)},
                metrics_port=s.fanout_metrics_port,
            ),
        ]

    # -- commands -------------------------------------------------------------------------

    def _create_topics(self) -> None:
        s = self.settings
        ensure_topics(
            self.kafka_bootstrap,
            {s.reactions_topic: s.reactions_partitions, s.swarms_topic: s.swarms_partitions},
        )

    def _redis_command(self) -> list[str]:
        server = checks.require_program("redis-server", "apt-get install -y redis-server")
        data = self.root / "redis"
        data.mkdir(parents=True, exist_ok=True)
        return [
            server, "--port", str(self.settings.redis_port), "--bind", "127.0.0.1",
            "--dir", str(data), "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip

    def ingest_proxy(self) -> IngestProxy:
        """nginx in front of ingest, configured from the stack's and ingest's settings."""
        from emostream.ingest.settings import IngestSettings  # noqa: PLC0415 - only `up` needs it

        s = self.settings
        return IngestProxy(
            root=self.root / "nginx",
            port=s.ingest_port,
            upstream_port=s.ingest_upstream_port,
            header_timeout_s=s.ingest_proxy_header_timeout_s,
            body_timeout_s=s.ingest_proxy_body_timeout_s,
            max_connections=s.ingest_proxy_max_connections,
            # Ingest's own limit, read from the same environment its gunicorn gets.
            max_body_bytes=IngestSettings().max_body_bytes,
        )

    def _spark_jars(self) -> list[Path]:
        return spark_kafka_jars(self.root / "jars", pyspark.__version__)

    def child_env(self) -> dict[str, str]:
        """The environment every part runs with: the caller's, pointed at this stack.

        Every client of a local stack (the generator, the load test, a browser) comes from
        127.0.0.1, so the per-address rate limit is off unless the caller sets it; the stream
        registry runs open, with its caps.
        """
        s = self.settings
        jars = self._spark_jars()
        return {
            "EMOSTREAM_RATE_LIMIT_PER_ADDRESS_PER_S": "0",
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "EMOSTREAM_REDIS_URL": self.redis_url,
            "EMOSTREAM_REACTIONS_TOPIC": s.reactions_topic,
            "EMOSTREAM_SWARMS_TOPIC": s.swarms_topic,
            "EMOSTREAM_SPARK_JARS": ",".join(str(j) for j in jars),
            "EMOSTREAM_CHECKPOINT_LOCATION": str(self.root / "checkpoints" / "aggregate"),
        }

    # -- lifecycle ------------------------------------------------------------------------

    def up(self, say: Say) -> None:
        """Start every part not yet running, in order, waiting until each is ready."""
        checks.require_java17()
        say(
            f"  {'jars':<10} Kafka {self.settings.kafka_version} and Spark's Kafka connector "
            f"(fetched once into {self.root / 'jars'})"
        )
        kafka_broker_jars(self.root / "jars", self.settings.kafka_version)
        self._spark_jars()
        env: dict[str, str] | None = None
        for part in self.parts:
            running = self.procs.running_pid(part.name) is not None
            if running and part.ready():
                say(f"  {part.name:<10} already running  {part.url}")
                continue
            if not running:
                taken = [port for port in sorted(part.ports) if not checks.port_free(port)]
                if taken:
                    raise StackError(
                        f"port {taken[0]} is in use by another program, and {part.name} needs "
                        f"it: stop that program or choose another port (EMOSTREAM_*_PORT)"
                    )
                cmd = part.command()
                env = env or self.child_env()
                self.procs.start(part.name, cmd, {**env, **part.env}, Path.cwd())
            self._wait(part, say)
            part.after_ready()

    def _wait(self, part: Part, say: Say) -> None:
        start = time.monotonic()
        next_note = start + 5
        while not part.ready():
            now = time.monotonic()
            if self.procs.running_pid(part.name) is None:
                raise StackError(f"{part.name} exited during start-up:\n{self.tail(part.name)}")
            if now - start > self.settings.ready_timeout_s:
                raise StackError(
                    f"{part.name} not ready after {self.settings.ready_timeout_s:.0f} s:\n"
                    f"{self.tail(part.name)}"
                )
            if now >= next_note:
                say(f"  {part.name:<10} starting ... {now - start:.0f} s")
                next_note = now + 5
            time.sleep(0.25)
        say(f"  {part.name:<10} ready in {time.monotonic() - start:4.1f} s  {part.url}")

    def down(self, say: Say) -> None:
        """Stop every part this stack started, in reverse order."""
        for part in reversed(self.parts):
            if self.procs.stop(part.name, grace_s=20):
                say(f"  {part.name:<10} stopped")

    def status(self) -> Iterator[tuple[str, int | None, bool, str, str]]:
        """(name, pid or None, ready, url, metrics url or "") for every part."""
        for part in self.parts:
            pid = self.procs.running_pid(part.name)
            yield part.name, pid, pid is not None and part.ready(), part.url, part.metrics_url

    def tail(self, name: str, lines: int = 30) -> str:
        """The last ``lines`` lines of a part's log."""
        path = self.procs.log_file(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_files(self) -> list[Path]:
        """Every part's log file, in start order."""
        return [self.procs.log_file(p.name) for p in self.parts]


def gunicorn_command(role: str, port: int, worker_class: str) -> list[str]:
    """Command line serving role ``role``'s app factory under gunicorn on loopback ``port``."""
    return [
        sys.executable, "-m", "gunicorn", "-c", f"python:emostream.{role}.gunicorn_conf",
        "-k", worker_class, "--bind", f"127.0.0.1:{port}", f"emostream.{role}.app:create_app()",
    ]  # fmt: skip
