"""Viewers: client processes holding thousands of SSE connections each, timing every swarm.

One process may hold at most 20,000 open files here, and Python handles a few thousand idle
sockets per process with ease, so the viewers are spread over several processes (``spawn``ed,
so none inherits the driver's Kafka clients). Each runs a plain asyncio event loop with one
:class:`asyncio.Protocol` per connection: no HTTP library, because what is measured is the
server, and a raw protocol costs the client the least CPU on a machine it shares with it.

A viewer does not parse events. It looks for ``"emitted_at":<epoch ms>`` in the bytes as they
arrive (compact JSON, which the fanout, the baseline and Centrifugo all pass through), and the
time from that stamp to the moment the bytes were read is the delivery latency: producer and
viewers share this machine's clock. Two things are counted over a measured window: every swarm
read during it (throughput, however late the swarm), and the latency of every swarm stamped in
it, into a 1 ms histogram per process, merged by the driver, so a step with millions of
deliveries costs a few kilobytes to report.
"""

import asyncio
import contextlib
import math
import multiprocessing as mp
import re
import resource
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

_EMITTED = re.compile(rb'"emitted_at":(\d+)[,}]')
#: Longer than any stamp with its prefix, so a stamp split between two reads is kept whole.
_TAIL = 40
#: Latencies above this (ms) share the last histogram bucket.
MAX_LATENCY_MS = 60_000
#: Connection attempts under way at once per process, and how long one may wait for its
#: response head: few and patient, so a server that accepts slowly is not also made to accept
#: connections its viewers already gave up on.
_IN_FLIGHT = 32
_CONNECT_TIMEOUT_S = 30.0
_ATTEMPTS = 4
_RETRY_S = 1.0


@dataclass(frozen=True)
class Target:
    """Where viewers connect: server addresses, and one request path per stream."""

    addresses: Sequence[tuple[str, int]]
    paths: Sequence[str]


class _Viewer(asyncio.Protocol):
    """One SSE connection: checks the status line, then times each swarm's stamp."""

    def __init__(self, pool: "_Pool", request: bytes) -> None:
        self.pool = pool
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.head = b""
        self.tail = b""
        self.streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP gives one
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.streaming:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                code = int(self.head.split(b" ", 2)[1])
            except (IndexError, ValueError):
                code = 0
            data, self.head = self.head[end + 4 :], b""
            if not self.status.done():
                self.status.set_result(code)
            if code != 200:
                self.close()
                return
            self.streaming = True
        buf = self.tail + data if self.tail else data
        now = time.time() * 1000
        last = 0
        for match in _EMITTED.finditer(buf):
            self.pool.record(int(match.group(1)), now)
            last = match.end()
        self.tail = buf[max(last, len(buf) - _TAIL) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.status.done():
            self.status.set_result(0)
        self.pool.lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Counts:
    """What one process (or, merged, every process) saw."""

    held: int = 0
    refused: int = 0
    failed: int = 0
    dropped: int = 0
    received: int = 0
    histogram: dict[int, int] = field(default_factory=dict)

    def merge(self, other: "Counts") -> None:
        """Add ``other``'s counts to these."""
        self.held += other.held
        self.refused += other.refused
        self.failed += other.failed
        self.dropped += other.dropped
        self.received += other.received
        for k, v in other.histogram.items():
            self.histogram[k] = self.histogram.get(k, 0) + v

    @property
    def timed(self) -> int:
        """Swarms stamped within the measured window and read before :meth:`collect`."""
        return sum(self.histogram.values())

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the latencies in ms (nearest rank), NaN if none."""
        total = self.timed
        if not total:
            return math.nan
        rank = max(1, math.ceil(q * total))
        seen = 0
        for ms in sorted(self.histogram):
            seen += self.histogram[ms]
            if seen >= rank:
                return float(ms)
        return float(max(self.histogram))


class _Pool:
    """The connections of one client process."""

    def __init__(self, index: int, processes: int) -> None:
        self.index = index
        self.processes = processes
        self.local_ip = f"127.0.0.{2 + index % 250}"
        self.viewers: set[_Viewer] = set()
        self.opened = 0
        self.counts = Counts()
        self.histogram = [0] * (MAX_LATENCY_MS + 1)
        self.received = 0
        self.since = math.inf
        self.until = math.inf

    def record(self, emitted_ms: int, now_ms: float) -> None:
        if self.since <= now_ms < self.until:
            self.received += 1
        if self.since <= emitted_ms < self.until:
            self.histogram[min(MAX_LATENCY_MS, max(0, int(now_ms - emitted_ms)))] += 1

    def lost(self, viewer: _Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.discard(viewer)
            if viewer.streaming:
                self.counts.dropped += 1

    async def top_up(
        self, target: int, where: Target, deadline_s: float, report: Callable[[int], None]
    ) -> None:
        """Open connections until this process holds ``target``, attempts run out, or
        ``deadline_s`` seconds have passed (a server that accepts ever more slowly)."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(_IN_FLIGHT)
        # Every wait below is cut to the time left, so all attempts end by the deadline.
        deadline = loop.time() + deadline_s

        async def one(slot: int) -> None:
            # Viewer k of process i is viewer i + k * processes overall: streams and server
            # addresses go round-robin over all viewers, whichever process holds them.
            n = self.index + slot * self.processes
            host, port = where.addresses[n % len(where.addresses)]
            path = where.paths[n % len(where.paths)]
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
            ).encode()
            for attempt in range(_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(_RETRY_S)
                async with gate:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    code = await self._connect(
                        loop, host, port, request, min(_CONNECT_TIMEOUT_S, left)
                    )
                if code == 200:
                    return

        async def progress() -> None:
            while True:
                await asyncio.sleep(1.0)
                report(len(self.viewers))

        needed = target - len(self.viewers)
        slots = range(self.opened, self.opened + max(0, needed))
        self.opened += max(0, needed)
        ticker = asyncio.create_task(progress())
        try:
            await asyncio.gather(*(one(s) for s in slots))
        finally:
            ticker.cancel()

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        request: bytes,
        timeout_s: float,
    ) -> int:
        """One attempt: 200 once the response head is read, else its status (0: no answer)."""
        viewer = _Viewer(self, request)
        try:
            async with asyncio.timeout(timeout_s):
                await loop.create_connection(
                    lambda: viewer, host, port, local_addr=(self.local_ip, 0)
                )
                self.viewers.add(viewer)
                code = await asyncio.shield(viewer.status)
        except (OSError, TimeoutError):
            viewer.close()
            self.viewers.discard(viewer)
            self.counts.failed += 1
            return 0
        if code == 200:
            return code
        self.viewers.discard(viewer)
        if code:
            self.counts.refused += 1
        else:
            self.counts.failed += 1
        return code

    def measure(self, since_ms: int, until_ms: int) -> None:
        self.histogram = [0] * (MAX_LATENCY_MS + 1)
        self.received = 0
        self.since, self.until = since_ms, until_ms

    def collect(self) -> Counts:
        counts = Counts(
            held=len(self.viewers),
            refused=self.counts.refused,
            failed=self.counts.failed,
            dropped=self.counts.dropped,
            received=self.received,
            histogram={ms: n for ms, n in enumerate(self.histogram) if n},
        )
        self.since = self.until = math.inf
        return counts

    async def close_all(self) -> None:
        for viewer in list(self.viewers):
            viewer.close()
        deadline = time.monotonic() + 30
        while self.viewers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.viewers.clear()
        self.opened = 0
        self.counts = Counts()


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _client_main(conn: Connection, index: int, processes: int) -> None:
    # The driver closes the connections and stops this process; Ctrl-C is the driver's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_open_files_limit()
    asyncio.run(_serve(conn, _Pool(index, processes)))


