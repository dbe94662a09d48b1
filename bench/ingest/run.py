"""The ingest benchmark: a bare Flask ceiling, single events, and 100-event batches.

In one run, against a real Kafka broker and a real Redis (rate limit on, as in production):

(a) the ceiling: a bare Flask app answering 204, on the same gunicorn settings;
(b) ``POST /send_emoji`` with one reaction per request;
(c) ``POST /v1/streams/<id>/reactions`` with batches of 100 reactions.

It prints requests/s, events/s, p50/p99 latency, the ratios b/a and c/a (of requests/s), and for
(b) and (c) how many events the broker holds (``acks=all``) against how many were answered 2xx.
Each phase starts a fresh server and a fresh topic, warms up, then measures; ``--repeat`` runs
each phase several times and reports the median, since a shared machine is noisy.
``--compare`` runs the phases for several gunicorn configurations (or ingest behind nginx, as the
local stack runs it: ``nginx+gthread:2:8``) in turn, run by run, to choose one.
"""

import argparse
import functools
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._brokers import kafka, redis
from bench._cpu import children_cpu_seconds
from bench.ingest._services import (
    ServerConfig,
    accepted_events,
    cpu_seconds,
    gunicorn,
    messages_in,
    new_topic,
    producer_queue,
)
from bench.ingest._wrk import WrkResult, batch_script, run_wrk, single_script

from emostream.ingest.settings import IngestSettings
from emostream.localstack.process import ProcessDir

BARE_APP = "bench.ingest._bare:create_app()"
INGEST_APP = "emostream.ingest.app:create_app()"
BATCH = 100


@dataclass(frozen=True)
class Phase:
    """One measured workload."""

    name: str
    app: str
    path: str
    events_per_request: int
    script: Callable[[str], str]
    counts_kafka: bool


PHASES = {
    "a": Phase("a bare Flask 204", BARE_APP, "/send_emoji", 1, single_script, counts_kafka=False),
    "b": Phase("b /send_emoji", INGEST_APP, "/send_emoji", 1, single_script, counts_kafka=True),
    "c": Phase(
        f"c batch of {BATCH}",
        INGEST_APP,
        "/v1/streams/bench/reactions",
        BATCH,
        lambda path: batch_script(path, BATCH),
        counts_kafka=True,
    ),
}


@dataclass(frozen=True)
class Measured:
    """One phase's figures."""

    phase: Phase
    load: WrkResult
    in_kafka: int | None
    accepted_events: int | None
    cpu_per_request_s: float
    #: Cores kept busy while measured, by whom: the server, the broker (when it is a process of
    #: this run) and wrk. Their sum against the machine's cores shows whether it was saturated.
    cores: dict[str, float]
    #: The most messages the producers' queues held at once while measured (sampled).
    max_queue: int

    @property
    def events_per_s(self) -> float:
        """Events answered 2xx per second."""
        return self.load.rps * self.phase.events_per_request

    def line(self) -> str:
        """One printed row."""
        kafka = ""
        if self.in_kafka is not None and self.accepted_events is not None:
            same = "all" if self.in_kafka == self.accepted_events else "MISMATCH"
            kafka = f"  Kafka holds {self.in_kafka:,} of {self.accepted_events:,} accepted ({same})"
        refused = self.load.non_2xx + self.load.socket_errors
        return (
            f"{self.phase.name:<18} {self.load.rps:>7,.0f} req/s {self.events_per_s:>9,.0f} ev/s"
            f"  p50 {self.load.p50_ms:>6.1f} ms  p99 {self.load.p99_ms:>6.1f} ms"
            f"  server CPU {self.cpu_per_request_s * 1e6:>5,.0f} us/req"
            f"  non-2xx {refused:,}  producer queue max {self.max_queue:,}{kafka}"
            f"  cores busy: {', '.join(f'{k} {v:.2f}' for k, v in self.cores.items())}"
        )


@dataclass(frozen=True)
class Options:
    """Command-line options."""

    duration_s: float
    warmup_s: float
    connections: int
    wrk_threads: int
    repeat: int
    phases: str
    configs: list[ServerConfig]


def _parse(argv: list[str] | None) -> Options:
    s = IngestSettings()
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per phase")
    parser.add_argument("--connections", type=int, default=64, help="open HTTP connections")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--repeat", type=int, default=1, help="runs per phase; the median counts")
    parser.add_argument("--phases", default="abc", help="which of a, b, c to run")
    parser.add_argument(
        "--compare",
        default=f"gthread:{s.workers}:{s.threads}",
        help="comma-separated gunicorn configurations [nginx+]CLASS:WORKERS:THREADS, measured "
        "in turn (default: ingest's own settings; nginx+ puts nginx in front as the local stack "
        "does)",
    )
    args = parser.parse_args(argv)
    return Options(
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        wrk_threads=args.wrk_threads,
        repeat=args.repeat,
        phases=args.phases,
        configs=[ServerConfig.parse(c) for c in args.compare.split(",")],
    )


