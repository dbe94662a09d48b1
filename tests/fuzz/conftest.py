"""Real ingest and fanout servers for the fuzz tests, and the size of a fuzz run.

Each module gets its own gunicorn (as deployed: ingest on gthread, fanout on gevent) on the
session's Kafka broker and Redis. ``EMOSTREAM_FUZZ_EXAMPLES`` sets how many examples Hypothesis
tries per operation; the default keeps ``make test`` short, a larger number makes a campaign.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from emostream.localstack.process import ProcessDir
from tests.ingest.conftest import Server, serve
from tests.support.servers import start_role
from tests.support.services import ROOT

#: Examples per operation (and per property); small by default, raised for a campaign.
FUZZ_EXAMPLES = int(os.environ.get("EMOSTREAM_FUZZ_EXAMPLES", "25"))
#: The longest a fuzz request may take; generous, as the machine's cores are shared.
REQUEST_TIMEOUT_S = 10.0
FANOUT_OPENAPI = ROOT / "src" / "emostream" / "fanout" / "openapi.json"


@pytest.fixture(scope="module")
def ingest_server(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One ingest server (one worker of four threads) with its own rate-limit keys."""
    env = {
        **service_env,
        "EMOSTREAM_WORKERS": "1",
        "EMOSTREAM_THREADS": "4",
        "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"fuzz-{uuid.uuid4().hex[:8]}:",
    }
    log: Path = tmp_path_factory.mktemp("fuzz-ingest") / "gunicorn.log"
    with serve(env, log) as running:
        yield running


@pytest.fixture(scope="module")
def fanout_url(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[str]:
    """Base URL of one fanout server (gevent worker) reading the session's swarms topic.

    One-second heartbeats, so a feed the fuzzer has left is noticed and closed quickly.
    """
    env = {**service_env, "EMOSTREAM_HEARTBEAT_S": "1"}
    yield start_role(processes, "fanout-fuzz", "fanout", "gevent", env).url
    processes.stop("fanout-fuzz", grace_s=10)
