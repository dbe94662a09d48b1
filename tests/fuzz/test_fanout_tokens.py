"""Viewer tokens on a real fanout that requires them: refusals are problem documents, never 5xx.

The server gets a secret, so every feed needs ``?token=<expiry>.<signature>`` for its stream.
"""

import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostream.fanout.tokens import mint_token
from emostream.localstack.process import ProcessDir
from tests.fuzz._checks import problem_errors
from tests.fuzz.conftest import FUZZ_EXAMPLES, REQUEST_TIMEOUT_S
from tests.support.servers import start_role

pytestmark = pytest.mark.integration

SECRET = uuid.uuid4().hex
REASONS = {"missing", "malformed", "expired", "signature", "too_long"}
#: Any text: non-ASCII digits and controls included (requests percent-encodes them).
QUERY_TEXT = st.text(max_size=80)


@pytest.fixture(scope="module")
def guarded_url(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[str]:
    """A fanout server whose feeds need a viewer token."""
    env = {**service_env, "EMOSTREAM_HEARTBEAT_S": "1", "EMOSTREAM_VIEWER_TOKEN_SECRET": SECRET}
    yield start_role(processes, "fanout-fuzz-tokens", "fanout", "gevent", env)
    processes.stop("fanout-fuzz-tokens", grace_s=10)


def open_feed(url: str, stream_id: str, token: str | None) -> tuple[int, str, bytes]:
    """Status, media type and first chunk of the SSE feed; the connection is dropped after."""
    params = {} if token is None else {"token": token}
    with requests.get(
        f"{url}/v1/streams/{stream_id}/events",
        params=params,
        stream=True,
        timeout=REQUEST_TIMEOUT_S,
    ) as resp:
        first = resp.raw.read1(65536) if resp.ok else resp.raw.read(65536)
        return resp.status_code, resp.headers.get("Content-Type", ""), first


def _refusal(status: int, content_type: str, body: bytes) -> dict[str, object]:
    assert not problem_errors(status, content_type, body), body
    assert status in (401, 403), body
    document = orjson.loads(body)
    assert document["type"] == "urn:emostream:problem:invalid-token"
    assert document["reason"] in REASONS
    return dict(document)


def test_a_minted_token_opens_its_streams_feed(guarded_url: str) -> None:
    """A token signed for the stream and not expired opens the feed."""
    stream = f"tok-{uuid.uuid4().hex[:8]}"
    token = mint_token(SECRET.encode(), stream, ttl_s=60)
    status, content_type, first = open_feed(guarded_url, stream, token)
    assert status == 200
    assert content_type.startswith("text/event-stream")
    assert first.startswith(b"retry: ")


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (None, 401, "missing"),
        ("", 401, "missing"),
        ("no-dot", 401, "malformed"),
        ("12x.abc", 401, "malformed"),
    ],
)
def test_missing_and_malformed_tokens_are_401(
    guarded_url: str, token: str | None, status: int, reason: str
) -> None:
    """No token, or one not shaped <expiry>.<signature>, is 401 naming the reason."""
    code, content_type, body = open_feed(guarded_url, "tok-shape", token)
    assert code == status
    assert _refusal(code, content_type, body)["reason"] == reason


def test_tokens_of_another_stream_expired_or_too_long_are_refused(guarded_url: str) -> None:
    """A token moves to no other stream, stops at its expiry, and may not reach too far ahead."""
    key = SECRET.encode()
    now = time.time()
    cases = [
        (mint_token(key, "other", ttl_s=60), 403, "signature"),
        (mint_token(key, "tok-mine", ttl_s=60, now=now - 120), 401, "expired"),
        (mint_token(key, "tok-mine", ttl_s=10 * 86_400), 403, "too_long"),
    ]
    for token, status, reason in cases:
        code, content_type, body = open_feed(guarded_url, "tok-mine", token)
        assert (code, _refusal(code, content_type, body)["reason"]) == (status, reason), token


def test_any_printable_token_is_refused_with_a_problem(guarded_url: str) -> None:
    """Arbitrary printable tokens, shaped like real ones or not, are 401/403 problems."""
    shaped = st.builds("{}.{}".format, st.text("0123456789", min_size=1, max_size=14), QUERY_TEXT)

    @settings(
        max_examples=FUZZ_EXAMPLES * 2,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(token=st.one_of(QUERY_TEXT, shaped))
    def is_refused(token: str) -> None:
        _refusal(*open_feed(guarded_url, "tok-fuzz", token))

    is_refused()