async def _serve(conn: Connection, pool: _Pool) -> None:
    """Carry out the driver's commands one at a time, answering each when it is done."""
    loop = asyncio.get_running_loop()
    while True:
        command, arg = await loop.run_in_executor(None, conn.recv)
        if command == "top_up":
            target, where, deadline_s = arg
            await pool.top_up(target, where, deadline_s, lambda held: conn.send(("progress", held)))
            conn.send(("done", len(pool.viewers)))
        elif command == "measure":
            pool.measure(*arg)
            conn.send(("done", None))
        elif command == "collect":
            conn.send(("done", pool.collect()))
        elif command == "close_all":
            await pool.close_all()
            conn.send(("done", None))
        else:
            await pool.close_all()
            conn.send(("done", None))
            return


class Viewers:
    """The driver's handle on the client processes."""

    def __init__(self, processes: int) -> None:
        ctx = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        for i in range(processes):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_client_main, args=(theirs, i, processes), daemon=True)
            proc.start()
            theirs.close()
            self._conns.append(ours)
            self._procs.append(proc)

    @property
    def pids(self) -> list[int]:
        """The client processes' ids, for their CPU time."""
        return [proc.pid for proc in self._procs]

    def __enter__(self) -> "Viewers":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _all(
        self, command: str, args: Sequence[Any], on_progress: Callable[[int], None]
    ) -> list[Any]:
        for conn, arg in zip(self._conns, args, strict=True):
            conn.send((command, arg))
        results: list[Any] = [None] * len(self._conns)
        pending = set(range(len(self._conns)))
        latest = [0] * len(self._conns)
        while pending:
            for i in list(pending):
                conn = self._conns[i]
                if not conn.poll(0.05):
                    continue
                kind, value = conn.recv()
                if kind == "progress":
                    latest[i] = value
                    on_progress(sum(latest))
                else:
                    results[i] = value
                    pending.discard(i)
            if any(not p.is_alive() for p in self._procs):
                raise SystemExit("a client process died; see its output above")
        return results

    def top_up(
        self, target: int, where: Target, deadline_s: float, on_progress: Callable[[int], None]
    ) -> int:
        """Hold ``target`` connections in all (opening what is missing, for at most
        ``deadline_s`` seconds); returns how many are held."""
        n = len(self._conns)
        shares = [(target // n + (1 if i < target % n else 0), where, deadline_s) for i in range(n)]
        return sum(self._all("top_up", shares, on_progress))

    def measure(self, since_ms: int, until_ms: int) -> None:
        """Time the swarms stamped within [since_ms, until_ms) from now on."""
        self._all("measure", [(since_ms, until_ms)] * len(self._conns), _ignore)

    def collect(self) -> Counts:
        """Every process's counts since the last :meth:`close_all`, merged."""
        total = Counts()
        for counts in self._all("collect", [None] * len(self._conns), _ignore):
            total.merge(counts)
        return total

    def close_all(self) -> None:
        """Close every connection and reset the counts."""
        self._all("close_all", [None] * len(self._conns), _ignore)

    def stop(self) -> None:
        """End the client processes (closing their connections first when they answer)."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(("quit", None))
        deadline = time.monotonic() + 10
        for proc in self._procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def _ignore(_held: int) -> None:
    return None
