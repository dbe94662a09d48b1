"""The per-user rate limit across replicas: two real ingest servers, one user hammering both.

Each process decides from its own copy of the buckets and reconciles through Redis every
``rate_limit_sync_s``; docs/ingest.md bounds what a user spread over P processes gets beyond
the rate: (P - 1) x (burst + rate x sync interval), once. This test holds the servers to it.
"""

import threading
import time
import uuid

import pytest
import requests

from emostream.localstack.process import ProcessDir
from tests.support.servers import start_role

pytestmark = pytest.mark.integration

RATE = 20
BURST = 20
SYNC_S = 0.05
WORKERS = 2
SENDERS = 4
SECONDS = 3.0


def test_a_user_spread_over_two_replicas_gets_the_rate_within_the_tolerance(
    processes: ProcessDir, service_env: dict[str, str]
) -> None:
    """A user sending as fast as it can to two servers of two workers each gets no more than the
    rate plus a burst plus the documented tolerance, and the limit is not stricter than the rate."""
    env = {
        **service_env,
        "EMOSTREAM_RATE_LIMIT_PER_S": str(RATE),
        "EMOSTREAM_RATE_LIMIT_BURST": str(BURST),
        "EMOSTREAM_RATE_LIMIT_SYNC_S": str(SYNC_S),
        "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:ratelimit:",
        "EMOSTREAM_MAX_BATCH": "10",
        "EMOSTREAM_WORKERS": str(WORKERS),
    }
    servers = [
        start_role(processes, f"replica-{i}", "ingest", "gthread", env).url for i in range(2)
    ]
    stream = f"replicas-{uuid.uuid4().hex[:8]}"
    answers: dict[int, int] = {}
    lock = threading.Lock()
    go = threading.Event()

    def send(n: int) -> None:
        session = requests.Session()
        url = f"{servers[n % 2]}/v1/streams/{stream}/reactions"
        body = {"user_id": "hammer", "emoji": "🔥"}
        go.wait()
        while time.monotonic() < deadline:
            status = session.post(url, json=body, timeout=10).status_code
            with lock:
                answers[status] = answers.get(status, 0) + 1

    senders = [threading.Thread(target=send, args=(n,)) for n in range(SENDERS)]
    for sender in senders:
        sender.start()
    started = time.monotonic()
    deadline = started + SECONDS
    go.set()
    for sender in senders:
        sender.join()
    elapsed = time.monotonic() - started

    assert set(answers) <= {202, 429}, answers
    processes_ = 2 * WORKERS
    tolerance = (processes_ - 1) * (BURST + RATE * SYNC_S)
    allowed = answers.get(202, 0)
    # Far more was asked than the limit allows, so the limit decided the outcome.
    assert answers.get(429, 0) > 5 * allowed, answers
    assert allowed <= BURST + RATE * elapsed + tolerance, (answers, elapsed)
    assert allowed >= BURST + RATE * (elapsed - 1), (answers, elapsed)
