"""Benchmark of the Spark aggregation in local mode: sustained events/s, event-to-swarm latency.

1. Pre-load ``reactions`` with several million realistic events (many streams, Zipf popularity).
2. Ceiling: one plain confluent-kafka consumer reads, parses and counts them all.
3. Throughput: the aggregation job (the real query, its default settings) starts from the
   earliest offset and works through the backlog; events/s come from its query progress.
4. Latency: with the job caught up, producers write a fixed rate (50,000 events/s by default)
   stamped with their receive time (``rts``); a consumer of ``swarms`` notes when each swarm
   update arrives, and every event is matched to the first update that counted it.

The broker, Redis and the Spark session are this run's own unless
``EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS`` / ``EMOSTREAM_REDIS_URL`` name running ones.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from bench._brokers import kafka, redis
from bench.aggregate._events import Workload, load_receive_times, paced, preload
from bench.aggregate._measure import SwarmWatcher, ceiling, event_latencies, percentile

from emostream.localstack.kafka import ensure_topics
from emostream.localstack.process import ProcessDir


@dataclass(frozen=True)
class Options:
    """What one run does."""

    events: int
    streams: int
    rate: float
    duration_s: float
    warmup_s: float
    producers: int
    preload_workers: int
    overrides: dict[str, str]


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.aggregate",
        description="Throughput and latency of the aggregation job on this machine.",
    )
    parser.add_argument("--events", type=int, default=4_000_000, help="events pre-loaded")
    parser.add_argument("--streams", type=int, default=2000, help="streams (Zipf popularity)")
    parser.add_argument("--rate", type=float, default=50_000, help="events/s, latency phase")
    parser.add_argument("--duration", type=float, default=60, help="seconds, latency phase")
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds at the rate before measuring"
    )
    parser.add_argument("--producers", type=int, default=1, help="producer processes (latency)")
    parser.add_argument("--preload-workers", type=int, default=2, help="producer processes")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an aggregation setting for this run, e.g. --set trigger_ms=250 (repeatable)",
    )
    a = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in a.set)
    return Options(
        a.events,
        a.streams,
        a.rate,
        a.duration,
        a.warmup,
        a.producers,
        a.preload_workers,
        overrides,
    )


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


def _iso_s(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class Progress:
    """Every micro-batch's progress of a query, gathered by polling (no batch is missed)."""

    def __init__(self, query: Any) -> None:
        self.query = query
        self.batches: dict[int, Any] = {}

    def poll(self) -> None:
        """Take in the batches finished since the last call.

        Each progress is read as Spark's JSON: PySpark's own conversion costs the driver enough
        CPU, at two polls a second, to slow the query being measured.
        """
        for jp in self.query._jsq.recentProgress():
            p = SimpleNamespace(**orjson.loads(jp.json()))
            self.batches.setdefault(p.batchId, p)

    def rows(self) -> int:
        """Input rows of every batch seen."""
        return sum(p.numInputRows for p in self.batches.values())

    def since(self, batch_id: int) -> list[Any]:
        """Batches with data after ``batch_id``, in order."""
        return [p for b, p in sorted(self.batches.items()) if b > batch_id and p.numInputRows]


def _spark_session(settings: Any) -> Any:
    # Imported here: a spawned worker process imports this module and needs no JVM.
    from emostream.aggregate.job import build_session  # noqa: PLC0415

    spark = build_session(settings)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def _services(workdir: Path) -> Iterator[tuple[str, str]]:
    procs = ProcessDir(workdir / "run", workdir / "logs")
    env = os.environ
    with (
        kafka(env.get("EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS"), procs, workdir) as bootstrap,
        redis(env.get("EMOSTREAM_REDIS_URL"), procs, workdir) as redis_url,
    ):
        yield bootstrap, redis_url


