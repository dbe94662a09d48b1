"""Reaction -> viewer latency of the whole local stack at fixed rates, split per stage.

The stack is ``make up``'s (nginx and ingest, Kafka, Redis, the Spark aggregation on
local[2], the fanout), started in a directory of its own on free ports. For each rate,
senders post batches of reactions to ingest; viewers hold one SSE feed per stream; plain
consumers read both topics; and every reaction sent after the warm-up is followed to the first
swarm that counts it on its viewer's feed (``_breakdown`` says how). The plain consumer of
``reactions`` is the ceiling: no Kafka-fed aggregation can show a reaction before it is
readable there.
"""

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench._cpu import children_cpu_seconds
from bench.aggregate._measure import percentile
from bench.fanout._services import cpu_seconds, process_tree
from bench.latency._breakdown import BOUNDARIES, STAGES, Paths, follow
from bench.latency._senders import SEND_DELAY_S, Plan, send
from bench.latency._stack import local_stack
from bench.latency._watchers import OffsetLog, Watchers, spark_phases

from emostream.localstack.stack import LocalStack


@dataclass(frozen=True)
class Options:
    """What one run does."""

    rates: tuple[float, ...]
    duration_s: float
    warmup_s: float
    batch: int
    streams: int
    processes: int
    threads: int
    overrides: dict[str, str]


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description="Reaction -> viewer latency of the local stack, per stage, at fixed rates.",
    )
    parser.add_argument(
        "--rates", default="20000,100000", help="reactions/s, comma-separated, one phase each"
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds measured per rate")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60,
        help="seconds sent before measuring (a fresh job takes about a minute to settle)",
    )
    parser.add_argument("--batch", type=int, default=50, help="reactions per POST")
    parser.add_argument("--streams", type=int, default=8, help="streams, one viewer each")
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--threads", type=int, default=8, help="connections per sender")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of every part for this run, e.g. --set trigger_ms=250 (repeatable)",
    )
    a = parser.parse_args(argv)
    return Options(
        tuple(float(r) for r in a.rates.split(",")),
        a.duration,
        a.warmup,
        a.batch,
        a.streams,
        a.senders,
        a.threads,
        dict(item.split("=", 1) for item in a.set),
    )


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


