"""Floods of fresh stream ids: the registry holds, and a real stream is not disturbed.

Two floods hit second ingest servers started next to the private stack (same Kafka, Redis,
aggregation and fanout, a registry key prefix of their own), and a hot stream hits the stack's
own ingest:

- closed mode: one reaction to each of 100,000 random stream ids nobody opened. Every one is
  answered 404 from the registry's memory; Redis and fanout are left as they were.
- open mode with caps lowered (2,000 live streams, 500 new streams per client per minute): fresh
  streams from several client addresses (``X-Forwarded-For`` behind one trusted hop). The caps
  hold, a refusal is a 429 with Retry-After, and nothing is a 5xx.
- a hot stream: one stream a thousand times hotter than a handful of quiet ones (3,000
  reactions/s against 3/s each), through nginx like every client of the stack.

Meanwhile a real stream gets a steady load on the flooded server (the hot stream's, for the
hot stream) and a raw SSE viewer watches it. Its reaction-to-viewer latency during each phase
is compared with a baseline taken before, and in the end every reaction that got a 2xx (the
real stream's, the open flood's, the hot and quiet streams') is in the aggregation's final
counts. The figures are written to the terminal as each test ends and as rows of the fault
table.
"""

import bisect
import contextlib
import http.client
import math
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from emostream.common.keys import latest_swarm_key
from emostream.common.problems import PROBLEM_JSON, STREAM_LIMIT, STREAM_NOT_LIVE
from emostream.localstack.process import ProcessDir
from tests.faults._report import Row
from tests.faults._swarms import SwarmLog
from tests.faults._traffic import EMOJIS, Traffic, _never_sent
from tests.faults._viewers import Viewer
from tests.faults.conftest import FaultStack, Say, log_tail
from tests.support.servers import start_role
from tests.support.waiting import poll_until, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(1800)]

#: Fresh stream ids posted to the closed-mode server, one reaction each.
CLOSED_FLOOD_STREAMS = 100_000
#: Requests to the open-mode server, each a reaction to a fresh stream: enough for every client
#: to meet a cap many times over.
OPEN_FLOOD_REQUESTS = 30_000
#: The open-mode server's caps, lowered so a flood of seconds meets both.
OPEN_MAX_LIVE_STREAMS = 2_000
OPEN_NEW_STREAMS_PER_MIN = 500
#: Client addresses of the open flood (TEST-NET-2). The first sends half of the requests, so it
#: meets its own per-minute cap long before the others together fill the live-stream cap.
OPEN_CLIENTS = tuple(f"198.51.100.{n}" for n in range(1, 9))
#: Flood senders: processes of their own (the test process's threads must keep time for the
#: viewer and the real stream), niced, each with threads on persistent connections.
FLOOD_PROCESSES = 2
FLOOD_THREADS = 4

#: The real stream's load: one sender thread, one request in flight, so the receive time of
#: the newest reaction a swarm counts names the very request that posted it.
REAL_RATE = 150.0
REAL_BATCH = 10
#: Its user ids go round a fixed pool (3 reactions/s each, far under the per-user rate), so its
#: per-user rate-limit keys in Redis stay the same few and the key count shows the flood alone.
REAL_USERS = 50
#: Length of the latency baseline taken before the floods.
BASELINE_S = 30.0

#: The hot stream's peers: a handful of quiet streams, each a request of a few reactions a
#: second, so "the rest" of the streams exists beside the real one.
QUIET_STREAMS = 5
QUIET_RATE = 3.0
QUIET_BATCH = 3
#: The hot stream: a thousand times a quiet stream's rate (3,000 reactions/s), in full-sized
#: batches, for long enough to hold a few dozen latency samples of the real stream.
HOT_FACTOR = 1000
HOT_RATE = HOT_FACTOR * QUIET_RATE
HOT_BATCH = 200
HOT_S = 40.0
#: Its users go round a pool at the real stream's 3 reactions/s each, a thousand times as many,
#: so the per-user rate limit never refuses it and its rate-limit keys stay a bounded set.
HOT_USERS = 1000
#: Least share of :data:`HOT_RATE` the hot stream must reach, or it was not a thousand times
#: hotter and its phase measured nothing.
HOT_RATE_SHARE = 0.9

#: Redis before and after the closed flood, allowed slack. The flood's 100,000 streams, had each
#: left one key behind, would add 100,000 keys; 1 MiB is about 10 bytes per flooded stream,
#: less than any key costs. The slack covers the real stream's own keys (its snapshot, its
#: users' rate-limit buckets) being rewritten and the allocator's noise.
REDIS_KEY_SLACK = 100
REDIS_MEMORY_SLACK = 1 << 20
#: Fanout's workers' resident memory before and after the closed flood, allowed slack. No event
#: of an unopened stream reaches Kafka, so fanout must not even notice the flood; the real
#: stream's few hundred swarms and allocator noise stay well under this, while state kept for
#: each flooded stream, at 100 bytes each, would be over 9 MiB.
FANOUT_RSS_SLACK = 8 << 20
#: Most Redis commands, from every client together, while the closed flood runs. A refusal is
#: answered from the registry's copy in memory; had each cost one round trip, the flood alone
#: would send 100,000. The rest of the stack (registry refreshes, the real stream's rate limit,
#: the aggregation's snapshots, fanout) sends some hundreds a second.
REDIS_COMMANDS_BOUND = CLOSED_FLOOD_STREAMS // 4

#: The real stream's p99 reaction-to-viewer latency during a flood may be this many times its
#: baseline p99 ...
LATENCY_FACTOR = 3.0
#: ... or the baseline plus this many seconds, whichever is more. Generous on purpose: on a
#: shared two-core machine the flood's senders and the flooded server take both cores from
#: the pipeline (Kafka, the aggregation's micro-batches, fanout), so the real stream slows
#: down even when nothing is wrong (measured with other work on the machine: p99 from
#: 1.4-1.9 s before to 5.8-8.9 s during the closed flood, all of it between ingest and the
#: viewer, none in the HTTP request), and a baseline of a second or two tripled is no bound
#: at all. It catches the failure that matters, the real stream stuck behind the flood
#: (latencies of tens of seconds, or no swarms at all), and no scheduling jitter.
LATENCY_SLACK_S = 10.0
#: Fewest latency samples a phase must have (about two swarms a second are expected).
MIN_SAMPLES = 10

#: Bounds on waiting, generous for a busy two-core machine; nothing is timed by them.
CATCH_UP_S = 300.0
POLL_S = 0.5


