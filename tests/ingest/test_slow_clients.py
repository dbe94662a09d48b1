"""Slow clients do not lock ingest out: with 200 stalled connections held open, ordinary POSTs
are still answered promptly.

Ingest runs as the local stack runs it: gunicorn gthread behind nginx, which reads each request
whole before a thread sees it. (gunicorn alone answered none of three probes in 20 s with 64
such connections: docs/ingest.md, "Slow clients".) The bound on each answer is generous, as the
machine is shared; a locked-out server would not answer at all.
"""

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from emostream.localstack.process import ProcessDir
from tests.support.servers import start_fronted_ingest
from tests.support.slowclients import SlowClients, probe

pytestmark = pytest.mark.integration

SLOW = 200
PROBES = 10
BOUND_S = 5.0


@pytest.fixture(scope="module")
def ingest(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Ingest behind nginx as the local stack starts them (two workers of eight threads)."""
    root: Path = tmp_path_factory.mktemp("slow-ingest")
    processes = ProcessDir(root / "run", root / "logs")
    env = {**service_env, "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:"}
    try:
        yield start_fronted_ingest(processes, "slow", env)
    finally:
        for name in processes.names():
            processes.stop(name, grace_s=30)


def _post(url: str) -> Callable[[requests.Session, float], int]:
    """One ordinary single-reaction POST to ``url``, from a user of its own."""

    def send(session: requests.Session, timeout_s: float) -> int:
        reaction = {"user_id": f"probe-{uuid.uuid4().hex[:8]}", "emoji": "👍"}
        return session.post(url, json=reaction, timeout=timeout_s).status_code

    return send


@pytest.mark.parametrize(
    "kinds", [["body"], ["headers"], ["trickle"], ["body", "headers", "trickle"]]
)
def test_ordinary_posts_answered_while_slow_clients_hold_connections(
    ingest: str, kinds: list[str]
) -> None:
    """Every probe POST gets a 202 within the bound while 200 connections of each kind stall."""
    address = urlsplit(ingest)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    with ExitStack() as held:
        slow = [
            held.enter_context(SlowClients(host, port, kind, "/v1/streams/slow/reactions", SLOW))
            for kind in kinds
        ]
        probes = probe(
            _post(f"{ingest}/v1/streams/probe/reactions"),
            count=PROBES,
            timeout_s=BOUND_S,
            gap_s=0.1,
        )
        still_open = [s.open for s in slow]
    assert probes.statuses() == [202] * PROBES, probes.summary()
    assert still_open == [SLOW] * len(kinds), "the slow connections were not all held"
