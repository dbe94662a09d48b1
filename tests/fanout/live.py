"""Helpers for tests that run fanout under real gunicorn and read it over real sockets."""

import re
import time
from typing import Any

import requests
from confluent_kafka import Producer

from emostream.client import SSEEvent, SSEParser
from emostream.common.events import encode_json
from emostream.localstack.process import ProcessDir
from tests.support.servers import Served, start_role

#: Short heartbeats and presence refreshes so that tests see their effects quickly.
SERVER_ENV = {
    "EMOSTREAM_HEARTBEAT_S": "1",
    "EMOSTREAM_GRACEFUL_TIMEOUT_S": "10",
    "EMOSTREAM_PRESENCE_REFRESH_S": "0.5",
    "EMOSTREAM_PRESENCE_TTL_S": "3",
    "EMOSTREAM_DRAIN_S": "2",
}


def start_fanout(processes: ProcessDir, name: str, env: dict[str, str], **overrides: str) -> Served:
    """Serve fanout under gunicorn's gevent worker on free loopback ports; returns where."""
    return start_role(processes, name, "fanout", "gevent", {**env, **SERVER_ENV, **overrides})


def produce(producer: Producer, topic: str, messages: list[dict[str, Any]]) -> None:
    """Write ``messages`` to ``topic`` (keyed by stream, like the aggregation) and wait."""
    for msg in messages:
        producer.produce(topic, key=msg["stream_id"].encode(), value=encode_json(msg))
    assert producer.flush(10) == 0


def metric(server: Served, name: str) -> float:
    """The value of one sample of the server's /metrics (0 when absent)."""
    text = requests.get(server.metrics_url, timeout=5).text
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class RawFeed:
    """An SSE response read with the SDK's parser, keeping the raw text for framing checks.

    Closed by :meth:`close`, or at the end of a ``with`` block.
    """

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, *, keep_text: bool = True
    ) -> None:
        self.response = requests.get(url, headers=headers or {}, stream=True, timeout=(5, 10))
        self.parser = SSEParser()
        self.text = ""
        self.keep_text = keep_text
        self.ended = False

    def __enter__(self) -> "RawFeed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def read(self, count: int, within_s: float = 15) -> list[SSEEvent]:
        """Read until ``count`` events arrived (fails after ``within_s``)."""
        events: list[SSEEvent] = []
        deadline = time.monotonic() + within_s
        while len(events) < count:
            assert time.monotonic() < deadline, f"only {len(events)} of {count} events arrived"
            events += self._chunk()
            assert not self.ended, "feed ended early"
        return events

    def read_for(self, seconds: float) -> list[SSEEvent]:
        """Every event arriving within ``seconds`` (heartbeats keep reads short)."""
        events: list[SSEEvent] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.ended:
            events += self._chunk()
        return events

    def read_to_end(self, within_s: float = 15) -> list[SSEEvent]:
        """Every event until the server ends the response cleanly (fails after ``within_s``)."""
        events: list[SSEEvent] = []
        deadline = time.monotonic() + within_s
        while not self.ended:
            assert time.monotonic() < deadline, "the feed did not end"
            events += self._chunk()
        return events

    def wait_open(self) -> None:
        """Read the retry hint: once it arrived the server has registered this viewer."""
        while self.parser.retry_ms is None:
            assert not self._chunk(), "no event expected before the retry hint"
            assert not self.ended

    def _chunk(self) -> list[SSEEvent]:
        # read1 raises (urllib3 ProtocolError) if the chunked body is cut off before its end.
        chunk = self.response.raw.read1(65536)
        if not chunk:
            self.ended = True
            return []
        if self.keep_text:
            self.text += chunk.decode()
        return self.parser.feed(chunk)

    def close(self) -> None:
        self.response.close()
