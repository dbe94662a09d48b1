"""Slow clients do not lock fanout out: with 200 stalled connections held open, /healthz answers
and SSE feeds open promptly.

fanout runs under gunicorn's gevent worker, as the local stack runs it: a stalled connection
costs a greenlet, and one whose headers are not complete within the keep-alive timeout is
dropped (the slow clients then open another, as an attacker would). The bound on each answer
is generous, as the machine is shared; a locked-out server would not answer at all.
"""

from collections.abc import Callable
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests

from emostream.localstack.process import ProcessDir
from tests.fanout.live import start_fanout
from tests.support.slowclients import SlowClients, probe

pytestmark = pytest.mark.integration

SLOW = 200
PROBES = 10
BOUND_S = 5.0


@pytest.fixture(scope="module")
def fanout(processes: ProcessDir, service_env: dict[str, str]) -> str:
    """One fanout server (two workers) on the session's broker and Redis."""
    return start_fanout(processes, "fanout-slow-clients", service_env).url


def _healthz(url: str) -> Callable[[requests.Session, float], int]:
    """``GET /healthz``."""

    def send(session: requests.Session, timeout_s: float) -> int:
        return session.get(f"{url}/healthz", timeout=timeout_s).status_code

    return send


def _open_feed(url: str) -> Callable[[requests.Session, float], int]:
    """Open an SSE feed and read up to its retry hint (the viewer is registered by then)."""

    def send(session: requests.Session, timeout_s: float) -> int:
        with session.get(
            f"{url}/v1/streams/slow-probe/events", stream=True, timeout=timeout_s
        ) as resp:
            first = resp.raw.read1(4096)
            return resp.status_code if b"retry:" in first else -1

    return send


def _slow_path(kind: str) -> str:
    return "/v1/streams/slow/ws" if kind == "ws" else "/v1/streams/slow/events"


@pytest.mark.parametrize("kinds", [["headers"], ["trickle"], ["ws"], ["headers", "trickle", "ws"]])
def test_healthz_and_feeds_answered_while_slow_clients_hold_connections(
    fanout: str, kinds: list[str]
) -> None:
    """Every /healthz probe is 200 and every feed opens within the bound while 200 connections
    of each kind (partial headers, a request trickled a byte at a time, a WebSocket upgrade
    without its end) stall."""
    address = urlsplit(fanout)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    with ExitStack() as held:
        for kind in kinds:
            held.enter_context(SlowClients(host, port, kind, _slow_path(kind), SLOW))
        health = probe(_healthz(fanout), count=PROBES, timeout_s=BOUND_S, gap_s=0.1)
        feeds = probe(_open_feed(fanout), count=PROBES, timeout_s=BOUND_S, gap_s=0.1)
    assert health.statuses() == [200] * PROBES, health.summary()
    assert feeds.statuses() == [200] * PROBES, feeds.summary()