def main(argv: list[str] | None = None) -> int:
    """Start the stack, run every rate, print the breakdowns."""
    opts = _parse(argv)
    env = {f"EMOSTREAM_{k.upper()}": v for k, v in opts.overrides.items()}
    workdir = Path(tempfile.mkdtemp(prefix="emostream-bench-latency-"))
    _say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    if env:
        _say(f"settings: {' '.join(f'{k}={v}' for k, v in env.items())}")
    try:
        with local_stack(workdir / "stack", env) as stack:
            child = stack.child_env()
            checkpoint = Path(child["EMOSTREAM_CHECKPOINT_LOCATION"])
            window_ms = round(float(child.get("EMOSTREAM_WINDOW_S", "2")) * 1000)
            for rate in opts.rates:
                paths, sent_rate = _phase(opts, rate, stack, checkpoint, window_ms, workdir)
                _report(rate, sent_rate, paths)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _say(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


def _phase(  # noqa: PLR0917 - one call site, every argument distinct
    opts: Options, rate: float, stack: LocalStack, checkpoint: Path, window_ms: int, workdir: Path
) -> tuple[Paths, float]:
    s = stack.settings
    streams = tuple(f"latency-{i}" for i in range(opts.streams))
    plan = Plan(
        host="127.0.0.1",
        port=s.ingest_port,
        streams=streams,
        rate=rate,
        batch=opts.batch,
        duration_s=opts.warmup_s + opts.duration_s,
        processes=opts.processes,
        threads=opts.threads,
    )
    _say(
        f"\n{rate:,.0f} reactions/s for {plan.duration_s:.0f} s (the first {opts.warmup_s:.0f} s "
        f"not measured), batches of {opts.batch} over {opts.streams} streams ..."
    )
    topics = (s.reactions_topic, s.swarms_topic)
    fanout = ("127.0.0.1", s.fanout_port)
    metrics = f"http://127.0.0.1:{s.aggregate_metrics_port}/metrics"
    watchers = Watchers(stack.kafka_bootstrap, topics, fanout, streams, workdir)
    with watchers, OffsetLog(checkpoint, s.reactions_topic) as log:
        started = time.time()
        before, phases_before = _cpu(stack), spark_phases(metrics)
        senders_before = children_cpu_seconds()
        sent = send(plan, workdir)
        used = {k: v - before.get(k, 0.0) for k, v in _cpu(stack).items()}
        used["senders"] = children_cpu_seconds() - senders_before
        phases = {k: v - phases_before.get(k, 0.0) for k, v in spark_phases(metrics).items()}
        sending_s = time.time() - started
        time.sleep(6)  # a window's last swarm comes a batch or two after its last reaction
    busy = ", ".join(f"{k} {v / sending_s:.2f}" for k, v in used.items())
    _say(f"  cores used while sending: {busy}")
    if batches := phases.pop("batches", 0):
        per_batch = ", ".join(f"{k} {v * 1000 / batches:.0f}" for k, v in sorted(phases.items()))
        _say(f"  {batches:.0f} micro-batches, mean ms per batch: {per_batch}")
    since_ms = (started + SEND_DELAY_S + opts.warmup_s) * 1000
    measured = [b for b in sent if b.sent_ms >= since_ms]
    span_s = (max(b.sent_ms for b in measured) - since_ms) / 1000 if measured else 1.0
    paths = follow(
        sent,
        watchers.read("reactions"),
        log.batches,
        watchers.read("swarms"),
        watchers.read("viewers"),
        window_ms=window_ms,
        since_ms=since_ms,
    )
    starts = sorted(start for start, _ in log.batches.values() if start >= since_ms)
    if len(starts) > 1:
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        _say(f"  micro-batches started every {statistics.median(gaps):.0f} ms (median)")
    return paths, sum(b.n for b in measured) / max(span_s, 1e-9)


def _cpu(stack: LocalStack) -> dict[str, float]:
    """CPU seconds used so far by each part of the stack, and by the watchers."""
    trees = {
        p.name: process_tree(pid) for p in stack.parts if (pid := stack.procs.running_pid(p.name))
    }
    ours = set(process_tree(os.getpid())).difference(*trees.values())  # the parts are our children
    return {name: cpu_seconds(t) for name, t in trees.items()} | {
        "watchers": cpu_seconds(list(ours))
    }


def _report(rate: float, sent_rate: float, paths: Paths) -> None:
    def ms(values: list[float], q: float) -> str:
        return f"{percentile(sorted(values), q):.0f}"

    _say(
        f"  sent {sent_rate:,.0f} reactions/s; followed {paths.followed:,}, "
        f"refused {paths.refused:,}"
    )
    _say(f"  {'stage (ms)':<42}{'p50':>7}{'p99':>7}  | since sent: {'p50':>6}{'p99':>7}")
    for name in BOUNDARIES[1:]:
        stage, since = paths.stages[name], paths.since_send[name]
        if stage:
            _say(
                f"  {STAGES[name]:<42}{ms(stage, 0.5):>7}{ms(stage, 0.99):>7}  |"
                f" {'':>11}{ms(since, 0.5):>6}{ms(since, 0.99):>7}"
            )
    for label, values in (
        (f"reaction -> viewer at {rate:,.0f}/s", paths.since_send["at the viewer"]),
        ("ceiling: reaction -> plain consumer", paths.since_send["in Kafka"]),
    ):
        _say(f"  => {label}: p50 {ms(values, 0.5)} ms, p99 {ms(values, 0.99)} ms")
    if paths.lost:
        lost = ", ".join(f"{n:,} never {where}" for where, n in paths.lost.items())
        _say(f"  not followed to the viewer: {lost}")


if __name__ == "__main__":
    sys.exit(main())
