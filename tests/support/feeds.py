"""A stream's swarms read in the background through the SDK, as a viewer would see them.

The end-to-end tests on the local stack (tests/test_end_to_end.py) and on a cluster
(k8s-tests/e2e/test_pipeline.py) post reactions and wait until the feed shows exactly those
counts; both read the feed with this collector.
"""

import threading
from collections.abc import Mapping
from typing import Any

from emostream.client import EmostreamClient


class SwarmCollector:
    """Reads a stream's SSE feed in the background, keeping each window's latest swarm.

    Used as a context manager: reading starts on entry and stops with the first swarm after the
    block ends. A feed that fails makes :meth:`totals` fail with its error.
    """

    def __init__(self, client: EmostreamClient, stream: str, **options: Any) -> None:
        """Read ``stream`` with ``client.swarms(stream, **options)`` (``timeout``, ...)."""
        self.windows: dict[str, Mapping[str, Any]] = {}
        self.ids: list[str] = []
        self.error: Exception | None = None
        self._client = client
        self._stream = stream
        self._options = options
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for swarm in self._client.swarms(self._stream, **self._options):
                self.ids.append(swarm["id"])
                self.windows[swarm["window_start"]] = swarm
                if self._done.is_set():
                    return
        except Exception as exc:  # noqa: BLE001 - handed to the test through totals()
            self.error = exc

    def totals(self) -> dict[str, int]:
        """Per emoji, the sum over windows of each window's latest (running or final) count."""
        assert self.error is None, f"the feed failed: {self.error!r}"
        out: dict[str, int] = {}
        for swarm in list(self.windows.values()):
            for emoji, n in swarm["counts"].items():
                out[emoji] = out.get(emoji, 0) + n
        return out

    def __enter__(self) -> "SwarmCollector":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
