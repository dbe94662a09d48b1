"""The fanout benchmark: connections held, deliveries/s, delivery latency and memory per viewer.

In one run, against a real Kafka broker (and Redis), for each server in ``--servers``:

- ``fanout``: the service itself, started with the local stack's gunicorn command line
  (``-k gevent``) and ``EMOSTREAM_WORKERS`` / ``EMOSTREAM_MAX_CONNECTIONS``;
- ``baseline``: the ceiling, a minimal raw-asyncio SSE broadcaster reading the same Kafka topic
  with the same number of processes (``bench.fanout._baseline``);
- ``centrifugo`` (optional): Centrifugo v6 built from the Go module proxy, fed through its HTTP
  API, read through its unidirectional SSE endpoint.

A publisher sends a swarm for each of ``--streams`` streams ``--rate`` times a second, each
stamped ``emitted_at`` when produced. Viewers in ``--clients`` processes connect in steps
(``--steps``, each step adding to the last, for at most ``--ramp-timeout`` seconds), each viewer
to one stream, round-robin. At each step, after the ramp and ``--settle`` seconds, a window of
``--duration`` seconds is measured: every swarm the viewers read in it (deliveries/s, however
late), and the latency from stamp to read of every swarm stamped in it that arrives within
``--grace`` seconds after it; the server's resident memory and CPU time are read from /proc over
its whole process tree. No figure passes or fails: the summary sets them beside the targets.
"""

import argparse
import dataclasses
import math
import os
import resource
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench._brokers import kafka, redis
from bench.fanout import _centrifugo
from bench.fanout._publisher import Publisher, stream_ids
from bench.fanout._services import (
    Server,
    baseline,
    cpu_seconds,
    fanout,
    process_tree,
    rss_bytes,
)
from bench.fanout._viewers import Counts, Target, Viewers

from emostream.common.events import now_ms
from emostream.localstack.kafka import ensure_topics
from emostream.localstack.process import ProcessDir

SERVERS = ("fanout", "baseline", "centrifugo")
#: The product's targets.
SPEC_CONNECTIONS = 20_000
SPEC_DELIVERIES = 50_000
SPEC_P99_MS = 250
SPEC_P99_AT = 10_000