# -- the real stream's sender -----------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """One request of the real stream's sender."""

    url: str
    sent: float
    answered: float
    status: int  # HTTP status; 0 for a network error


@dataclass(kw_only=True)
class _Background:
    """Runs ``_run`` in a daemon thread between :meth:`start` and :meth:`stop`."""

    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start in the background."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, and wait for the thread (a request in flight gets its answer)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _run(self) -> None:
        raise NotImplementedError


@dataclass
class RealSender(_Background):
    """One thread posting batches to one stream at a steady pace, to whichever ingest ``url``
    names at the moment, remembering exactly what got a 2xx.

    As in :class:`tests.faults._traffic.Traffic`, an answer saying nothing was taken (404, 429,
    503, a refused connection) is retried with the same batch; a network error after the
    request left counts as uncertain, and the next batch is a fresh one.
    """

    url: str
    stream: str
    rate: float = REAL_RATE
    batch: int = REAL_BATCH
    posts: list[Post] = field(default_factory=list)
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    uncertain: int = 0
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def between(self, start: float, end: float) -> list[Post]:
        """Requests sent in ``[start, end)``."""
        with self._lock:
            return [p for p in self.posts if start <= p.sent < end]

    def accepted_posts(self) -> list[Post]:
        """Requests that got a 2xx, in the order sent."""
        with self._lock:
            return [p for p in self.posts if 200 <= p.status < 300]

    def _run(self) -> None:
        pause = self.batch / self.rate
        session = requests.Session()
        i = 0
        body: list[dict[str, str]] = []
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not body:
                emoji = EMOJIS[i % len(EMOJIS)]
                body = [
                    {
                        "user_id": f"{self.stream}-u{(i * self.batch + j) % REAL_USERS}",
                        "emoji": emoji,
                    }
                    for j in range(self.batch)
                ]
                i += 1
            next_at = max(next_at + pause, time.monotonic() - pause)
            url = self.url
            sent = time.time()
            status = 0
            text = ""
            try:
                resp = session.post(
                    f"{url}/v1/streams/{self.stream}/reactions", json=body, timeout=(5, 120)
                )
                status, text = resp.status_code, resp.text[:200]
            except requests.ConnectionError as exc:
                session = requests.Session()
                if not _never_sent(exc):
                    self.uncertain += 1
                    body = []
            except requests.RequestException:
                session = requests.Session()
                self.uncertain += 1
                body = []
            with self._lock:
                self.posts.append(Post(url, sent, time.time(), status))
                if 200 <= status < 300:
                    self.accepted.update((self.stream, r["emoji"]) for r in body)
                    body = []
                elif status not in (0, 404, 429, 503):
                    self.unexpected.append(f"{status} {text}")
                    body = []
            time.sleep(max(0.0, next_at - time.monotonic()))


# -- latency ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One request's reaction-to-viewer latency and the instants it passed on the way."""

    sent: float
    received: float  # by ingest
    emitted: float  # the swarm, by the aggregation
    seen: float  # the swarm, by the viewer


def _latencies(
    posts: list[Post], received: list[tuple[float, dict[str, Any]]], start: float, end: float
) -> list[Sample]:
    """Reaction-to-viewer latencies of the real stream's requests sent in ``[start, end)``.

    A swarm's ``last_receive_ms`` is when ingest received the newest reaction it counts. With
    one request in flight at a time, that instant falls within exactly one request of the
    sender; the latency of that request is the time the viewer first received a swarm counting
    it minus the time it was posted. So it includes the HTTP request (queueing in a flooded
    ingest too), Kafka, the aggregation's micro-batch, fanout and the SSE hop; the part from
    ingest's receive time on leaves the HTTP request out, and the swarm's ``emitted_at`` splits
    the rest between the aggregation and fanout. Requests that were not the newest of some
    swarm (it counted them together with a later one) are not sampled; they waited at most one
    micro-batch longer.
    """
    sent = [p.sent * 1000 for p in posts]
    first_seen: dict[int, Sample] = {}
    for at, swarm in received:
        newest = swarm.get("last_receive_ms")
        if newest is None:
            continue
        # Ingest's clock is read in whole milliseconds after the request was sent.
        i = bisect.bisect_right(sent, newest + 1) - 1
        if i >= 0 and newest <= posts[i].answered * 1000 + 1 and i not in first_seen:
            emitted = swarm.get("emitted_at", newest) / 1000
            first_seen[i] = Sample(posts[i].sent, newest / 1000, emitted, at)
    return [x for x in first_seen.values() if start <= x.sent < end]


