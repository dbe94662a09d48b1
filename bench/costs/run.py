"""Server CPU per operation of the shared services, as Emostream's own code drives them.

docs/capacity.md sizes a deployment from per-operation costs. The tiers' costs come from
bench.ingest, bench.aggregate and bench.fanout; these are Redis's and Kafka's:

- Redis, ``PING`` on one connection: the floor of a round trip, the baseline of the run;
- Redis, ingest's rate-limit check of one user (``RateLimiter.acquire``, what a single reaction
  pays);
- Redis, fanout's presence report of one stream (``Presence.refresh``) while W workers report
  that stream: each call sums every valid entry, so a stream watched through many fanout workers
  costs more per report;
- Kafka, producing reactions with ingest's producer settings (``ReactionProducer.config``), and
  reading them back with one consumer.

Each figure is the server process's CPU time (user + system, from /proc) over the operations
divided by their number. Calls come one at a time, as a request thread makes them, from
``--threads`` threads. The brokers are started here, since their processes must be measured.
"""

import argparse
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis as redis_client
from bench._brokers import kafka, redis
from bench.ingest._services import cpu_seconds, new_topic
from confluent_kafka import Consumer, Producer

from emostream.common.events import Reaction
from emostream.fanout._presence import Presence, presence_key
from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._producer import ReactionProducer
from emostream.ingest._ratelimit import RateLimiter
from emostream.ingest.settings import IngestSettings
from emostream.localstack.process import ProcessDir

#: An entry of another worker in a stream's presence hash, valid for a day.
FAR_FUTURE_MS = int(time.time() * 1000) + 86_400_000


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__)
    p.add_argument("--calls", type=int, default=20_000, help="Redis calls per measure")
    p.add_argument("--threads", type=int, default=4, help="threads making the Redis calls")
    p.add_argument(
        "--workers",
        default="1,100,1000",
        help="workers reporting one stream, for the presence measure (comma-separated)",
    )
    p.add_argument("--reactions", type=int, default=500_000, help="reactions through Kafka")
    return p.parse_args(argv)


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201 - the benchmark reports to the terminal


def _per_call(pid: int, calls: int, threads: int, call: Callable[[int], object]) -> float:
    """Microseconds of ``pid``'s CPU per call, ``calls`` calls spread over ``threads``."""
    share = calls // threads

    def work(offset: int) -> None:
        for i in range(offset, offset + share):
            call(i)

    before = cpu_seconds(pid)
    pool = [threading.Thread(target=work, args=(t * share,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return (cpu_seconds(pid) - before) / (share * threads) * 1e6


def _redis_costs(url: str, pid: int, o: argparse.Namespace) -> list[tuple[str, float]]:
    local = threading.local()

    def ping(_i: int) -> None:
        if not hasattr(local, "client"):
            local.client = redis_client.Redis.from_url(url)
        local.client.ping()

    settings = IngestSettings(redis_url=url, rate_limit_per_s=1000)
    limiter = RateLimiter(settings, IngestMetrics())

    def rate_limit(i: int) -> None:
        if not limiter.acquire({f"bench-user-{i}": 1}).checked:
            sys.exit("Redis did not answer a rate-limit check")

    rows = [
        ("Redis PING (baseline: a round trip)", _per_call(pid, o.calls, o.threads, ping)),
        ("Redis rate-limit check, 1 user", _per_call(pid, o.calls, o.threads, rate_limit)),
    ]
    client = redis_client.Redis.from_url(url)
    for workers in (int(w) for w in o.workers.split(",")):
        stream = f"bench-{uuid.uuid4().hex[:8]}"
        others = {f"other-{w}": f"1:{FAR_FUTURE_MS}" for w in range(workers - 1)}
        if others:
            client.hset(presence_key(stream), mapping=others)
        presence = Presence(lambda: client, lambda s=stream: {s: 1}, ttl_s=60)
        cost = _per_call(pid, o.calls, 1, lambda _i, p=presence: p.refresh())
        rows.append((f"Redis presence report, {workers} worker(s) on the stream", cost))
    return rows


def _kafka_costs(bootstrap: str, pid: int, reactions: int) -> list[tuple[str, float]]:
    topic = new_topic(bootstrap)
    config = ReactionProducer(IngestSettings(kafka_bootstrap_servers=bootstrap), IngestMetrics())
    producer = Producer(config.config())
    now = int(time.time() * 1000)
    values = [Reaction(f"e{i}", "bench", f"u{i}", "🔥", now, now).encode() for i in range(1000)]
    before = cpu_seconds(pid)
    for i in range(reactions):
        while True:
            try:
                producer.produce(topic, values[i % 1000], f"u{i % 10_000}".encode())
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120):
        sys.exit("Kafka did not acknowledge every reaction")
    produced = (cpu_seconds(pid) - before) / reactions * 1e6

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    before = cpu_seconds(pid)
    read = 0
    deadline = time.monotonic() + 300
    while read < reactions and time.monotonic() < deadline:
        read += sum(1 for m in consumer.consume(10_000, timeout=1) if not m.error())
    consumed = (cpu_seconds(pid) - before) / max(read, 1) * 1e6
    consumer.close()
    if read < reactions:
        sys.exit(f"only {read} of {reactions} reactions read back")
    return [
        ("Kafka produce, per reaction (ingest's producer settings)", produced),
        ("Kafka consume, per reaction (one consumer)", consumed),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the measures and print one line per operation."""
    o = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="emostream-bench-") as tmp:
        work = Path(tmp)
        procs = ProcessDir(work / "run", work / "logs")
        with kafka(None, procs, work) as bootstrap, redis(None, procs, work) as url:
            kafka_pid, redis_pid = procs.running_pid("kafka"), procs.running_pid("redis")
            if kafka_pid is None or redis_pid is None:
                sys.exit("the broker or Redis stopped")
            _say(
                f"Kafka {bootstrap}, Redis {url}: {o.calls:,} calls per Redis measure "
                f"({o.threads} threads for PING and the rate limit, one for presence), "
                f"{o.reactions:,} reactions through Kafka"
            )
            rows = _redis_costs(url, redis_pid, o)
            rows += _kafka_costs(bootstrap, kafka_pid, o.reactions)
    _say("\nRESULTS (server CPU per operation)")
    for name, micros in rows:
        _say(f"  {name:<60} {micros:8.1f} µs")
    return 0
