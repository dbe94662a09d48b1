"""The TypeScript SDK against the real pipeline: ingest, Kafka, Spark, fanout over sockets.

The servers are started here as the other integration tests start them (``start_role``, the
session's broker, Redis and aggregation), with sender and viewer tokens required and a heartbeat
every second; clients/js/integration/stack.test.ts then runs in node against them, on both
transports (SSE with fetch, WebSocket with Node 20's WebSocket behind --experimental-websocket).
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql.streaming.query import StreamingQuery

from emostream.common.tokens import mint
from emostream.localstack.process import ProcessDir
from tests.client_js.conftest import assert_ran, run_node
from tests.support.servers import start_role

pytestmark = pytest.mark.integration

TOKEN_SECRET = "sdk-stack-test-secret-of-32-bytes!"  # noqa: S105 - a test secret


@dataclass(frozen=True)
class Stack:
    """Where the SDK finds the servers."""

    ingest_url: str
    fanout_url: str


@pytest.fixture(scope="module")
def stack(
    aggregation: StreamingQuery, processes: ProcessDir, service_env: dict[str, str]
) -> Iterator[Stack]:
    """Ingest needing sender tokens and fanout needing viewer tokens, on the session's pipeline."""
    env = {**service_env, "EMOSTREAM_TOKEN_SECRET": TOKEN_SECRET}
    ingest_env = {**env, "EMOSTREAM_SENDER_TOKENS": "required"}
    fanout_env = {**env, "EMOSTREAM_HEARTBEAT_S": "1"}
    ingest = start_role(processes, "sdk-ingest", "ingest", "gthread", ingest_env, timeout_s=120)
    fanout = start_role(processes, "sdk-fanout", "fanout", "gevent", fanout_env, timeout_s=120)
    yield Stack(ingest.url, fanout.url)
    processes.stop("sdk-fanout", grace_s=15)
    processes.stop("sdk-ingest", grace_s=15)


def test_sdk_counts_and_resumes_on_both_transports(js_sdk: Path, stack: Stack) -> None:
    """Known bursts arrive as exact totals on SSE and WebSocket, and after a cut and a stall the
    feed resumes with no swarm missing or repeated; refusals arrive as typed problem errors."""
    run = uuid.uuid4().hex[:10]
    streams = {"SSE": f"sdk-{run}-sse", "WS": f"sdk-{run}-ws"}
    scope = list(streams.values())
    env = {
        "EMOSTREAM_TEST_INGEST_URL": stack.ingest_url,
        "EMOSTREAM_TEST_FANOUT_URL": stack.fanout_url,
        # No subject: a trusted backend's token, so each reaction counts as its own user_id.
        "EMOSTREAM_TEST_SENDER_TOKEN": mint(TOKEN_SECRET, send=scope, ttl_s=3600),
        "EMOSTREAM_TEST_VIEWER_TOKEN": mint(TOKEN_SECRET, view=scope, ttl_s=3600),
        "EMOSTREAM_TEST_SSE_STREAM": streams["SSE"],
        "EMOSTREAM_TEST_WS_STREAM": streams["WS"],
        "NODE_OPTIONS": "--experimental-websocket",
    }
    args = ["node_modules/vitest/vitest.mjs", "run", "--config", "vitest.stack.config.ts"]
    result = run_node(args, env=env, timeout_s=480)
    assert_ran(result, "the SDK's integration suite")
    assert "3 passed" in result.stdout, result.stdout