def _pct(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (nan for none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_bound_s(baseline_p99: float) -> float:
    """The most a flood's p99 latency may be (:data:`LATENCY_FACTOR`, :data:`LATENCY_SLACK_S`)."""
    return max(LATENCY_FACTOR * baseline_p99, baseline_p99 + LATENCY_SLACK_S)


# -- the flood senders (run in processes of their own) ----------------------------------------


@dataclass
class FloodPart:
    """One flood process's share: (stream id, user id, emoji, client address or None) each."""

    url: str
    items: list[tuple[str, str, str, str | None]]
    threads: int
    start_at: float


@dataclass
class FloodTally:
    """What a flood's answers were."""

    #: (status, problem type, limit) -> requests; status 0 for a network error.
    answers: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    #: Answers that break the contract (wrong type, no Retry-After, a 5xx), a few of them.
    samples: list[str] = field(default_factory=list)
    bad: int = 0
    #: (stream, emoji, client) of each reaction that got a 2xx.
    accepted: list[tuple[str, str, str | None]] = field(default_factory=list)
    first: float = math.inf
    last: float = 0.0

    def add(self, other: "FloodTally") -> None:
        """Merge ``other`` into this tally."""
        self.answers.update(other.answers)
        self.samples.extend(other.samples[: max(0, 10 - len(self.samples))])
        self.bad += other.bad
        self.accepted.extend(other.accepted)
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)

    @property
    def total(self) -> int:
        """Requests answered (or failed) in all."""
        return sum(self.answers.values())

    @property
    def rate(self) -> float:
        """Requests per second over the flood."""
        return self.total / max(self.last - self.first, 1e-9)

    def by_status(self) -> str:
        """The answers as ``N x status [limit]``, most frequent first."""
        return ", ".join(
            f"{n} x {s or 'network error'}" + (f" {limit}" if limit else "")
            for (s, _, limit), n in self.answers.most_common()
        )


def _flood(url: str, items: list[tuple[str, str, str, str | None]]) -> FloodTally:
    """Post ``items`` from :data:`FLOOD_PROCESSES` processes of :data:`FLOOD_THREADS` threads."""
    start_at = time.time() + 5  # the processes start together, once each has imported this
    parts = [
        FloodPart(url, items[n::FLOOD_PROCESSES], FLOOD_THREADS, start_at)
        for n in range(FLOOD_PROCESSES)
    ]
    tally = FloodTally()
    context = multiprocessing.get_context("spawn")  # the test process runs librdkafka threads
    with ProcessPoolExecutor(FLOOD_PROCESSES, mp_context=context) as pool:
        for part in pool.map(_flood_process, parts):
            tally.add(part)
    return tally


def _flood_process(part: FloodPart) -> FloodTally:
    """One flood process: its items over ``part.threads`` persistent connections."""
    # The senders stand for clients on other machines: niced, so the stack's processes (the
    # flooded server among them) get the cores first and the latencies measure the stack.
    os.nice(10)
    return _tally_threads(
        part.threads, lambda n, tally: _flood_thread(part, part.items[n :: part.threads], tally)
    )


def _tally_threads(count: int, work: Callable[[int, FloodTally], None]) -> FloodTally:
    """Run ``work(n, tally)`` in ``count`` threads, each with a tally of its own; their sum."""
    tallies = [FloodTally() for _ in range(count)]
    threads = [threading.Thread(target=work, args=(n, t)) for n, t in enumerate(tallies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = FloodTally()
    for tally in tallies:
        total.add(tally)
    return total


def _flood_thread(
    part: FloodPart, items: list[tuple[str, str, str, str | None]], tally: FloodTally
) -> None:
    address = urlsplit(part.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(host, port, timeout=30)

    conn = connect()
    time.sleep(max(0.0, part.start_at - time.time()))
    tally.first = time.time()
    for stream, user, emoji, client in items:
        headers = {"Content-Type": "application/json"}
        if client is not None:
            headers["X-Forwarded-For"] = client
        try:
            conn.request(
                "POST",
                f"/v1/streams/{stream}/reactions",
                orjson.dumps({"user_id": user, "emoji": emoji}),
                headers,
            )
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            tally.answers[0, "", ""] += 1
            _sample(tally, f"{stream}: {type(exc).__name__}: {exc}")
            conn.close()
            conn = connect()
            continue
        if 200 <= resp.status < 300:
            tally.answers[resp.status, "", ""] += 1
            tally.accepted.append((stream, emoji, client))
            continue
        _tally_problem(tally, resp, data)
    conn.close()
    tally.last = time.time()


def _tally_problem(tally: FloodTally, resp: http.client.HTTPResponse, data: bytes) -> None:
    """Count a refusal by status, problem type and limit; sample it if it breaks the contract."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = {}
    kind = doc.get("type", "") if isinstance(doc, dict) else ""
    limit = doc.get("limit", "") if isinstance(doc, dict) else ""
    tally.answers[resp.status, kind, limit] += 1
    problems = []
    if not (resp.getheader("Content-Type") or "").startswith(PROBLEM_JSON):
        problems.append(f"Content-Type {resp.getheader('Content-Type')}")
    if resp.status == 429:
        retry_after = resp.getheader("Retry-After") or ""
        if not (retry_after.isdigit() and int(retry_after) >= 1):
            problems.append(f"Retry-After {retry_after!r}")
    if problems:
        _sample(tally, f"{resp.status} {'; '.join(problems)}: {data[:200]!r}")


def _sample(tally: FloodTally, text: str) -> None:
    """Count an answer that breaks the contract, and keep the first few."""
    tally.bad += 1
    if len(tally.samples) < 10:
        tally.samples.append(text)


# -- the hot stream's sender (runs in a process of its own) -----------------------------------


@dataclass
class HotPart:
    """The hot stream's sender: ``rate`` reactions/s to ``stream`` in batches of ``batch``, from
    ``threads`` threads on persistent connections, for ``seconds`` from ``start_at``."""

    url: str
    stream: str
    rate: float
    batch: int
    threads: int
    start_at: float
    seconds: float


def _hot(url: str, stream: str) -> FloodTally:
    """Send the hot stream from a process of its own for :data:`HOT_S`; its answers, tallied."""
    start_at = time.time() + 5  # the process starts, once it has imported this
    part = HotPart(url, stream, HOT_RATE, HOT_BATCH, FLOOD_THREADS, start_at, HOT_S)
    context = multiprocessing.get_context("spawn")  # the test process runs librdkafka threads
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_hot_process, part).result()


def _hot_process(part: HotPart) -> FloodTally:
    """The hot stream's process: niced like the floods' (its clients are on other machines)."""
    os.nice(10)
    return _tally_threads(part.threads, lambda n, tally: _hot_thread(part, n, tally))


def _hot_thread(part: HotPart, n: int, tally: FloodTally) -> None:
    """One thread's share of the hot stream, paced; as :class:`RealSender`, an answer saying
    nothing was taken (429, 503, a refused connection) is retried with the same batch, and a
    network error after the request left is tallied as status 0 and not retried."""
    address = urlsplit(part.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    path = f"/v1/streams/{part.stream}/reactions"
    headers = {"Content-Type": "application/json"}
    users = HOT_USERS // part.threads  # at least a batch, so a batch has no user twice
    pause = part.batch * part.threads / part.rate
    conn = http.client.HTTPConnection(host, port, timeout=30)
    next_at = part.start_at + n * pause / part.threads  # the threads take turns
    end_at = part.start_at + part.seconds
    time.sleep(max(0.0, next_at - time.time()))
    tally.first = time.time()
    sent = 0
    body: list[dict[str, str]] = []
    while time.time() < end_at:
        if not body:
            body = [
                {
                    "user_id": f"{part.stream}-t{n}-u{(sent + j) % users}",
                    "emoji": EMOJIS[(sent + j) % len(EMOJIS)],
                }
                for j in range(part.batch)
            ]
        try:
            conn.request("POST", path, orjson.dumps(body), headers)
            resp = conn.getresponse()
            data = resp.read()
        except ConnectionRefusedError as exc:
            _sample(tally, f"{type(exc).__name__}: {exc}")
            tally.answers[0, "", ""] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
        except (OSError, http.client.HTTPException) as exc:
            _sample(tally, f"{type(exc).__name__}: {exc}")
            tally.answers[0, "", ""] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=30)
            sent, body = sent + part.batch, []
        else:
            if 200 <= resp.status < 300:
                tally.answers[resp.status, "", ""] += 1
                tally.accepted.extend((part.stream, r["emoji"], None) for r in body)
                sent, body = sent + part.batch, []
            else:
                _tally_problem(tally, resp, data)
                if resp.status not in (429, 503):
                    sent, body = sent + part.batch, []
        next_at = max(next_at + pause, time.time() - pause)
        time.sleep(max(0.0, next_at - time.time()))
    conn.close()
    tally.last = time.time()


# -- measurements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisState:
    """Redis's key count, memory in use and commands processed since it started."""

    keys: int
    used_memory: int
    commands: int

    @classmethod
    def read(cls, client: redis.Redis) -> "RedisState":
        """Read them now."""
        memory, stats = client.info("memory"), client.info("stats")
        return cls(
            int(client.dbsize()),
            int(memory["used_memory"]),
            int(stats["total_commands_processed"]),
        )


def _workers(master: int | None) -> list[int]:
    """The live child processes of ``master`` (gunicorn's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def _rss(master: int | None) -> int:
    """Resident bytes of ``master``'s workers together (VmRSS)."""
    total = 0
    for pid in _workers(master):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _signed_mib(n: float) -> str:
    return f"{'+' if n >= 0 else '-'}{_mib(abs(n))}"


@dataclass
class GaugeSampler(_Background):
    """Reads two of the product's gauges once a second, to tell where a slow swarm waited: the
    aggregation's last micro-batch duration, and the delivery latency of the ingest the real
    stream posts to (the sum of librdkafka's p99 of each stage: queue, outbuf, rtt)."""

    aggregate_url: str
    #: The /metrics of the ingest the real stream posts to at the moment.
    ingest_metrics_url: Callable[[], str]
    #: (time, micro-batch seconds, delivery p99 seconds); nan where a scrape failed.
    samples: list[tuple[float, float, float]] = field(default_factory=list)

    def between(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Micro-batch durations and delivery p99s sampled in ``[start, end)``."""
        inside = [x for x in list(self.samples) if start <= x[0] < end]
        return (
            [b for _, b, _ in inside if not math.isnan(b)],
            [d for _, _, d in inside if not math.isnan(d)],
        )

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            batch = _gauge(self.aggregate_url, "emostream_aggregate_batch_duration_seconds")
            delivery = _gauge(
                self.ingest_metrics_url(),
                "emostream_ingest_delivery_latency_seconds",
                lambda labels: labels.get("quantile") == "0.99",
                total=True,
            )
            self.samples.append((time.time(), batch, delivery))


def _gauge(
    url: str,
    name: str,
    wanted: Callable[[dict[str, str]], bool] = lambda _: True,
    *,
    total: bool = False,
) -> float:
    """The largest (or, with ``total``, the sum) of the samples of gauge ``name`` at ``url``
    whose labels are ``wanted``; nan when there are none or the scrape fails."""
    try:
        text = requests.get(url, timeout=5).text
    except requests.RequestException:
        return math.nan
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if wanted(sample.labels)
    ]
    if not values:
        return math.nan
    return float(sum(values) if total else max(values))


# -- fixtures ---------------------------------------------------------------------------------


@dataclass
class Ingests:
    """The two extra ingest servers and what they are set to."""

    processes: ProcessDir
    closed_url: str
    closed_prefix: str
    admin_token: str
    open_url: str
    open_prefix: str
    #: The /metrics of each of the two, by base URL.
    metrics_urls: dict[str, str]


@dataclass
class Phase:
    """A stretch of time whose latencies are summarised together: reaction to viewer, and its
    parts (the HTTP request; from ingest's receive time to the viewer)."""

    name: str
    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    requests: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    batches: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)

    def summary(self) -> str:
        """p50 / p99 / samples of the reaction-to-viewer latency."""
        lat = self.latencies
        return f"p50 {_pct(lat, 0.5):.2f} s, p99 {_pct(lat, 0.99):.2f} s ({len(lat)} samples)"

    def parts(self) -> str:
        """p50 / p99 of the latency's parts: the HTTP request (every request of the phase),
        ingest to the aggregation's swarm, and that swarm to the viewer (fanout)."""
        parts = {
            "HTTP request": self.requests,
            "ingest to swarm": [x.emitted - x.received for x in self.samples],
            "swarm to viewer": [x.seen - x.emitted for x in self.samples],
        }
        return "; ".join(
            f"{name} {_pct(v, 0.5):.2f}/{_pct(v, 0.99):.2f} s" for name, v in parts.items()
        )

    def gauges(self) -> str:
        """The product's own view: micro-batch durations and ingest's Kafka delivery p99."""
        b, d = self.batches, self.deliveries
        return (
            f"aggregation micro-batch p50 {_pct(b, 0.5):.2f} s, max {max(b, default=math.nan):.2f} "
            f"s; ingest delivery p99 (queue+outbuf+rtt) max {max(d, default=math.nan):.3f} s "
            f"({len(b)} samples)"
        )


@dataclass
class Harness:
    """The real stream, its sender and viewer, and the figures the tests gather."""

    stack: FaultStack
    ingests: Ingests
    swarm_log: SwarmLog
    redis: redis.Redis
    stream: str
    sender: RealSender
    viewer: Viewer
    gauges: GaugeSampler
    admin_answers: list[tuple[str, int]]
    write: Callable[[str], None]
    phases: dict[str, Phase] = field(default_factory=dict)
    figures: dict[str, dict[str, str]] = field(default_factory=dict)
    closed_ids: list[str] = field(default_factory=list)
    open_accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    hot_stream: str = ""
    quiet_streams: list[str] = field(default_factory=list)
    hot_accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    quiet_accepted: Counter[tuple[str, str]] = field(default_factory=Counter)

    def measure(self, name: str, start: float, end: float) -> Phase:
        """Wait until the viewer has seen a swarm counting a request sent after ``end`` (so
        every earlier one had its chance), then record the latencies of ``[start, end)``."""
        wait_until(
            lambda: f"a swarm of {self.stream} counting a reaction posted after {name}",
            lambda: any(
                s.get("last_receive_ms", 0) > end * 1000 for _, s in list(self.viewer.received)
            ),
            CATCH_UP_S,
            interval_s=POLL_S,
        )
        posts = self.sender.accepted_posts()
        samples = _latencies(posts, list(self.viewer.received), start, end)
        phase = self.phases[name] = Phase(
            name,
            start,
            end,
            [x.seen - x.sent for x in samples],
            [p.answered - p.sent for p in posts if start <= p.sent < end],
            samples,
            *self.gauges.between(start, end),
        )
        return phase

    def block(self, title: str, lines: dict[str, str]) -> None:
        """Write a titled block of figures to the terminal and keep it for the final summary."""
        self.figures[title] = lines
        self.write("")
        self.write(f"== flood: {title}")
        width = max(len(k) for k in lines)
        for key, value in lines.items():
            self.write(f"   {key:<{width}}  {value}")


@pytest.fixture(scope="module")
def write(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """A line to the terminal at once, also without ``-s`` (pytest hides a test's output)."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def line(text: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)

    return line


@pytest.fixture(scope="module")
def ingests(
    stack: FaultStack, say: Say, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ingests]:
    """A closed-mode and an open-mode ingest next to the stack's own, each with its registry
    under a key prefix of its own."""
    stack.up(say)
    root = tmp_path_factory.mktemp("flood-ingests")
    processes = ProcessDir(root / "run", root / "logs")
    tag = uuid.uuid4().hex[:8]
    token = uuid.uuid4().hex
    closed_prefix = f"flood-{tag}-closed:streams:"
    open_prefix = f"flood-{tag}-open:streams:"
    base = stack.child_env()
    closed_env = {
        **base,
        "EMOSTREAM_REGISTRY_MODE": "closed",
        "EMOSTREAM_ADMIN_TOKEN": token,
        "EMOSTREAM_REGISTRY_KEY_PREFIX": closed_prefix,
        # The product's default (the suite turns it off): a refused reaction must not be
        # charged to its address, or the flood would be 429 before it is 404.
        "EMOSTREAM_RATE_LIMIT_PER_ADDRESS_PER_S": "1000",
    }
    open_env = {
        **base,
        "EMOSTREAM_REGISTRY_MODE": "open",
        "EMOSTREAM_REGISTRY_KEY_PREFIX": open_prefix,
        "EMOSTREAM_REGISTRY_MAX_LIVE_STREAMS": str(OPEN_MAX_LIVE_STREAMS),
        "EMOSTREAM_REGISTRY_NEW_STREAMS_PER_MIN": str(OPEN_NEW_STREAMS_PER_MIN),
        "EMOSTREAM_FORWARDED_FOR_HOPS": "1",
        # Off, so every 429 is the registry's and every stream admitted got its reaction (the
        # per-address limit has tests of its own).
        "EMOSTREAM_RATE_LIMIT_PER_ADDRESS_PER_S": "0",
    }
    try:
        urls = {}
        for name, env in (("ingest-closed", closed_env), ("ingest-open", open_env)):
            try:
                urls[name] = start_role(processes, name, "ingest", "gthread", env, timeout_s=120)
            except AssertionError as e:
                raise AssertionError(f"{e}\n{log_tail(processes.log_file(name))}") from None
        closed, opened = urls["ingest-closed"], urls["ingest-open"]
        yield Ingests(
            processes,
            closed.url,
            closed_prefix,
            token,
            opened.url,
            open_prefix,
            {served.url: served.metrics_url for served in (closed, opened)},
        )
    finally:
        for name in processes.names():
            processes.stop(name, grace_s=30)


@pytest.fixture(scope="module")
def harness(
    stack: FaultStack,
    ingests: Ingests,
    swarm_log: SwarmLog,
    write: Callable[[str], None],
) -> Iterator[Harness]:
    """A real stream opened on the closed-mode server, under steady load, with a viewer; and
    its latency baseline, taken before any flood."""
    stream = f"flood-real-{uuid.uuid4().hex[:8]}"
    answers = _open_stream(ingests, stream)
    viewer = Viewer(stack.fanout_url, stream).start()
    sender = RealSender(ingests.closed_url, stream)
    metrics = f"http://127.0.0.1:{stack.settings.aggregate_metrics_port}/metrics"
    ingest_metrics = {**ingests.metrics_urls, stack.ingest_url: stack.ingest_metrics_url}
    gauges = GaugeSampler(metrics, lambda: ingest_metrics[sender.url]).start()
    h = Harness(
        stack,
        ingests,
        swarm_log,
        redis.Redis.from_url(stack.redis_url),
        stream,
        sender,
        viewer,
        gauges,
        answers,
        write,
    )
    try:
        wait_until("the viewer connected", lambda: viewer.connections, 120, interval_s=POLL_S)
        # Every worker sees the opened stream within a refresh; a 404 before that is retried.
        sender.start()
        wait_until(
            lambda: f"a swarm of {stream} at the viewer (errors {viewer.errors[-3:]})",
            lambda: viewer.received,
            CATCH_UP_S,
            interval_s=POLL_S,
        )
        start = time.time()
        time.sleep(BASELINE_S)
        h.measure("baseline", start, time.time())
        yield h
    finally:
        sender.stop()
        viewer.stop()
        gauges.stop()


def _open_stream(ingests: Ingests, stream: str) -> list[tuple[str, int]]:
    """Open ``stream`` on the closed-mode server, trying a missing and a wrong token first."""
    url = f"{ingests.closed_url}/v1/streams/{stream}"
    good = {"Authorization": f"Bearer {ingests.admin_token}"}
    tries = [
        ("no token", {}),
        ("wrong token", {"Authorization": "Bearer not-the-admin-token"}),
        ("admin token", good),
        ("admin token again", good),
    ]
    return [(what, requests.put(url, headers=h, timeout=30).status_code) for what, h in tries]


def _refusals(posts: list[Post]) -> list[str]:
    """The real stream's requests in ``posts`` that did not get a 2xx."""
    return [f"{p.status} at {p.sent:.1f}" for p in posts if not 200 <= p.status < 300]


def _first_counting_after(viewer: Viewer, t: float) -> float | None:
    """Seconds from ``t`` until the viewer received a swarm counting a reaction received later."""
    times = [at for at, s in list(viewer.received) if s.get("last_receive_ms", 0) > t * 1000]
    return min(times) - t if times else None


def _recovery_s(posts: list[Post], t: float) -> float:
    """Seconds from ``t`` to the first 2xx after the last refusal; 0 when none was refused."""
    refused = [p.answered for p in posts if p.sent >= t and not 200 <= p.status < 300]
    if not refused:
        return 0.0
    firsts = [p.answered for p in posts if 200 <= p.status < 300 and p.sent >= max(refused)]
    return min(firsts) - t if firsts else math.nan


# -- the tests --------------------------------------------------------------------------------


def test_closed_registry_flood(harness: Harness) -> None:
    """100,000 reactions to unopened streams: all 404 from memory, Redis and fanout unmoved."""
    h, ingests = harness, harness.ingests
    assert h.admin_answers == [
        ("no token", 401),
        ("wrong token", 401),
        ("admin token", 201),
        ("admin token again", 200),
    ]
    ids = [uuid.uuid4().hex for _ in range(CLOSED_FLOOD_STREAMS)]
    h.closed_ids = ids
    items: list[tuple[str, str, str, str | None]] = [
        (s, f"flood-user-{n}", EMOJIS[n % len(EMOJIS)], None) for n, s in enumerate(ids)
    ]
    fanout = h.stack.procs.running_pid("fanout")
    assert _workers(fanout), "fanout has no worker"
    closed_ingest = ingests.processes.running_pid("ingest-closed")
    redis_before, rss_before = RedisState.read(h.redis), _rss(fanout)
    ingest_rss_before = _rss(closed_ingest)
    tally = _flood(ingests.closed_url, items)
    redis_after, rss_after = RedisState.read(h.redis), _rss(fanout)
    ingest_rss_after = _rss(closed_ingest)
    registry_keys = sorted(k.decode() for k in h.redis.scan_iter(match=f"{ingests.closed_prefix}*"))
    during = h.measure("closed flood", tally.first, tally.last)
    real = h.sender.between(tally.first, tally.last)
    baseline = h.phases["baseline"]
    bound = latency_bound_s(_pct(baseline.latencies, 0.99))
    h.block(
        "closed mode, 100,000 unopened streams",
        {
            "requests": f"{tally.total} in {tally.last - tally.first:.1f} s = {tally.rate:.0f}/s",
            "answers": tally.by_status(),
            "contract broken": f"{tally.bad} {tally.samples[:3]}",
            "Redis keys": f"{redis_before.keys} -> {redis_after.keys} "
            f"({redis_after.keys - redis_before.keys:+d})",
            "Redis used_memory": f"{_mib(redis_before.used_memory)} -> "
            f"{_mib(redis_after.used_memory)} "
            f"({_signed_mib(redis_after.used_memory - redis_before.used_memory)})",
            "Redis commands": f"{redis_after.commands - redis_before.commands} during the "
            "flood, from every client",
            "registry keys": ", ".join(
                k.removeprefix(ingests.closed_prefix) for k in registry_keys
            ),
            "fanout workers' RSS": f"{_mib(rss_before)} -> {_mib(rss_after)} "
            f"({_signed_mib(rss_after - rss_before)})",
            "closed ingest workers' RSS": f"{_mib(ingest_rss_before)} -> "
            f"{_mib(ingest_rss_after)} ({_signed_mib(ingest_rss_after - ingest_rss_before)})",
            "real stream requests": f"{len(real)} during the flood, {len(_refusals(real))} not 2xx",
            "real latency before": baseline.summary(),
            "  parts before (p50/p99)": baseline.parts(),
            "  gauges before": baseline.gauges(),
            "real latency during": during.summary(),
            "  parts during (p50/p99)": during.parts(),
            "  gauges during": during.gauges(),
            "latency bound (p99)": f"{bound:.2f} s",
        },
    )
    assert tally.answers == Counter({(404, STREAM_NOT_LIVE, ""): CLOSED_FLOOD_STREAMS}), (
        f"not all 404 stream-not-live: {tally.by_status()}; samples {tally.samples}"
    )
    assert tally.bad == 0, f"answers breaking the contract: {tally.samples}"
    assert redis_after.keys <= redis_before.keys + REDIS_KEY_SLACK
    assert redis_after.used_memory <= redis_before.used_memory + REDIS_MEMORY_SLACK
    assert redis_after.commands - redis_before.commands <= REDIS_COMMANDS_BOUND
    assert registry_keys == [f"{ingests.closed_prefix}{k}" for k in ("live", "version")]
    assert rss_after <= rss_before + FANOUT_RSS_SLACK
    _check_real_stream(h, real, baseline, during)


def _move_real_stream(h: "Harness", url: str, where: str) -> None:
    """Point the real stream's sender at ``url`` and wait for its first 2xx there."""
    switched = time.time()
    h.sender.url = url

    def there() -> list[Post]:
        return h.sender.between(switched, time.time())

    wait_until(
        lambda: f"a 2xx from {where}: {there()[-3:]}",
        lambda: any(p.url == url and 200 <= p.status < 300 for p in there()),
        CATCH_UP_S,
        interval_s=POLL_S,
    )


def test_open_registry_flood_within_caps(harness: Harness) -> None:
    """Fresh streams from 8 clients: at most the per-client and live caps admitted, 429 beyond."""
    h, ingests = harness, harness.ingests
    # The real stream comes into being on the open-mode server with its next reaction.
    _move_real_stream(h, ingests.open_url, "the open-mode server")
    items: list[tuple[str, str, str, str | None]] = [
        (
            f"flood-{uuid.uuid4().hex}",
            f"flood-open-user-{n}",
            EMOJIS[n % len(EMOJIS)],
            OPEN_CLIENTS[0 if n % 2 == 0 else 1 + (n // 2) % (len(OPEN_CLIENTS) - 1)],
        )
        for n in range(OPEN_FLOOD_REQUESTS)
    ]
    fanout = h.stack.procs.running_pid("fanout")
    redis_before, rss_before = RedisState.read(h.redis), _rss(fanout)
    tally = _flood(ingests.open_url, items)
    redis_after, rss_after = RedisState.read(h.redis), _rss(fanout)
    live = int(h.redis.zcard(f"{ingests.open_prefix}live"))
    snapshots = sum(1 for _ in h.redis.scan_iter(match=latest_swarm_key("*"), count=1000))
    registry_keys = sorted(k.decode() for k in h.redis.scan_iter(match=f"{ingests.open_prefix}*"))
    h.open_accepted = Counter((s, e) for s, e, _ in tally.accepted)
    per_client = Counter(c for _, _, c in tally.accepted)
    duration = tally.last - tally.first
    # The per-client count is kept per fixed minute from the client's first new stream.
    per_client_cap = OPEN_NEW_STREAMS_PER_MIN * max(1, math.ceil(duration / 60))
    during = h.measure("open flood", tally.first, tally.last)
    real = h.sender.between(tally.first, tally.last)
    baseline = h.phases["baseline"]
    bound = latency_bound_s(_pct(baseline.latencies, 0.99))
    h.block(
        f"open mode, caps {OPEN_MAX_LIVE_STREAMS} live / {OPEN_NEW_STREAMS_PER_MIN} new per "
        f"client per minute, {len(OPEN_CLIENTS)} clients",
        {
            "requests": f"{tally.total} in {duration:.1f} s = {tally.rate:.0f}/s",
            "answers": tally.by_status(),
            "contract broken": f"{tally.bad} {tally.samples[:3]}",
            "admitted per client": ", ".join(
                f"{c.rsplit('.', 1)[1]}: {per_client[c]}" for c in OPEN_CLIENTS
            ),
            "live streams in Redis": f"{live} (cap {OPEN_MAX_LIVE_STREAMS}, the real one included)",
            "registry keys": ", ".join(k.removeprefix(ingests.open_prefix) for k in registry_keys),
            "Redis keys": f"{redis_before.keys} -> {redis_after.keys} "
            f"({redis_after.keys - redis_before.keys:+d}; {snapshots} latest-swarm snapshots "
            "now, which expire)",
            "Redis used_memory": f"{_mib(redis_before.used_memory)} -> "
            f"{_mib(redis_after.used_memory)} "
            f"({_signed_mib(redis_after.used_memory - redis_before.used_memory)})",
            "fanout workers' RSS": f"{_mib(rss_before)} -> {_mib(rss_after)} "
            f"({_signed_mib(rss_after - rss_before)})",
            "real stream requests": f"{len(real)} during the flood, {len(_refusals(real))} not 2xx",
            "real latency before": baseline.summary(),
            "  parts before (p50/p99)": baseline.parts(),
            "  gauges before": baseline.gauges(),
            "real latency during": during.summary(),
            "  parts during (p50/p99)": during.parts(),
            "  gauges during": during.gauges(),
            "latency bound (p99)": f"{bound:.2f} s",
        },
    )
    allowed = {202, 429}
    assert {s for s, _, _ in tally.answers} <= allowed, (
        f"answers other than 202 and 429: {tally.by_status()}; samples {tally.samples}"
    )
    refusals = {(t, limit) for s, t, limit in tally.answers if s == 429}
    assert refusals == {(STREAM_LIMIT, "live_stream_cap"), (STREAM_LIMIT, "new_stream_rate")}
    assert tally.bad == 0, f"answers breaking the contract: {tally.samples}"
    over = {c: n for c, n in per_client.items() if n > per_client_cap}
    assert not over, f"clients over {per_client_cap} new streams in {duration:.0f} s: {over}"
    assert live <= OPEN_MAX_LIVE_STREAMS
    # Every stream admitted got its reaction (no stream is live without one), the real one too.
    assert len(tally.accepted) == live - 1
    assert len(registry_keys) <= 2 + len(OPEN_CLIENTS) + 1  # live, version, new:<client>
    _check_real_stream(h, real, baseline, during)


def test_hot_stream(harness: Harness) -> None:
    """One stream 1,000 times hotter than its quiet peers: the real stream within its bound."""
    h, stack = harness, harness.stack
    tag = uuid.uuid4().hex[:8]
    h.hot_stream = f"flood-hot-{tag}"
    h.quiet_streams = [f"flood-quiet-{tag}-{n}" for n in range(QUIET_STREAMS)]
    # In a cluster every stream's requests share the same ingest pods, so the real stream moves
    # to the ingest the hot one posts to: the stack's own, behind nginx, registry open.
    _move_real_stream(h, stack.ingest_url, "the stack's ingest")
    quiet = Traffic(
        stack.ingest_url, h.quiet_streams, rate=QUIET_STREAMS * QUIET_RATE, batch=QUIET_BATCH
    ).start()
    try:
        tally = _hot(stack.ingest_url, h.hot_stream)
    finally:
        quiet.stop()
    h.hot_accepted = Counter((s, e) for s, e, _ in tally.accepted)
    h.quiet_accepted = Counter(quiet.accepted)
    duration = tally.last - tally.first
    hot_rate = len(tally.accepted) / max(duration, 1e-9)
    quiet_requests = len(quiet.outcomes)
    quiet_refused = quiet_requests - sum(1 for o in quiet.outcomes if 200 <= o.status < 300)
    during = h.measure("hot stream", tally.first, tally.last)
    real = h.sender.between(tally.first, tally.last)
    baseline = h.phases["baseline"]
    bound = latency_bound_s(_pct(baseline.latencies, 0.99))
    h.block(
        f"hot stream, {HOT_FACTOR} x a quiet stream's rate, next to {QUIET_STREAMS} quiet ones",
        {
            "requests": f"{tally.total} of {HOT_BATCH} reactions in {duration:.1f} s, "
            f"{len(tally.accepted)} reactions accepted = {hot_rate:.0f}/s "
            f"(target {HOT_RATE:.0f}/s)",
            "answers": tally.by_status(),
            "contract broken": f"{tally.bad} {tally.samples[:3]}",
            "quiet streams": f"{QUIET_STREAMS} x {QUIET_RATE:g}/s: "
            f"{sum(h.quiet_accepted.values())} reactions accepted, {quiet_requests} requests, "
            f"{quiet_refused} not 2xx, {quiet.uncertain} uncertain",
            "real stream requests": f"{len(real)} during the hot stream, "
            f"{len(_refusals(real))} not 2xx",
            "real latency before": baseline.summary(),
            "  parts before (p50/p99)": baseline.parts(),
            "  gauges before": baseline.gauges(),
            "real latency during": during.summary(),
            "  parts during (p50/p99)": during.parts(),
            "  gauges during": during.gauges(),
            "latency bound (p99)": f"{bound:.2f} s",
        },
    )
    assert {s for s, _, _ in tally.answers} <= {202, 429, 503}, (
        f"hot stream: answers other than 202 and retried refusals: {tally.by_status()}; "
        f"samples {tally.samples}"
    )
    assert tally.bad == 0, f"answers breaking the contract: {tally.samples}"
    assert hot_rate >= HOT_RATE_SHARE * HOT_RATE, (
        f"the hot stream reached {hot_rate:.0f} of {HOT_RATE:.0f} reactions/s: not the load "
        "this phase is about"
    )
    assert quiet.unexpected == [], f"quiet streams: unexpected answers {quiet.unexpected[:5]}"
    _check_real_stream(h, real, baseline, during)


def test_every_accepted_reaction_counted(harness: Harness, fault_rows: list[Row]) -> None:
    """The 2xx reactions of the real stream, the open flood and the hot and quiet streams are
    all in the final counts."""
    h, log = harness, harness.swarm_log
    h.sender.stop()
    real, flood = [h.stream], sorted({s for s, _ in h.open_accepted})
    hot, quiet = [h.hot_stream] if h.hot_stream else [], h.quiet_streams
    accepted = Counter(h.sender.accepted)
    poll_until(
        lambda: (
            log.counted(real) == accepted
            and log.counted(flood) == h.open_accepted
            and log.counted(hot) == h.hot_accepted
            and log.counted(quiet) == h.quiet_accepted
        ),
        CATCH_UP_S,
        interval_s=1,
    )
    time.sleep(5)  # anything counted twice would still be arriving
    counted, flood_counted = log.counted(real), log.counted(flood)
    hot_counted, quiet_counted = log.counted(hot), log.counted(quiet)
    unopened = sum(log.counted(h.closed_ids).values())
    last_id = max((s.swarm["id"] for s in log.of(real)), default=None)
    poll_until(lambda: h.viewer.ids[-1:] == [last_id], CATCH_UP_S, interval_s=POLL_S)
    finals = {w: f["counts"] for (_, w), f in log.finals(real).items()}
    lines = {
        "real stream": f"{sum(accepted.values())} reactions accepted, "
        f"{sum(counted.values())} counted ({h.sender.uncertain} uncertain requests)",
        "open flood": f"{sum(h.open_accepted.values())} reactions accepted, "
        f"{sum(flood_counted.values())} counted",
        "closed flood": f"{unopened} reactions of the {len(h.closed_ids)} unopened streams counted",
        "hot stream": f"{sum(h.hot_accepted.values())} reactions accepted, "
        f"{sum(hot_counted.values())} counted",
        "quiet streams": f"{sum(h.quiet_accepted.values())} reactions accepted, "
        f"{sum(quiet_counted.values())} counted",
        "viewer": f"{len(h.viewer.ids)} swarms, {len(h.viewer.connections)} connection(s)",
    }
    for phase in h.phases.values():
        lines[f"real latency, {phase.name}"] = phase.summary()
        lines[f"  parts, {phase.name} (p50/p99)"] = phase.parts()
        lines[f"  gauges, {phase.name}"] = phase.gauges()
    h.block("every accepted reaction counted", lines)
    totals = {
        "real stream": sum(counted.values()),
        "closed flood": unopened,
        "open flood": sum(flood_counted.values()),
        "hot stream": sum(hot_counted.values()),
        "quiet streams": sum(quiet_counted.values()),
    }
    fault_rows.extend(_rows(h, totals))
    assert counted == accepted, f"real stream: counted {counted}, accepted {accepted}"
    assert flood_counted == h.open_accepted, (
        f"open flood: counted {sum(flood_counted.values())} of "
        f"{sum(h.open_accepted.values())} accepted"
    )
    assert hot_counted == h.hot_accepted, (
        f"hot stream: counted {dict(hot_counted)}, accepted {dict(h.hot_accepted)}"
    )
    assert quiet_counted == h.quiet_accepted, (
        f"quiet streams: counted {dict(quiet_counted)}, accepted {dict(h.quiet_accepted)}"
    )
    assert unopened == 0, f"{unopened} reactions of streams that were never opened counted"
    assert log.inconsistencies(real + flood + hot + quiet) == []
    assert h.viewer.finals() == finals, "the viewer's final counts differ from swarms"


def _rows(h: Harness, counted: dict[str, int]) -> list[Row]:
    """The fault table's rows: one per flood, hot stream and its quiet peers (their own events;
    the real stream's 2xx and swarm gaps after the phase began), and the real stream's.
    ``counted``: reactions counted, by the names of :func:`test_every_accepted_reaction_counted`.
    """
    posts = h.sender.between(0, math.inf)
    baseline = h.phases["baseline"]

    def notes(title: str, *keys: str) -> str:
        lines = next((v for k, v in h.figures.items() if k.startswith(title)), {})
        return "; ".join(lines.get(key, "") for key in keys)

    brief = ("requests", "answers")
    rows = []
    for phase_name, fault, what, accepted, note in (
        ("closed flood", "closed mode registry", "closed flood", 0, notes("closed mode", *brief)),
        (
            "open flood",
            "open mode registry",
            "open flood",
            sum(h.open_accepted.values()),
            notes("open mode", *brief),
        ),
        (
            "hot stream",
            f"hot stream ({HOT_RATE:.0f}/s)",
            "hot stream",
            sum(h.hot_accepted.values()),
            notes("hot stream", *brief),
        ),
        (
            "hot stream",
            f"quiet streams ({QUIET_STREAMS} x {QUIET_RATE:g}/s)",
            "quiet streams",
            sum(h.quiet_accepted.values()),
            notes("hot stream", "quiet streams"),
        ),
    ):
        phase = h.phases.get(phase_name)
        if phase is None:
            continue
        rows.append(
            Row(
                f"flood, {fault}",
                accepted,
                counted[what],
                _recovery_s(posts, phase.start),
                _first_counting_after(h.viewer, phase.start),
                note,
            )
        )
    first = min((p.start for n, p in h.phases.items() if n != "baseline"), default=math.nan)
    rows.append(
        Row(
            f"flood, real stream ({REAL_RATE:.0f}/s, 1 viewer)",
            sum(h.sender.accepted.values()),
            counted["real stream"],
            _recovery_s(posts, first),
            _first_counting_after(h.viewer, first),
            "latency p50/p99 "
            + ", ".join(
                f"{p.name} {_pct(p.latencies, 0.5):.2f}/{_pct(p.latencies, 0.99):.2f} s"
                for p in h.phases.values()
            )
            + f" (bound {latency_bound_s(_pct(baseline.latencies, 0.99)):.2f} s)",
        )
    )
    return rows


def _check_real_stream(h: Harness, real: list[Post], baseline: Phase, during: Phase) -> None:
    """The real stream went on during a flood: every request 2xx, latency within the bound."""
    assert real, "the real stream sent nothing during the flood"
    assert _refusals(real) == [], f"the real stream was refused: {_refusals(real)[:5]}"
    assert h.sender.unexpected == [], f"unexpected answers: {h.sender.unexpected[:5]}"
    assert len(baseline.latencies) >= MIN_SAMPLES, f"baseline: {baseline.summary()}"
    assert len(during.latencies) >= MIN_SAMPLES, f"{during.name}: {during.summary()}"
    bound = latency_bound_s(_pct(baseline.latencies, 0.99))
    p99 = _pct(during.latencies, 0.99)
    assert p99 <= bound, (
        f"{during.name}: p99 latency {p99:.2f} s over {bound:.2f} s "
        f"(baseline {baseline.summary()}, during {during.summary()})"
    )
