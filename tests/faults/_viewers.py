"""Viewers reading a stream's raw SSE feed and resuming with Last-Event-ID after a drop.

Raw SSE rather than the SDK on purpose: the SDK skips ids it has already yielded, which would
hide a server that replays too much. Every event is recorded as it arrived, duplicates and all.
"""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests
import urllib3

from emostream.client import SSEParser


@dataclass
class Viewer:
    """One SSE connection to a stream's feed that reconnects with Last-Event-ID when dropped."""

    fanout_url: str
    stream: str
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    connections: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _last_id: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _response: requests.Response | None = None
    _thread: threading.Thread | None = None

    def start(self) -> "Viewer":
        """Connect and keep reading in the background."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the connection and stop reconnecting."""
        self._stop.set()
        with self._lock:
            if self._response is not None:
                self._response.close()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def ids(self) -> list[str]:
        """Every swarm id received, in arrival order."""
        with self._lock:
            return [s["id"] for _, s in self.received]

    def finals(self) -> dict[str, dict[str, int]]:
        """Per window start, the counts of the last swarm received for it."""
        with self._lock:
            return {s["window_start"]: s["counts"] for _, s in self.received}

    def first_after(self, t: float) -> float | None:
        """When the first swarm after ``t`` arrived, if one did."""
        with self._lock:
            times = [at for at, _ in self.received if at > t]
        return min(times) if times else None

    def _run(self) -> None:
        url = f"{self.fanout_url}/v1/streams/{self.stream}/events"
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
            if self._last_id:
                headers["Last-Event-ID"] = self._last_id
            try:
                with requests.get(url, headers=headers, stream=True, timeout=(5, 40)) as resp:
                    with self._lock:
                        self._response = resp
                    if resp.status_code != 200:
                        self.errors.append(f"{resp.status_code} {resp.text[:200]}")
                    else:
                        self.connections.append(time.time())
                        self._read(resp)
            except (
                requests.RequestException,
                urllib3.exceptions.HTTPError,  # a dropped connection, read through ``raw``
                OSError,
                AttributeError,  # urllib3 reading a response that stop() closed under it
            ) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._response = None
            self._stop.wait(0.5)

    def _read(self, resp: requests.Response) -> None:
        parser = SSEParser()
        while not self._stop.is_set():
            chunk: bytes = resp.raw.read1(65536, decode_content=True)
            if not chunk:
                return
            for event in parser.feed(chunk):
                if event.event != "swarm":
                    continue
                swarm = orjson.loads(event.data)
                with self._lock:
                    self.received.append((time.time(), swarm))
                    self._last_id = event.id or self._last_id
