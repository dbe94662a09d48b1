"""Who may send, and to which streams, against two real ingest servers, Kafka and Redis.

Two servers share one Redis, as two replicas would: sender tokens are required, the registry
is closed, and the per-user rate limit is small, so a sender's identity and its limit are seen
to hold across processes.
"""

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from emostream.client import EmostreamClient, RequestRejectedError
from emostream.common.tokens import mint
from tests.conftest import Topics
from tests.ingest.conftest import Server, metric, read_topic, serve

pytestmark = pytest.mark.integration

SECRET = "a-secret-the-platform-and-ingest-share"  # noqa: S105 - a test secret
ADMIN = "the-admin-token-of-this-deployment"
BURST = 10


@pytest.fixture(scope="module")
def servers(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """Two ingest servers with required sender tokens, a closed registry and a burst of 10."""
    env = {
        **service_env,
        "EMOSTREAM_WORKERS": "1",
        "EMOSTREAM_THREADS": "2",
        "EMOSTREAM_SENDER_TOKENS": "required",
        "EMOSTREAM_TOKEN_SECRET": SECRET,
        "EMOSTREAM_ADMIN_TOKEN": ADMIN,
        "EMOSTREAM_REGISTRY_MODE": "closed",
        "EMOSTREAM_REGISTRY_REFRESH_S": "0.2",
        "EMOSTREAM_MAX_BATCH": str(BURST),
        "EMOSTREAM_RATE_LIMIT_PER_S": "0.2",
        "EMOSTREAM_RATE_LIMIT_BURST": str(BURST),
        "EMOSTREAM_RATE_LIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}:",
    }
    logs = tmp_path_factory.mktemp("ingest-senders")
    with serve(env, logs / "one.log") as one, serve(env, logs / "two.log") as two:
        yield one, two


def _open(server: Server, stream: str) -> None:
    resp = requests.put(
        f"{server.url}/v1/streams/{stream}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    )
    assert resp.status_code in (200, 201), resp.text


def _post(
    server: Server, stream: str, token: str | None, body: object, path: str = ""
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{server.url}{path or f'/v1/streams/{stream}/reactions'}"
    return requests.post(url, json=body, headers=headers, timeout=10)


def _problem(resp: requests.Response, status: int) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert isinstance(body, dict)
    return body


def test_tokens_are_checked_and_bad_ones_refused(
    servers: tuple[Server, Server], stream: str
) -> None:
    """Missing, forged and expired tokens are 401 with a Bearer challenge; a token of another
    stream, or a viewer's token, is 403; each is counted."""
    one, _ = servers
    _open(one, stream)
    reaction = {"emoji": "🔥"}
    missing = _problem(_post(one, stream, None, reaction), 401)
    assert missing["reason"] == "missing"
    forged = mint("not-the-secret-of-this-deployment", subject="u", send=[stream], ttl_s=60)
    assert _problem(_post(one, stream, forged, reaction), 401)["reason"] == "signature"
    expired = mint(SECRET, subject="u", send=[stream], ttl_s=5, now=time.time() - 100)
    resp = _post(one, stream, expired, reaction)
    assert _problem(resp, 401)["reason"] == "expired"
    assert resp.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    other = mint(SECRET, subject="u", send=["another-stream"], ttl_s=60)
    assert _problem(_post(one, stream, other, reaction), 403)["reason"] == "scope"
    viewer = mint(SECRET, view=[stream], ttl_s=60)
    assert _problem(_post(one, stream, viewer, reaction), 403)["reason"] == "scope"
    # send_emoji names its stream in the body: the scope is checked against that one.
    legacy = {"emoji_type": "🔥", "timestamp": int(time.time() * 1000), "stream_id": stream}
    scoped = mint(SECRET, subject="u", send=[stream], ttl_s=60)
    assert _post(one, stream, scoped, legacy, "/send_emoji").status_code == 200
    elsewhere = {**legacy, "stream_id": "another-stream"}
    assert _problem(_post(one, stream, scoped, elsewhere, "/send_emoji"), 403)["reason"] == "scope"
    assert metric(one, 'emostream_ingest_token_rejections_total{reason="scope"}') >= 3


def test_the_sender_is_the_tokens_subject(
    servers: tuple[Server, Server], kafka_bootstrap: str, topics: Topics, stream: str
) -> None:
    """Reactions are the token's user whatever the body says: left out, it is filled in;
    another user id is 422; every accepted reaction is in Kafka as the subject's."""
    one, _ = servers
    _open(one, stream)
    token = mint(SECRET, subject="alice", send=[stream], ttl_s=60)
    ok = _post(one, stream, token, [{"emoji": "🔥"}, {"user_id": "alice", "emoji": "😂"}])
    assert ok.status_code == 202, ok.text
    impostor = _problem(_post(one, stream, token, {"user_id": "bob", "emoji": "🔥"}), 422)
    assert impostor["field"] == "user_id"
    found = read_topic(kafka_bootstrap, topics.reactions, stream, expected=2)
    assert sorted((r.key, r.reaction.user_id) for r in found) == [
        (b"alice", "alice"),
        (b"alice", "alice"),
    ]


def test_the_rate_limit_holds_per_token_identity_across_servers(
    servers: tuple[Server, Server], stream: str
) -> None:
    """One subject's burst is shared by both servers, whatever user ids the bodies invent, once
    their rounds with Redis have run (docs/ingest.md: the tolerance); a second subject has its
    own."""
    one, two = servers
    _open(one, stream)
    mallory = mint(SECRET, subject="mallory", send=[stream], ttl_s=60)
    half = BURST // 2
    assert _post(one, stream, mallory, [{"emoji": "🔥"}] * half).status_code == 202
    assert _post(two, stream, mallory, [{"emoji": "🔥"}] * half).status_code == 202
    for server in (two, one):
        extra, refused = _until_refused(server, stream, mallory)
        assert refused["user_id"] == "mallory"
        # At most the tolerance of two processes: one burst (the rate adds nothing here).
        assert extra <= BURST
    carol = mint(SECRET, subject="carol", send=[stream], ttl_s=60)
    assert _post(two, stream, carol, {"emoji": "🔥"}).status_code == 202


def _until_refused(server: Server, stream: str, token: str) -> tuple[int, dict[str, object]]:
    """Single reactions until ``server`` answers 429: how many it took first, and the problem."""
    extra = 0
    deadline = time.monotonic() + 5
    while (reply := _post(server, stream, token, {"emoji": "🔥"})).status_code == 202:
        extra += 1
        assert time.monotonic() < deadline, f"{server.url} never refused"
        time.sleep(0.1)
    return extra, _problem(reply, 429)


def test_the_closed_registry_refuses_streams_that_are_not_open(
    servers: tuple[Server, Server], stream: str
) -> None:
    """Not opened: 404; opened on one server: taken by both within a refresh; closed: 404."""
    one, two = servers
    anywhere = mint(SECRET, subject="dave", send=["*"], ttl_s=60)
    body = _problem(_post(two, stream, anywhere, {"emoji": "🔥"}), 404)
    assert body["type"] == "urn:emostream:problem:stream-not-live"
    _open(one, stream)
    deadline = time.monotonic() + 5
    while _post(two, stream, anywhere, {"emoji": "🔥"}).status_code != 202:
        assert time.monotonic() < deadline, "the second server never saw the stream opened"
        time.sleep(0.1)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert requests.delete(f"{two.url}/v1/streams/{stream}", headers=admin, timeout=5).ok
    assert (
        requests.delete(f"{one.url}/v1/streams/{stream}", headers=admin, timeout=5).status_code
        == 404
    )
    deadline = time.monotonic() + 5
    while _post(one, stream, anywhere, {"emoji": "🔥"}).status_code != 404:
        assert time.monotonic() < deadline, "the first server never saw the stream closed"
        time.sleep(0.1)


def test_the_admin_api_needs_the_admin_token(servers: tuple[Server, Server], stream: str) -> None:
    """No token or a wrong one: 401 with a Bearer challenge; a bad stream id: 422."""
    one, _ = servers
    url = f"{one.url}/v1/streams/{stream}"
    assert (
        _problem(requests.put(url, timeout=5), 401)["type"] == "urn:emostream:problem:invalid-token"
    )
    wrong = requests.put(url, headers={"Authorization": "Bearer guess"}, timeout=5)
    _problem(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    sender = mint(SECRET, subject="u", send=[stream], ttl_s=60)
    _problem(requests.put(url, headers={"Authorization": f"Bearer {sender}"}, timeout=5), 401)
    bad = requests.put(
        f"{one.url}/v1/streams/not%20valid", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=5
    )
    assert _problem(bad, 422)["field"] == "stream_id"


def test_the_python_client_sends_with_a_token_and_opens_streams(
    servers: tuple[Server, Server], kafka_bootstrap: str, topics: Topics, stream: str
) -> None:
    """The SDK opens and closes streams with the admin token and sends as its token's user."""
    one, _ = servers
    admin = EmostreamClient(one.url, admin_token=ADMIN)
    assert admin.open_stream(stream) is True
    assert admin.open_stream(stream) is False
    token = mint(SECRET, subject="erin", send=[stream], ttl_s=60)
    with EmostreamClient(one.url, token=token) as client:
        assert client.send(stream, [{"emoji": "🔥"}, {"emoji": "👏"}]) == 2
        with pytest.raises(RequestRejectedError) as refused:
            client.send("another-stream", {"emoji": "🔥"})
    assert refused.value.status == 403
    found = read_topic(kafka_bootstrap, topics.reactions, stream, expected=2)
    assert {r.reaction.user_id for r in found} == {"erin"}
    assert admin.close_stream(stream) is True
    assert admin.close_stream(stream) is False
    with pytest.raises(RequestRejectedError) as unauthorised:
        EmostreamClient(one.url, admin_token=ADMIN + "-guessed").open_stream(stream)
    assert unauthorised.value.status == 401