def _throughput(progress: Progress, events: int) -> dict[str, float]:
    batches = progress.since(-1)
    steady = batches[1:] or batches  # the first batch also compiles and warms up the JVM
    start = _iso_s(steady[0].timestamp)
    end = _iso_s(steady[-1].timestamp) + steady[-1].batchDuration / 1000
    rows = sum(p.numInputRows for p in steady)
    first = _iso_s(batches[0].timestamp)
    return {
        "batches": len(batches),
        "sustained": rows / (end - start),
        "overall": events / (end - first),
        "per_batch_rows": statistics.median(p.numInputRows for p in steady),
        "per_batch_s": statistics.median(p.batchDuration for p in steady) / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every phase and print the figures."""
    opts = _parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="emostream-bench-aggregate-"))
    try:
        with _services(workdir) as (bootstrap, redis_url):
            return _run(opts, bootstrap, redis_url, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Figures:
    """What one run measured."""

    ceiling: float = 0.0
    throughput: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    batches: list[Any] = field(default_factory=list)


def _run(opts: Options, bootstrap: str, redis_url: str, workdir: Path) -> int:
    tag = uuid.uuid4().hex[:8]
    reactions, swarms = f"bench-{tag}-reactions", f"bench-{tag}-swarms"
    ensure_topics(bootstrap, {reactions: 6, swarms: 3})
    workload = Workload(opts.streams)
    _say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    _say(f"preloading {opts.events:,} events over {opts.streams} streams ...")
    secs = preload(bootstrap, reactions, workload, opts.events, opts.preload_workers)
    _say(f"  written in {secs:.1f} s ({opts.events / secs:,.0f} events/s)")

    figures = Figures()
    _say("ceiling: one confluent-kafka consumer parsing and counting every event ...")
    seen, secs = ceiling(bootstrap, reactions, opts.events)
    figures.ceiling = seen / secs
    _say(f"  {seen:,} events in {secs:.1f} s: {figures.ceiling:,.0f} events/s")

    settings = _settings(opts, bootstrap, redis_url, reactions, swarms, workdir, tag)
    _say(
        f"aggregation: {settings.spark_master}, trigger {settings.trigger_ms} ms, "
        f"{settings.shuffle_partitions} state partitions, {settings.state_store} state store, "
        f"at most {settings.max_offsets_per_trigger:,} events per batch"
    )
    from emostream.aggregate.job import start_query  # noqa: PLC0415 - see _spark_session

    spark = _spark_session(settings)
    query = start_query(spark, settings)
    progress = Progress(query)
    try:
        _drain(query, progress, opts.events)
        figures.throughput = _throughput(progress, opts.events)
        t = figures.throughput
        _say(
            f"  backlog done in {t['batches']:.0f} batches: sustained {t['sustained']:,.0f} "
            f"events/s (overall {t['overall']:,.0f}; median batch {t['per_batch_rows']:,.0f} "
            f"rows in {t['per_batch_s']:.2f} s)"
        )
        last_preload_batch = max(progress.batches)
        time.sleep(3)  # let the no-data batches that close the backlog's windows run
        progress.poll()
        figures.latency = _latency_phase(
            opts, bootstrap, reactions, swarms, workload, workdir, progress
        )
        figures.batches = [
            p
            for p in progress.since(last_preload_batch)
            if _iso_s(p.timestamp) * 1000 >= figures.latency["since_ms"]
        ]
    finally:
        query.stop()
        spark.stop()
    _report(opts, figures)
    return 0


def _settings(  # noqa: PLR0917 - one call site, every argument distinct
    opts: Options,
    bootstrap: str,
    redis_url: str,
    reactions: str,
    swarms: str,
    workdir: Path,
    tag: str,
) -> Any:
    import pyspark  # noqa: PLC0415 - see _spark_session

    from emostream.aggregate.settings import AggregateSettings  # noqa: PLC0415
    from emostream.localstack.jars import spark_kafka_jars  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    jars = spark_kafka_jars(root / ".emostream" / "jars", pyspark.__version__)
    return AggregateSettings(
        kafka_bootstrap_servers=bootstrap,
        redis_url=redis_url,
        reactions_topic=reactions,
        swarms_topic=swarms,
        checkpoint_location=str(workdir / "checkpoint"),
        spark_jars=",".join(str(j) for j in jars),
        query_name=f"bench_{tag}",
        starting_offsets="earliest",
        **opts.overrides,
    )


def _drain(query: Any, progress: Progress, events: int) -> None:
    started = time.monotonic()
    while progress.rows() < events:
        if not query.isActive:
            raise SystemExit(f"query stopped: {query.exception()}")
        if time.monotonic() - started > 900:
            raise SystemExit(f"backlog not done after 900 s: {progress.rows():,} rows")
        time.sleep(0.5)
        progress.poll()


def _report(opts: Options, f: Figures) -> None:
    t, lat = f.throughput, f.latency
    _say("")
    _say("RESULTS")
    _say(f"  ceiling (1 plain consumer, parse + count):  {f.ceiling:>10,.0f} events/s")
    _say(f"  aggregation, sustained over the backlog:    {t['sustained']:>10,.0f} events/s")
    _say(
        f"  event -> swarm at {opts.rate:,.0f} events/s, {opts.duration_s:.0f} s measured "
        f"after {opts.warmup_s:.0f} s:"
    )
    _say(f"    {lat['events']:,.0f} events matched, {lat['unseen']:,.0f} not seen in any swarm")
    _say(
        f"    receipt -> swarm read from `swarms`: p50 {lat['c50']:.0f} ms, "
        f"p99 {lat['c99']:.0f} ms, max {lat['cmax']:.0f} ms"
    )
    _say(
        f"    receipt -> swarm emitted:            p50 {lat['e50']:.0f} ms, p99 {lat['e99']:.0f} ms"
    )
    if f.batches:
        durations = sorted(p.batchDuration for p in f.batches)
        rows = statistics.median(p.numInputRows for p in f.batches)
        _say(
            f"    micro-batches: {len(f.batches)}, median {rows:,.0f} rows, duration "
            f"p50 {percentile(durations, 0.5):.0f} ms, p99 {percentile(durations, 0.99):.0f} ms"
        )
        parts = ("latestOffset", "walCommit", "queryPlanning", "addBatch", "commitOffsets")
        medians = ", ".join(
            f"{k} {statistics.median(p.durationMs.get(k, 0) for p in f.batches):.0f}" for k in parts
        )
        _say(f"    median ms per batch: {medians}")
    _say(f"  load average at the end: {os.getloadavg()[0]:.2f}")


def _latency_phase(  # noqa: PLR0917 - one call site, every argument distinct
    opts: Options,
    bootstrap: str,
    reactions: str,
    swarms: str,
    workload: Workload,
    workdir: Path,
    progress: Progress,
) -> dict[str, float]:
    total_s = opts.warmup_s + opts.duration_s
    _say(
        f"latency: {opts.rate:,.0f} events/s for {total_s:.0f} s, "
        f"the first {opts.warmup_s:.0f} s not measured ..."
    )
    since_ms = int((time.time() + opts.warmup_s) * 1000)
    with SwarmWatcher(bootstrap, swarms, workdir) as watcher:
        procs, outs = paced(
            bootstrap,
            reactions,
            workload,
            rate=opts.rate,
            duration_s=total_s,
            workers=opts.producers,
            workdir=workdir,
        )
        for p in procs:
            while p.is_alive():
                p.join(0.5)
                progress.poll()
            if p.exitcode != 0:
                raise SystemExit(f"producer failed with exit code {p.exitcode}")
        # The last windows' final updates come one or two batches after the last event.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(0.5)
            progress.poll()
    received = load_receive_times(outs)
    lat = event_latencies(received, watcher.arrivals(), since_ms)
    produced = sum(len(v) for v in received.values())
    _say(f"  produced {produced:,} events ({produced / total_s:,.0f}/s)")
    return {
        "since_ms": since_ms,
        "events": len(lat.to_consumer),
        "unseen": lat.unseen,
        "c50": percentile(lat.to_consumer, 0.5),
        "c99": percentile(lat.to_consumer, 0.99),
        "cmax": percentile(lat.to_consumer, 1.0),
        "e50": percentile(lat.to_emit, 0.5),
        "e99": percentile(lat.to_emit, 0.99),
    }


if __name__ == "__main__":
    sys.exit(main())
