"""The whole pipeline over real sockets: HTTP ingest -> Kafka -> Spark -> Kafka -> SSE fanout."""

import csv
import math
import pathlib
import time
import uuid

import pytest
import requests
from pyspark.sql.streaming.query import StreamingQuery

from emostream.client import EmostreamClient
from emostream.loadgen.run import main as load_main
from emostream.localstack.process import ProcessDir
from tests.support.feeds import SwarmCollector
from tests.support.servers import start_role
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(
    aggregation: StreamingQuery, processes: ProcessDir, service_env: dict[str, str]
) -> EmostreamClient:
    """An SDK client pointed at real ingest and fanout servers wired to the running aggregation."""
    ingest = start_role(processes, "e2e-ingest", "ingest", "gthread", service_env, timeout_s=120)
    fanout = start_role(processes, "e2e-fanout", "fanout", "gevent", service_env, timeout_s=120)
    return EmostreamClient(ingest_url=ingest.url, fanout_url=fanout.url)


@pytest.fixture
def stream() -> str:
    """A stream id no other test uses."""
    return f"e2e-{uuid.uuid4().hex[:10]}"


def test_exact_counts_arrive_on_the_sse_feed(client: EmostreamClient, stream: str) -> None:
    """2,500 hearts and 300 laughs posted within a second arrive as exactly those counts."""
    batch = [{"user_id": f"u{i}", "emoji": "❤️"} for i in range(2500)]
    batch += [{"user_id": f"v{i}", "emoji": "😂"} for i in range(300)]
    with SwarmCollector(client, stream, timeout=90) as feed:
        accepted = sum(client.send(stream, batch[i : i + 500]) for i in range(0, len(batch), 500))
        assert accepted == 2800
        wait_until("exact counts", lambda: feed.totals() == {"❤️": 2500, "😂": 300}, 90)
    for swarm in feed.windows.values():
        assert swarm["stream_id"] == stream
        assert swarm["swarm"] == {e: math.ceil(n / 1000) for e, n in swarm["counts"].items()}
    assert feed.ids == sorted(feed.ids)
    assert len(feed.ids) == len(set(feed.ids))


def test_original_send_emoji_route_is_counted(client: EmostreamClient, stream: str) -> None:
    """Events from the original clients' /send_emoji route reach the stream they name."""
    now = int(time.time())
    with SwarmCollector(client, stream, timeout=90) as feed:
        for i in range(20):
            reply = requests.post(
                f"{client.ingest_url}/send_emoji",
                json={"user_id": i, "emoji_type": "👏", "timestamp": now, "stream_id": stream},
                timeout=5,
            )
            assert reply.status_code == 200
            assert reply.json() == {"status": "Emoji data received"}
        wait_until("send_emoji counts", lambda: feed.totals() == {"👏": 20}, 90)


def test_sse_frames_follow_the_contract(client: EmostreamClient, stream: str) -> None:
    """The raw feed has SSE headers, and each swarm is an id / event: swarm / data frame."""
    client.send(stream, {"user_id": "raw", "emoji": "😍"})
    url = f"{client.fanout_url}/v1/streams/{stream}/events"
    with requests.get(url, stream=True, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"] == "no-cache"
        assert resp.headers["X-Accel-Buffering"] == "no"
        lines: list[str] = []
        for line in resp.iter_lines(decode_unicode=True):
            lines.append(line)
            if line.startswith("data:"):
                break
    assert lines[-3].startswith("id: ")
    assert lines[-2] == "event: swarm"
    assert '"stream_id"' in lines[-1]


def test_load_run_writes_report_csvs_and_plots(
    client: EmostreamClient, tmp_path: pathlib.Path
) -> None:
    """``make load``'s runner drives both services with Locust and writes its whole report."""
    out = tmp_path / "load"
    args = ["--host", client.ingest_url, "--fanout-url", client.fanout_url, "--users", "8"]
    args += ["--spawn-rate", "8", "--run-time", "15s", "--out", str(out)]
    assert load_main(args) == 0, "Locust counted failed requests"
    with (out / "locust_stats.csv").open(newline="") as f:
        sent = {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(f)}
    assert sent["/send_emoji"] > 0
    assert sent["/v1/streams/[id]/reactions"] > 0
    for name in ("report.html", "throughput.png", "latency.png", "users.png"):
        assert (out / name).stat().st_size > 1000, name