@dataclass(frozen=True)
class Options:
    """Command-line options."""

    steps: list[int]
    streams: int
    rate: float
    duration_s: float
    settle_s: float
    ramp_timeout_s: float
    grace_s: float
    clients: int
    workers: int
    max_connections: int
    servers: list[str]
    fanout_settings: dict[str, str]
    centrifugo_bin: Path | None
    centrifugo_version: str


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout",
        description="Connections, deliveries/s, delivery latency and memory per connection of "
        "the fanout, against a raw asyncio SSE broadcaster (and optionally Centrifugo).",
    )
    parser.add_argument(
        "--steps",
        default="1000,5000,10000,20000",
        help="comma-separated connection counts, measured in turn (default %(default)s)",
    )
    parser.add_argument("--streams", type=int, default=100, help="streams (default %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=2.0, help="swarms per stream per second (default %(default)s)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds measured per step (default %(default)s)",
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after a ramp before measuring"
    )
    parser.add_argument(
        "--ramp-timeout",
        type=float,
        default=90.0,
        help="most seconds spent opening a step's connections; the step is measured with what "
        "is open by then (default %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=3.0,
        help="seconds after a step for its last swarms to arrive (later ones count as lost)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="client processes (default: one per 5,000 connections of the largest step)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="fanout gunicorn workers, and baseline processes (default %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="EMOSTREAM_MAX_CONNECTIONS per fanout worker (default: room for the largest "
        "step over the workers, plus 20%%)",
    )
    parser.add_argument(
        "--servers",
        default="fanout,baseline",
        help=f"comma-separated, of {', '.join(SERVERS)} (default %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a fanout setting for this run, e.g. --set consume_timeout_s=0.05 (repeatable; "
        "passed as EMOSTREAM_NAME)",
    )
    parser.add_argument(
        "--centrifugo-bin",
        type=Path,
        default=None,
        help="a Centrifugo v6 binary (default: build it into .emostream/bin with go install)",
    )
    parser.add_argument("--centrifugo-version", default=_centrifugo.DEFAULT_VERSION)
    a = parser.parse_args(argv)
    steps = sorted(int(s) for s in a.steps.split(","))
    servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown or not steps or steps[0] < 1 or a.rate <= 0 or a.streams < 1:
        parser.error(f"bad --steps, --rate, --streams or --servers {sorted(unknown)}")
    largest = steps[-1]
    clients = a.clients or max(1, math.ceil(largest / 5000))
    if largest / clients > 18_000:
        parser.error("a client process may hold at most 20,000 open files: add --clients")
    max_connections = a.max_connections or math.ceil(largest * 1.2 / a.workers)
    return Options(
        steps=steps,
        streams=a.streams,
        rate=a.rate,
        duration_s=a.duration,
        settle_s=a.settle,
        ramp_timeout_s=a.ramp_timeout,
        grace_s=a.grace,
        clients=clients,
        workers=a.workers,
        max_connections=max_connections,
        servers=servers,
        fanout_settings=dict(item.split("=", 1) for item in a.set),
        centrifugo_bin=a.centrifugo_bin,
        centrifugo_version=a.centrifugo_version,
    )


@dataclass(frozen=True)
class Row:
    """One measured step of one server."""

    server: str
    target: int
    counts: Counts
    refused: int
    failed: int
    expected: float
    duration_s: float
    rss: int
    idle_rss: int
    cpu_s: float
    client_cpu_s: float

    @property
    def per_s(self) -> float:
        """Deliveries per second."""
        return self.counts.received / self.duration_s

    @property
    def kib_per_connection(self) -> float:
        """Resident memory added per connection held, in KiB."""
        held = self.counts.held
        return (self.rss - self.idle_rss) / held / 1024 if held else math.nan

    def line(self) -> str:
        """One row of the table."""
        c = self.counts
        share = c.timed / self.expected if self.expected else math.nan
        cpu_us = self.cpu_s / c.received * 1e6 if c.received else math.nan

        def quantile(q: float) -> str:
            # Swarms still missing after the grace are slower than any timed one: when more
            # than 1 - q of them are missing, the true quantile lies above the timed ones.
            value = c.percentile(q)
            shown = f"{value:.0f}"
            return f">{shown}" if share < min(q, 0.99) and not math.isnan(value) else shown

        return (
            f"{self.server:<10} {self.target:>7,} {c.held:>7,} {self.refused:>6,} {self.failed:>6,}"
            f" {c.dropped:>5,} {self.per_s:>10,.0f} {share:>7.1%} {quantile(0.5):>7}"
            f" {quantile(0.99):>7} {quantile(1.0):>7}"
            f" {self.rss / 2**20:>8,.0f} {self.kib_per_connection:>8.1f}"
            f" {self.cpu_s / self.duration_s:>5.0%} {cpu_us:>6.0f}"
            f" {self.client_cpu_s / self.duration_s:>7.0%}"
        )


HEADER = (
    f"{'server':<10} {'target':>7} {'held':>7} {'refusd':>6} {'failed':>6} {'drop':>5}"
    f" {'deliv/s':>10} {'timed':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    f" {'RSS MiB':>8} {'KiB/conn':>8} {'CPU':>5} {'us/dlv':>6} {'cli CPU':>7}"
)


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


class _Ticker:
    """Prints a progress line at most every few seconds."""

    def __init__(self, prefix: str, every_s: float = 3.0) -> None:
        self.prefix = prefix
        self.every_s = every_s
        self.next = time.monotonic() + every_s

    def __call__(self, held: int) -> None:
        if time.monotonic() >= self.next:
            _say(f"{self.prefix}{held:,} connections open")
            self.next = time.monotonic() + self.every_s


def _measure_step(
    o: Options,
    server: Server,
    publisher: Publisher,
    viewers: Viewers,
    target: int,
    *,
    idle_rss: int,
    before: Counts,
) -> Row:
    started = time.monotonic()
    held = viewers.top_up(
        target,
        Target(server.addresses, server.paths),
        o.ramp_timeout_s,
        _Ticker(f"  {server.name} ramp: "),
    )
    _say(f"  {server.name}: {held:,} of {target:,} open after {time.monotonic() - started:.0f} s")
    time.sleep(o.settle_s)
    pids = process_tree(server.pid)
    cpu0 = cpu_seconds(pids)
    client_cpu0 = cpu_seconds(viewers.pids)
    since = now_ms() + 50
    until = since + int(o.duration_s * 1000)
    viewers.measure(since, until)
    time.sleep(o.duration_s + 0.05)
    pids = process_tree(server.pid)
    cpu = cpu_seconds(pids) - cpu0
    client_cpu = cpu_seconds(viewers.pids) - client_cpu0
    rss = rss_bytes(pids)
    time.sleep(o.grace_s)
    counts = viewers.collect()
    return Row(
        server=server.name,
        target=target,
        counts=counts,
        refused=counts.refused - before.refused,
        failed=counts.failed - before.failed,
        # Each burst carries one swarm for every stream, so one for every viewer.
        expected=counts.held * publisher.bursts(since, until),
        duration_s=o.duration_s,
        rss=rss,
        idle_rss=idle_rss,
        cpu_s=cpu,
        client_cpu_s=client_cpu,
    )


def _phase(o: Options, server: Server, publisher: Publisher, viewers: Viewers) -> list[Row]:
    with publisher:
        time.sleep(3)  # every worker has seen a swarm of every stream
        idle_rss = rss_bytes(process_tree(server.pid))
        _say(f"\n== {server.name}: {server.about}; idle RSS {idle_rss / 2**20:,.0f} MiB")
        rows: list[Row] = []
        before = Counts()
        try:
            for target in o.steps:
                if not publisher.alive():
                    raise SystemExit("the publisher stopped; see its output above")
                row = _measure_step(
                    o, server, publisher, viewers, target, idle_rss=idle_rss, before=before
                )
                before = row.counts
                rows.append(row)
                _say(HEADER if len(rows) == 1 else "")
                _say(row.line())
        finally:
            viewers.close_all()
    return rows


@contextmanager
def _server(
    name: str, o: Options, env: dict[str, str], procs: ProcessDir, work: Path
) -> Iterator[tuple[Server, Publisher]]:
    """Server ``name`` running, and its publisher (not yet started)."""
    streams = stream_ids(o.streams)
    bootstrap = env["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"]
    topic = env["EMOSTREAM_SWARMS_TOPIC"]
    started: AbstractContextManager[Server]
    if name == "fanout":
        settings = {f"EMOSTREAM_{k.upper()}": v for k, v in o.fanout_settings.items()}
        started = fanout(
            {**env, **settings},
            procs,
            streams=streams,
            workers=o.workers,
            max_connections=o.max_connections,
        )
    elif name == "baseline":
        started = baseline(env, procs, streams=streams, workers=o.workers, topic=topic)
    else:
        binary = o.centrifugo_bin or _centrifugo.ensure_binary(o.centrifugo_version, _say)
        started = _centrifugo.serve(binary, procs, work, streams=streams)
    with started as running:
        server = running
        if name == "fanout" and o.fanout_settings:
            given = ", ".join(f"{k}={v}" for k, v in o.fanout_settings.items())
            server = dataclasses.replace(running, about=f"{running.about}, {given}")
        if name == "centrifugo":
            api = server.addresses[0]
            yield server, Publisher.centrifugo(api, _centrifugo.API_KEY, o.streams, o.rate)
        else:
            yield server, Publisher.kafka(bootstrap, topic, o.streams, o.rate)


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every process started here is stopped on the way out."""

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@contextmanager
def _services(work: Path) -> Iterator[tuple[dict[str, str], ProcessDir]]:
    procs = ProcessDir(work / "run", work / "logs")
    given_kafka = os.environ.get("EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS")
    given_redis = os.environ.get("EMOSTREAM_REDIS_URL")
    with kafka(given_kafka, procs, work) as bootstrap, redis(given_redis, procs, work) as url:
        _say(f"Kafka {bootstrap}{'' if given_kafka else ' (started for this run)'}, Redis {url}")
        yield (
            {
                **os.environ,
                "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "EMOSTREAM_REDIS_URL": url,
            },
            procs,
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    o = _parse(argv)
    _stop_on_sigterm()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows: list[Row] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="emostream-bench-fanout-") as tmp,
            _services(Path(tmp)) as (env, procs),
        ):
            work = Path(tmp)
            topic = f"bench-{uuid.uuid4().hex[:8]}-swarms"
            ensure_topics(env["EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"], {topic: 3})
            env["EMOSTREAM_SWARMS_TOPIC"] = topic
            _say(
                f"{o.streams} streams x {o.rate:g} swarms/s, steps {o.steps}, {o.duration_s:g} s "
                f"measured per step; {o.clients} client processes; {os.cpu_count()} cores, "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            with Viewers(o.clients) as viewers:
                for name in o.servers:
                    with _server(name, o, env, procs, work) as (server, publisher):
                        rows += _phase(o, server, publisher, viewers)
    except KeyboardInterrupt:
        _say("\ninterrupted; every process started here is stopped")
        _report(o, rows)
        return 130
    _report(o, rows)
    return 0


def _report(o: Options, rows: list[Row]) -> None:
    if not rows:
        return
    _say("\nRESULTS")
    _say(
        f"{o.streams} streams x {o.rate:g} swarms/s; latency = swarm stamped at the publisher "
        f"-> read by the viewer; deliv/s = swarms read in the window, however late; timed = "
        f"share of the swarms published in the window that arrived within {o.grace_s:g} s after "
        f"it (p50/p99/max are theirs; '>' where too many came later); KiB/conn = (RSS - idle "
        f"RSS) / held; CPU = server process tree, share of one core, and CPU us per delivery; "
        f"cli CPU = the client processes, share of one core (they share the machine's "
        f"{os.cpu_count()} cores with the server); load average now "
        f"{os.getloadavg()[0]:.2f}"
    )
    _say(HEADER)
    for row in rows:
        _say(row.line())
    _say("")
    for name in dict.fromkeys(r.server for r in rows):
        mine = [r for r in rows if r.server == name]
        most = max(r.counts.held for r in mine)
        best = max(r.per_s for r in mine)
        at = [r for r in mine if r.target == SPEC_P99_AT]
        p99 = "not measured"
        if at:
            timed = at[0].counts.timed / at[0].expected if at[0].expected else 0.0
            late = timed < 0.99  # over 1% came later than the grace, or never
            p99 = f"> {o.grace_s:g} s" if late else f"{at[0].counts.percentile(0.99):.0f} ms"
        busiest = max(mine, key=lambda r: r.counts.received)
        cpu_us = busiest.cpu_s / max(1, busiest.counts.received) * 1e6
        _say(
            f"{name}: most held {most:,} (spec >= {SPEC_CONNECTIONS:,}), best {best:,.0f} "
            f"deliveries/s (spec >= {SPEC_DELIVERIES:,}), p99 at {SPEC_P99_AT:,}: {p99} "
            f"(spec <= {SPEC_P99_MS} ms); server CPU {cpu_us:.0f} us per delivery at its "
            f"busiest step, i.e. at most {1e6 / cpu_us:,.0f} deliveries/s per core"
        )


if __name__ == "__main__":
    sys.exit(main())
