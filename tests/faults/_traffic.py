"""Senders posting reactions through the real HTTP API, remembering exactly what got a 2xx.

Each sender thread posts small batches of unique user ids to one stream at a steady pace. Only a
2xx counts as accepted; a 429 or 503 (the server said it took nothing) and a refused connection
(the request never left) are retried with the same batch after a short pause. Any other network
error, or a 502 from the proxy in front of ingest (it passed the request on and gunicorn closed
the connection without an answer, as a stopping worker may), leaves it unknown whether the
server took the batch, so it is counted as *uncertain*, not accepted, and the next batch is a
fresh one: a count that differs by exactly such a batch points at the transport, not at the
pipeline.
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
import urllib3

#: Three emojis, so a count that lands under the wrong emoji shows up too.
EMOJIS = ("👏", "😂", "❤️")


@dataclass
class Outcome:
    """One request: when it was sent and answered, and what happened."""

    sent: float
    answered: float
    status: int  # HTTP status; 0 for a network error


@dataclass
class Traffic:
    """Sender threads, one per stream, posting ``rate`` events per second in total."""

    ingest_url: str
    streams: list[str]
    rate: float = 300.0
    batch: int = 10
    accepted: Counter[tuple[str, str]] = field(default_factory=Counter)
    outcomes: list[Outcome] = field(default_factory=list)
    uncertain: int = 0
    unexpected: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Traffic":
        """Start one sender thread per stream."""
        for n, stream in enumerate(self.streams):
            t = threading.Thread(target=self._run, args=(n, stream), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop sending and wait for the threads (a request in flight gets its answer)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    @property
    def total_accepted(self) -> int:
        """Events that got a 2xx so far."""
        with self._lock:
            return sum(self.accepted.values())

    def count(self, status: int) -> int:
        """Requests answered ``status`` so far (0: network errors)."""
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == status)

    def accepted_since(self, t: float) -> int:
        """Requests sent after ``t`` that got a 2xx."""
        with self._lock:
            return sum(1 for o in self.outcomes if o.sent > t and 200 <= o.status < 300)

    def recovery_s(self, fault_at: float) -> float:
        """Seconds from ``fault_at`` to the first 2xx after the last refusal that followed it.

        0 when no request after the fault was refused: the fault never reached the senders.
        """
        with self._lock:
            after = [o for o in self.outcomes if o.answered >= fault_at]
        refused = [o.answered for o in after if not 200 <= o.status < 300]
        if not refused:
            return 0.0
        last_refusal = max(refused)
        firsts = [o.answered for o in after if 200 <= o.status < 300 and o.sent >= last_refusal]
        return (min(firsts) - fault_at) if firsts else float("nan")

    def _run(self, n: int, stream: str) -> None:
        url = f"{self.ingest_url}/v1/streams/{stream}/reactions"
        pause = self.batch * len(self.streams) / self.rate
        session = requests.Session()
        i = 0
        body: list[dict[str, str]] = []
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not body:
                emoji = EMOJIS[i % len(EMOJIS)]
                body = [{"user_id": f"{stream}-{i}-{j}", "emoji": emoji} for j in range(self.batch)]
                i += 1
            next_at = max(next_at + pause, time.monotonic() - pause)
            sent = time.time()
            status = 0
            try:
                resp = session.post(url, json=body, timeout=(5, 120))
                status = resp.status_code
            except requests.ConnectionError as exc:
                session = requests.Session()
                if not _never_sent(exc):
                    with self._lock:
                        self.uncertain += 1
                    body = []
            except requests.RequestException:
                session = requests.Session()
                with self._lock:
                    self.uncertain += 1
                body = []
            with self._lock:
                self.outcomes.append(Outcome(sent, time.time(), status))
                if status == 502:
                    self.uncertain += 1
                    body = []
                elif 200 <= status < 300:
                    self.accepted.update((stream, r["emoji"]) for r in body)
                    body = []
                elif status not in (0, 429, 503):
                    self.unexpected.append(f"{status} {resp.text[:200]}")
                    body = []
            time.sleep(max(0.0, next_at - time.monotonic()))


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the connection failed before the request left (refused or connect timeout)."""
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )
