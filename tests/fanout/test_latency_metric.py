"""The reaction-to-viewer latency histogram, observed by real gunicorn workers on real sockets."""

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from simple_websocket import Client as WebSocketClient

from emostream.common.events import encode_json, now_ms
from emostream.fanout._swarm import Swarm
from emostream.localstack.process import ProcessDir
from tests.conftest import Topics
from tests.fanout.live import RawFeed, produce, start_fanout
from tests.fanout.swarms import swarm_message
from tests.support.servers import Served

HISTOGRAM = "emostream_fanout_event_to_viewer_seconds"
#: How old the newest reaction of the test's swarm is when it is produced: more than the
#: histogram's 1 s bucket, so where the observation lands is known without timing anything.
AGE_MS = 1_500


def samples(server: Served, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` on the server's /metrics, keyed by its sorted labels."""
    text = requests.get(server.metrics_url, timeout=10).text
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_decode_keeps_the_newest_receive_time() -> None:
    """A swarm carries last_receive_ms when it is a positive integer, and None otherwise."""
    message = swarm_message("s1", 1)
    assert Swarm.decode(encode_json(message), fallback_time_ms=0).last_receive_ms is None
    for bad in (0, -5, "123", 1.5, None):
        odd = {**message, "last_receive_ms": bad}
        assert Swarm.decode(encode_json(odd), fallback_time_ms=0).last_receive_ms is None
    good = {**message, "last_receive_ms": 1_764_000_000_123}
    assert Swarm.decode(encode_json(good), fallback_time_ms=0).last_receive_ms == 1_764_000_000_123


@pytest.fixture(scope="module")
def fanout(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[Served]:
    """Two gunicorn workers, so /metrics must add up the workers' multiprocess files."""
    yield start_fanout(processes, "fanout-latency", service_env, EMOSTREAM_WORKERS="2")
    processes.stop("fanout-latency", grace_s=15)


@pytest.mark.integration
def test_live_swarm_with_receive_time_is_observed_per_transport(
    fanout: Served, producer: Producer, topics: Topics, stream: str
) -> None:
    """Each write of a live swarm is timed from its newest reaction; swarms without one are not."""
    before = samples(fanout, f"{HISTOGRAM}_bucket")
    lag_before = samples(fanout, "emostream_fanout_delivery_lag_seconds_count")
    feed = RawFeed(f"{fanout.url}/v1/streams/{stream}/events")
    ws = WebSocketClient.connect(
        fanout.url.replace("http://", "ws://") + f"/v1/streams/{stream}/ws"
    )
    try:
        feed.wait_open()
        timed: dict[str, Any] = {
            **swarm_message(stream, 1, window=0),
            "first_receive_ms": now_ms() - AGE_MS - 500,
            "last_receive_ms": now_ms() - AGE_MS,
        }
        untimed = swarm_message(stream, 2, window=1)
        produce(producer, topics.swarms, [timed, untimed])
        assert [e.id for e in feed.read(2)] == [timed["id"], untimed["id"]]
        assert ws.receive(timeout=15) is not None
        assert ws.receive(timeout=15) is not None
    finally:
        feed.close()
        ws.close()

    after = samples(fanout, f"{HISTOGRAM}_bucket")
    lag_after = samples(fanout, "emostream_fanout_delivery_lag_seconds_count")
    for transport in ("sse", "ws"):
        # Bucket counts this test added, by upper bound.
        added = {
            dict(labels)["le"]: n - before.get(labels, 0)
            for labels, n in after.items()
            if ("transport", transport) in labels
        }
        # Only the swarm with last_receive_ms is timed here, at least AGE_MS after its reaction.
        assert added["+Inf"] == 1, transport
        assert added["1.0"] == added["0.05"] == 0, transport
        # Both swarms carry emitted_at, so both are timed for the emission-to-write lag.
        key = (("transport", transport),)
        assert lag_after[key] - lag_before.get(key, 0) == 2, transport