def _measure(
    phase: Phase,
    config: ServerConfig,
    *,
    env: dict[str, str],
    bootstrap: str,
    broker_pid: int | None,
    work: Path,
    o: Options,
) -> Measured:
    topic = new_topic(bootstrap)
    run_env = {
        **env,
        "EMOSTREAM_REACTIONS_TOPIC": topic,
        "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
        # wrk is one address standing in for a whole audience: the per-user limit stays on,
        # the per-address one (a bound on one sender without a token) would refuse it all.
        "EMOSTREAM_RATE_LIMIT_PER_ADDRESS_PER_S": "0",
    }
    with gunicorn(phase.app, config, run_env, work / "gunicorn.log") as server:
        url = server.url + phase.path
        script = phase.script(phase.path)
        common = {"connections": o.connections, "threads": o.wrk_threads}
        run_wrk(url, script, work, duration_s=o.warmup_s, **common)
        cpu_before = server.cpu_seconds()
        broker_before = cpu_seconds(broker_pid) if broker_pid else 0.0
        wrk_before = children_cpu_seconds()
        with QueueSampler(server.metrics_url) as queue:
            load = run_wrk(url, script, work, duration_s=o.duration_s, **common)
        cpu = server.cpu_seconds() - cpu_before
        cores = {"server": cpu / load.duration_s}
        if broker_pid:
            cores["broker"] = (cpu_seconds(broker_pid) - broker_before) / load.duration_s
        cores["wrk"] = (children_cpu_seconds() - wrk_before) / load.duration_s
        # wrk does not count the requests still open when it stops; the server's own counter
        # of accepted events (every worker's, in multiprocess mode) does, once they are done.
        time.sleep(1.0)
        accepted = accepted_events(server.metrics_url) if phase.counts_kafka else None
    # The server has stopped, and its workers flushed their producers on the way out.
    in_kafka = messages_in(bootstrap, topic) if phase.counts_kafka else None
    return Measured(phase, load, in_kafka, accepted, cpu / max(1, load.requests), cores, queue.most)


class QueueSampler:
    """Samples the server's producer queue depth once a second while a block runs, keeping the
    most: whether the queue grows as ingest saturates its CPU (docs/autoscaling.md)."""

    def __init__(self, metrics_url: str) -> None:
        self._url = metrics_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.most = 0

    def __enter__(self) -> "QueueSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.most = max(self.most, producer_queue(self._url))
            except OSError:
                continue


def _median(runs: list[Measured]) -> Measured:
    return sorted(runs, key=lambda m: m.load.rps)[len(runs) // 2]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    o = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="emostream-bench-") as tmp:
        work = Path(tmp)
        procs = ProcessDir(work / "run", work / "logs")
        given_kafka = os.environ.get("EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        given_redis = os.environ.get("EMOSTREAM_REDIS_URL")
        with kafka(given_kafka, procs, work) as bootstrap, redis(given_redis, procs, work) as url:
            env = {
                **os.environ,
                "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "EMOSTREAM_REDIS_URL": url,
            }
            _say(
                f"Kafka {bootstrap}{'' if given_kafka else ' (started for this run)'}, "
                f"Redis {url}; wrk {o.wrk_threads} threads, {o.connections} connections, "
                f"{o.duration_s:g} s per phase after {o.warmup_s:g} s warm-up, "
                f"{o.repeat} run(s) each, {os.cpu_count()} cores"
            )
            # The broker's CPU is reported only for one started here (its process is known).
            broker_pid = None if given_kafka else procs.running_pid("kafka")
            measure = functools.partial(
                _measure, env=env, bootstrap=bootstrap, broker_pid=broker_pid, work=work, o=o
            )
            if len(o.configs) > 1:
                _compare(o, measure)
                return 0
            for config in o.configs:
                _say(f"\n== gunicorn {config}")
                medians: dict[str, Measured] = {}
                for key in o.phases:
                    phase = PHASES[key]
                    runs = []
                    for _ in range(o.repeat):
                        runs.append(measure(phase, config))
                        if o.repeat > 1:
                            _say("  run   " + runs[-1].line())
                    medians[key] = _median(runs)
                    _say(("median " if o.repeat > 1 else "") + medians[key].line())
                _ratios(medians)
    return 0


def _compare(o: Options, measure: Callable[[Phase, ServerConfig], Measured]) -> None:
    """Each phase on every configuration in turn (A B C A B C ...), so that a shared machine's
    drift falls on all of them alike; then each configuration's spread, and its figures over
    the first configuration's, run by run."""
    for key in o.phases:
        phase = PHASES[key]
        _say(f"\n== {phase.name}: {', '.join(map(str, o.configs))} in turn")
        runs: dict[ServerConfig, list[Measured]] = {c: [] for c in o.configs}
        for _ in range(o.repeat):
            for config in o.configs:
                runs[config].append(measure(phase, config))
                _say(f"  run   {config}: {runs[config][-1].line()}")
        first = runs[o.configs[0]]
        for config, measured in runs.items():
            rps = [m.load.rps for m in measured]
            cpu = [m.cpu_per_request_s * 1e6 for m in measured]
            _say(f"{config}: req/s {_spread(rps, ',.0f')}; CPU us/req {_spread(cpu, ',.0f')}")
            if measured is not first:
                rps_ratio = [m.load.rps / f.load.rps for m, f in zip(measured, first, strict=True)]
                cpu_ratio = [
                    m.cpu_per_request_s / f.cpu_per_request_s
                    for m, f in zip(measured, first, strict=True)
                ]
                _say(
                    f"  over {o.configs[0]}, run by run: req/s x {_spread(rps_ratio, '.2f')}; "
                    f"CPU/req x {_spread(cpu_ratio, '.2f')}"
                )


def _spread(values: list[float], spec: str) -> str:
    """min / median / max of ``values``."""
    ordered = sorted(values)
    low, mid, high = ordered[0], ordered[len(ordered) // 2], ordered[-1]
    return f"min {low:{spec}} median {mid:{spec}} max {high:{spec}}"


def _ratios(medians: dict[str, Measured]) -> None:
    a = medians.get("a")
    if a is None or not a.load.rps:
        return
    parts = [
        f"{key}/a = {medians[key].load.rps / a.load.rps:.0%}"
        for key in ("b", "c")
        if key in medians
    ]
    if parts:
        _say("ratios of requests/s: " + ", ".join(parts))


def _say(line: str) -> None:
    """The benchmark's output goes to the terminal as it is measured."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
