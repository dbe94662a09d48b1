"""Restart safety: stop the query in the middle of a stream and restart it from its checkpoint.

"Killing" the job here is stopping its query while a micro-batch is running, in the session's one
Spark session (a second driver would be a second JVM): the interrupted batch was planned but not
committed, exactly as after a crash, so the restarted query replays it. Meanwhile the metrics
endpoint must show the backlog growing, then shrinking once the query is back.
"""

import random
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pyspark.sql import SparkSession

from emostream.aggregate._metrics import BacklogProbe, ProgressListener, serve_metrics
from emostream.common.events import Reaction, iso_utc, now_ms
from emostream.common.kafka import KafkaConnection
from tests.aggregate.conftest import (
    QUERY_POLL_S,
    QUERY_WAIT_S,
    WINDOW_MS,
    Scenario,
    final_counts,
    make_scenario,
    rows_processed,
)
from tests.support.ports import free_port
from tests.support.waiting import poll_until, wait_until

pytestmark = pytest.mark.integration

EMOJIS = ("❤️", "😂", "👏", "😡")


class Audience(threading.Thread):
    """Reactions at a steady rate on a few streams, remembering every one it sent."""

    def __init__(self, sc: Scenario, streams: list[str], rate: int) -> None:
        super().__init__(daemon=True)
        self.sc, self.streams, self.rate = sc, streams, rate
        self.sent: Counter[tuple[str, str, str]] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        """Send a tick's worth every 50 ms until stopped."""
        rng = random.Random(7)
        n = 0
        while not self.stop.wait(0.05):
            batch = []
            for _ in range(self.rate // 20):
                n += 1
                rts = now_ms()
                ts = rts - rng.randrange(400)  # a little out of order, well within the watermark
                r = Reaction(
                    f"e{n}", rng.choice(self.streams), f"u{n}", rng.choice(EMOJIS), ts, rts
                )
                batch.append(r)
                self.sent[(r.stream_id, iso_utc(ts - ts % WINDOW_MS), r.emoji)] += 1
            self.sc.produce(batch)

    def expected(self) -> dict[tuple[str, str], dict[str, int]]:
        """Per (stream, window start): the exact counts of what was sent."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for (stream, window, emoji), n in self.sent.items():
            out.setdefault((stream, window), {})[emoji] = n
        return out


@dataclass
class Run:
    """What the restart scenario observed."""

    streams: list[str]
    expected: dict[tuple[str, str], dict[str, int]]
    swarms: list[dict[str, Any]]
    stopped_mid_batch: bool
    backlog_while_stopped: list[float]
    backlog_after_restart: list[float]
    fresh_swarms: list[dict[str, Any]] = field(default_factory=list)


def _scrape(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    pattern = rf'^emostream_aggregate_offsets_behind_latest{{query="{name}"}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


@pytest.fixture(scope="module")
def run(
    spark: SparkSession,
    kafka_bootstrap: str,
    redis_url: str,
    listener: ProgressListener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """Stream, stop mid-batch, wait, restart from the checkpoint, drain; then a fresh checkpoint."""
    tmp = tmp_path_factory.mktemp("restart")
    sc = make_scenario(spark, kafka_bootstrap, redis_url, tmp)
    streams = [f"{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    port = free_port()
    server = serve_metrics(port, "127.0.0.1")
    probe = BacklogProbe(KafkaConnection(kafka_bootstrap), listener, interval_s=0.5)
    probe.start()
    audience = Audience(sc, streams, rate=400)
    query = sc.start()
    try:
        audience.start()
        wait_until(
            "first swarms",
            lambda: sum(1 for p in query.recentProgress if p.numInputRows) >= 3,
            QUERY_WAIT_S,
            interval_s=QUERY_POLL_S,
        )
        # Stop while a micro-batch is running: it is planned (offset log) but not committed.
        poll_until(lambda: query.status["isTriggerActive"], 10, interval_s=0.002)
        mid_batch = bool(query.status["isTriggerActive"])
        query.stop()
        stopped_at = time.monotonic()
        while_stopped = []
        for at in (1.5, 4.0):
            time.sleep(max(0.0, stopped_at + at - time.monotonic()))
            while_stopped.append(_scrape(port, sc.name))
        query = sc.start()
        after = [_scrape(port, sc.name)]  # as the query comes back
        time.sleep(3)
        audience.stop.set()
        audience.join()
        wait_until(
            "backlog drained",
            lambda: rows_processed(query) > 0 and _scrape(port, sc.name) == 0,
            QUERY_WAIT_S,
            interval_s=QUERY_POLL_S,
        )
        after.append(_scrape(port, sc.name))
        expected = audience.expected()
        swarms = sc.swarms(
            lambda got: all(final_counts(got).get(k) == v for k, v in expected.items())
        )
        query.stop()
        # A fresh checkpoint: batch ids start again from 0, under a new, greater epoch.
        query = sc.start(checkpoint_location=str(tmp / "fresh"), starting_offsets="latest")
        wait_until(
            "fresh query running",
            lambda: query.lastProgress is not None,
            QUERY_WAIT_S,
            interval_s=QUERY_POLL_S,
        )
        before = len(swarms)
        rts = now_ms()
        sc.produce([Reaction(f"f{i}", s, "u", "🔥", rts, rts) for i, s in enumerate(streams)])
        fresh = sc.swarms(lambda got: len({x["stream_id"] for x in got[before:]}) >= len(streams))
        yield Run(
            streams=streams,
            expected=expected,
            swarms=swarms,
            stopped_mid_batch=mid_batch,
            backlog_while_stopped=while_stopped,
            backlog_after_restart=after,
            fresh_swarms=fresh[before:],
        )
    finally:
        audience.stop.set()
        query.stop()
        probe.stop()
        server.shutdown()


def test_the_query_was_stopped_in_the_middle_of_a_batch(run: Run) -> None:
    """The scenario really interrupted a running micro-batch."""
    assert run.stopped_mid_batch


def test_final_counts_of_every_window_are_exact_after_a_restart(run: Run) -> None:
    """No reaction is lost or counted twice across the stop and the restart."""
    counts = final_counts(run.swarms)
    assert {k: counts.get(k) for k in run.expected} == run.expected
    assert {k for k in counts if k[0] in run.streams} == set(run.expected)


def test_no_swarm_id_is_emitted_with_different_content(run: Run) -> None:
    """A replayed batch republishes its swarms under the same ids with the same content."""
    by_id: dict[tuple[str, str], dict[str, Any]] = {}
    for s in run.swarms:  # ids are unique per stream
        content = {k: v for k, v in s.items() if k != "emitted_at"}
        assert by_id.setdefault((s["stream_id"], s["id"]), content) == content
    assert len({s["id"].partition(".")[0] for s in run.swarms}) == 1  # one epoch throughout


def test_the_fanout_rule_delivers_exact_final_counts(run: Run) -> None:
    """Keeping, per stream, only ids greater than the last one still ends on the exact counts."""
    last: dict[str, str] = {}
    delivered = []
    for s in run.swarms:  # one stream's swarms share a partition, so this is their order
        if s["id"] > last.get(s["stream_id"], ""):
            last[s["stream_id"]] = s["id"]
            delivered.append(s)
    counts = final_counts(delivered)
    assert {k: counts.get(k) for k in run.expected} == run.expected


def test_backlog_grows_while_stopped_and_shrinks_after(run: Run) -> None:
    """The metrics endpoint shows the records waiting pile up, then drain to zero."""
    first, second = run.backlog_while_stopped
    back, drained = run.backlog_after_restart
    assert 0 < first < second <= back
    assert drained == 0


def test_a_fresh_checkpoint_emits_ids_the_fanout_accepts(run: Run) -> None:
    """After starting over without the checkpoint, every stream's new ids are still greater."""
    newest = {}
    for s in run.swarms:
        newest[s["stream_id"]] = max(newest.get(s["stream_id"], ""), s["id"])
    assert {s["stream_id"] for s in run.fresh_swarms} == set(run.streams)
    for s in run.fresh_swarms:
        assert s["id"] > newest[s["stream_id"]]
        assert s["id"].split(".")[1].startswith("000000000")  # batch ids started again
