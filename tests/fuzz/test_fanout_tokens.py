"""Viewer tokens on a real fanout that requires them: refusals are problem documents, never 5xx.

The server has a token secret and, as in the transition, the earlier viewer-token secret, so a
feed opens with a JWT whose view claim covers the stream or an ``<expiry>.<signature>`` of it.
"""

import time
import uuid
from collections.abc import Iterator

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emostream.common.tokens import mint, mint_legacy_viewer_token
from emostream.localstack.process import ProcessDir
from tests.fuzz._checks import problem_errors
from tests.fuzz.conftest import FUZZ_EXAMPLES, REQUEST_TIMEOUT_S
from tests.support.servers import start_role

pytestmark = pytest.mark.integration

SECRET = uuid.uuid4().hex
LEGACY_SECRET = uuid.uuid4().hex
REASONS = {"missing", "malformed", "expired", "signature", "too_long", "scope"}
#: Any text: non-ASCII digits and controls included (requests percent-encodes them).
QUERY_TEXT = st.text(max_size=80)


@pytest.fixture(scope="module")
def guarded_url(processes: ProcessDir, service_env: dict[str, str]) -> Iterator[str]:
    """A fanout server whose feeds need a viewer token."""
    env = {
        **service_env,
        "EMOSTREAM_HEARTBEAT_S": "1",
        "EMOSTREAM_TOKEN_SECRET": SECRET,
        "EMOSTREAM_VIEWER_TOKEN_SECRET": LEGACY_SECRET,
    }
    yield start_role(processes, "fanout-fuzz-tokens", "fanout", "gevent", env).url
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
    """A token signed for the stream and not expired opens the feed, in either form."""
    stream = f"tok-{uuid.uuid4().hex[:8]}"
    for token in (
        mint(SECRET, view=[stream], ttl_s=60),
        mint_legacy_viewer_token(LEGACY_SECRET.encode(), stream, ttl_s=60),
    ):
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
    """No token, or one shaped neither as a JWT nor as <expiry>.<signature>, is 401."""
    code, content_type, body = open_feed(guarded_url, "tok-shape", token)
    assert code == status
    assert _refusal(code, content_type, body)["reason"] == reason


def test_tokens_of_another_stream_expired_or_too_long_are_refused(guarded_url: str) -> None:
    """A token moves to no other stream, stops at its expiry, and may not reach too far ahead."""
    legacy = LEGACY_SECRET.encode()
    now = time.time()
    cases = [
        (mint(SECRET, view=["other"], ttl_s=60), 403, "scope"),
        (mint(SECRET, view=["tok-mine"], ttl_s=60, now=now - 120), 401, "expired"),
        (mint(SECRET, view=["tok-mine"], ttl_s=10 * 86_400), 403, "too_long"),
        (mint(uuid.uuid4().hex, view=["tok-mine"], ttl_s=60), 401, "signature"),
        (mint_legacy_viewer_token(legacy, "other", ttl_s=60), 403, "signature"),
        (mint_legacy_viewer_token(legacy, "tok-mine", ttl_s=60, now=now - 120), 401, "expired"),
        (mint_legacy_viewer_token(legacy, "tok-mine", ttl_s=10 * 86_400), 403, "too_long"),
    ]
    for token, status, reason in cases:
        code, content_type, body = open_feed(guarded_url, "tok-mine", token)
        assert (code, _refusal(code, content_type, body)["reason"]) == (status, reason), token


def test_any_printable_token_is_refused_with_a_problem(guarded_url: str) -> None:
    """Arbitrary printable tokens, shaped like real ones or not, are 401/403 problems."""
    shaped = st.builds("{}.{}".format, st.text("0123456789", min_size=1, max_size=14), QUERY_TEXT)
    jwt_shaped = st.builds("{}.{}.{}".format, QUERY_TEXT, QUERY_TEXT, QUERY_TEXT)

    @settings(
        max_examples=FUZZ_EXAMPLES * 2,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(token=st.one_of(QUERY_TEXT, shaped, jwt_shaped))
    def is_refused(token: str) -> None:
        _refusal(*open_feed(guarded_url, "tok-fuzz", token))

    is_refused()
