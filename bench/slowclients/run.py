"""The slow-client benchmark: are ordinary requests still answered while slow clients stall?

For each server, and each kind of slow client (``tests.support.slowclients``): open ``--count``
connections that stall in their request (and open a new one whenever the server drops one),
wait a moment, then send ``--probes`` ordinary requests one after the other, each on a new
connection with a ``--timeout``; print how many were answered, their median and longest time,
and how many slow connections the server dropped and after how long.

Servers, each started as the project starts it, against a real Kafka broker and Redis:

- ``gunicorn``: ingest's gunicorn gthread alone (how the local stack served it before nginx);
- ``nginx``: ingest behind nginx, as the local stack serves it;
- ``fanout``: fanout under gunicorn's gevent worker.

Probes are single-reaction POSTs for ingest; ``GET /healthz`` and opening an SSE feed for fanout.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from bench._brokers import kafka, redis
from tests.fanout.live import start_fanout
from tests.support.servers import start_fronted_ingest, start_role
from tests.support.slowclients import Probes, SlowClients, probe

from emostream.localstack.kafka import ensure_topics
from emostream.localstack.process import ProcessDir

Send = Callable[[requests.Session, float], int]

SERVERS = ("gunicorn", "nginx", "fanout")
INGEST_KINDS = ("body", "headers", "trickle")
FANOUT_KINDS = ("headers", "trickle", "ws")


@dataclass(frozen=True)
class Options:
    """Command-line options."""

    servers: list[str]
    count: int
    probes: int
    timeout_s: float
    settle_s: float
    repeat: int


def _parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.slowclients", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}"
    )
    parser.add_argument("--count", type=int, default=200, help="slow connections of each kind")
    parser.add_argument("--probes", type=int, default=10, help="ordinary requests per kind")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a probe may wait")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between opening them and probing"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind")
    args = parser.parse_args(argv)
    servers = args.servers.split(",")
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {SERVERS}")
    return Options(servers, args.count, args.probes, args.timeout, args.settle, args.repeat)


@dataclass(frozen=True)
class Target:
    """A running server: its URL, the kinds of slow client to try, the probes to time."""

    url: str
    kinds: tuple[str, ...]
    slow_path: Callable[[str], str]
    probes: dict[str, Send]


@contextmanager
def _server(name: str, env: dict[str, str], work: Path) -> Iterator[Target]:
    """Start server ``name`` in its own process directory; stop it when the block ends."""
    procs = ProcessDir(work / name / "run", work / name / "logs")
    try:
        if name == "fanout":
            url = start_fanout(procs, "fanout", env).url
            yield Target(
                url,
                FANOUT_KINDS,
                lambda kind: "/v1/streams/slow/ws" if kind == "ws" else "/v1/streams/slow/events",
                {"GET /healthz": _get(f"{url}/healthz"), "SSE feed opens": _feed(url)},
            )
            return
        if name == "nginx":
            url = start_fronted_ingest(procs, "ingest", env)
        else:
            url = start_role(procs, "ingest", "ingest", "gthread", env).url
        yield Target(
            url,
            INGEST_KINDS,
            lambda _kind: "/v1/streams/slow/reactions",
            {"POST a reaction": _post(f"{url}/v1/streams/probe/reactions")},
        )
    finally:
        for process in procs.names():
            procs.stop(process, grace_s=30)


def _post(url: str) -> Send:
    def send(session: requests.Session, timeout_s: float) -> int:
        reaction = {"user_id": f"probe-{uuid.uuid4().hex[:8]}", "emoji": "👍"}
        return session.post(url, json=reaction, timeout=timeout_s).status_code

    return send


def _get(url: str) -> Send:
    def send(session: requests.Session, timeout_s: float) -> int:
        return session.get(url, timeout=timeout_s).status_code

    return send


def _feed(url: str) -> Send:
    def send(session: requests.Session, timeout_s: float) -> int:
        with session.get(f"{url}/v1/streams/probe/events", stream=True, timeout=timeout_s) as resp:
            return resp.status_code if b"retry:" in resp.raw.read1(4096) else -1

    return send


def _measure(target: Target, kind: str, o: Options) -> list[tuple[str, Probes, SlowClients]]:
    address = urlsplit(target.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    results = []
    with SlowClients(host, port, kind, target.slow_path(kind), o.count) as slow:
        time.sleep(o.settle_s)
        for what, send in target.probes.items():
            results.append(
                (what, probe(send, count=o.probes, timeout_s=o.timeout_s, gap_s=0.1), slow)
            )
    return results


def _line(server: str, kind: str, what: str, probes: Probes, slow: SlowClients) -> str:
    held = f"{statistics.median(slow.held_s):.1f} s" if slow.held_s else "-"
    return (
        f"{server:<9} {kind:<8} {what:<16} {probes.answered:>3}/{len(probes.outcomes)} answered"
        f"  p50 {probes.p50_s() * 1000:>7,.0f} ms  max {probes.max_s() * 1000:>7,.0f} ms"
        f"  statuses {','.join(sorted(set(map(str, probes.statuses()))))}"
        f"  slow ones dropped {slow.closed_by_server:,} (median held {held})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    o = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="emostream-bench-") as tmp:
        work = Path(tmp)
        procs = ProcessDir(work / "run", work / "logs")
        given_kafka = os.environ.get("EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS")
        given_redis = os.environ.get("EMOSTREAM_REDIS_URL")
        with kafka(given_kafka, procs, work) as bootstrap, redis(given_redis, procs, work) as url:
            tag = uuid.uuid4().hex[:8]
            topics = {"reactions": f"bench-{tag}-reactions", "swarms": f"bench-{tag}-swarms"}
            ensure_topics(bootstrap, {topics["reactions"]: 6, topics["swarms"]: 3})
            env = {
                **os.environ,
                "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "EMOSTREAM_REDIS_URL": url,
                "EMOSTREAM_REACTIONS_TOPIC": topics["reactions"],
                "EMOSTREAM_SWARMS_TOPIC": topics["swarms"],
                "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"bench:{tag}:",
                "EMOSTREAM_LOG_LEVEL": "WARNING",
            }
            _say(
                f"{o.count} slow connections of each kind, {o.probes} probes each after "
                f"{o.settle_s:g} s, {o.timeout_s:g} s timeout, {o.repeat} run(s), "
                f"{os.cpu_count()} cores"
            )
            for server in o.servers:
                with _server(server, env, work) as target:
                    for kind in target.kinds:
                        for _ in range(o.repeat):
                            for what, probes, slow in _measure(target, kind, o):
                                _say(_line(server, kind, what, probes, slow))
    return 0


def _say(line: str) -> None:
    """The benchmark's output goes to the terminal as it is measured."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
