"""Senders: processes of threads posting batches of reactions to ingest at a fixed rate.

Each thread keeps one HTTP/1.1 connection and posts a batch every ``batch / rate`` seconds on a
fixed schedule (a late answer delays the next post, never the schedule's later slots), to
``/v1/streams/<stream>/reactions``, the streams taken in turn. Every reaction of a batch carries
the batch's send time as ``ts`` and a user id that no other reaction sent in the same
millisecond has, so ``(user_id, ts)`` names it again when it is read back from Kafka.
"""

import http.client
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

EMOJIS = ("👏", "😂", "❤️", "😍", "😭", "😡", "👍", "👎")
#: User ids a thread cycles through: at 100,000 reactions/s over 16 threads a user sends about
#: one reaction a second, far under ingest's per-user limit.
USERS_PER_THREAD = 20_000
#: The first post is due this long after :func:`send` is called: every process is up by then.
SEND_DELAY_S = 1.0


@dataclass(frozen=True)
class Plan:
    """What the senders do, all together."""

    host: str
    port: int
    streams: tuple[str, ...]
    rate: float
    batch: int
    duration_s: float
    processes: int
    threads: int


@dataclass(frozen=True)
class Sent:
    """One posted batch: ``users`` are ``<prefix><first + i>`` for i < n, modulo the cycle."""

    stream: str
    ts: int
    prefix: str
    first: int
    n: int
    sent_ms: float
    answered_ms: float
    status: int

    def users(self) -> list[str]:
        """The user id of each of the batch's reactions."""
        return [f"{self.prefix}{(self.first + i) % USERS_PER_THREAD}" for i in range(self.n)]


def _thread(plan: Plan, name: str, start: float, out: list[tuple[object, ...]]) -> None:
    conn = http.client.HTTPConnection(plan.host, plan.port, timeout=30)
    interval = plan.batch * plan.processes * plan.threads / plan.rate
    headers = {"Content-Type": "application/json"}
    k = 0
    next_user = 0
    while (due := start + k * interval) < start + plan.duration_s:
        if (wait := due - time.time()) > 0:
            time.sleep(wait)
        stream = plan.streams[k % len(plan.streams)]
        emoji = EMOJIS[k % len(EMOJIS)]
        sent = time.time()
        ts = int(sent * 1000)
        body = orjson.dumps(
            [
                {"user_id": f"{name}{(next_user + i) % USERS_PER_THREAD}", "emoji": emoji, "ts": ts}
                for i in range(plan.batch)
            ]
        )
        try:
            conn.request("POST", f"/v1/streams/{stream}/reactions", body, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            status = 0
        out.append(
            (stream, ts, name, next_user, plan.batch, sent * 1000, time.time() * 1000, status)
        )
        next_user += plan.batch
        k += 1
    conn.close()


def _process(plan: Plan, index: int, start: float, path: str) -> None:
    rows: list[tuple[object, ...]] = []
    offset = plan.batch / plan.rate  # the threads' slots interleave evenly
    threads = [
        threading.Thread(
            target=_thread,
            args=(plan, f"s{index}t{t}u", start + (t * plan.processes + index) * offset, rows),
        )
        for t in range(plan.threads)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(path).write_bytes(orjson.dumps(rows))


def send(plan: Plan, workdir: Path) -> list[Sent]:
    """Run the plan to its end; returns every batch posted."""
    ctx = mp.get_context("spawn")
    start = time.time() + SEND_DELAY_S
    paths = [workdir / f"sent-{i}.json" for i in range(plan.processes)]
    procs = [
        ctx.Process(target=_process, args=(plan, i, start, str(p))) for i, p in enumerate(paths)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a sender process failed with exit code {p.exitcode}")
    return [Sent(*row) for path in paths for row in orjson.loads(path.read_bytes())]
