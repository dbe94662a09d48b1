"""Feeds that need viewer tokens (JWTs, and the earlier form in transition), `emostream token`,
and feeds of the closed stream registry."""

import uuid

import pytest
from flask.testing import FlaskClient

from emostream.cli import main
from emostream.common.registry import StreamRegistry
from emostream.common.tokens import TokenKeys, TokenVerifier, mint, mint_legacy_viewer_token
from emostream.fanout.app import create_app, runtime_of
from emostream.fanout.settings import FanoutSettings
from tests.fanout.swarms import make_swarm

SECRET = "a-secret-the-platform-and-fanout-share"  # noqa: S105 - a test secret
LEGACY = "the-secret-of-earlier-viewer-tokens"
OFFLINE = {"snapshot_from_redis": False, "presence_enabled": False}


def client(**settings: object) -> FlaskClient:
    """An app on ``settings`` without Kafka."""
    return create_app(FanoutSettings(**OFFLINE, **settings), connect_upstream=False).test_client()


def opens(c: FlaskClient, url: str, **kwargs: object) -> int:
    """The status of a feed request (a 200 feed is closed again at once)."""
    resp = c.get(url, buffered=False, **kwargs)
    resp.close()
    return resp.status_code


def test_feeds_need_a_jwt_that_covers_the_stream() -> None:
    """With a token key, feeds need ?token= or a Bearer header whose view claim covers them."""
    c = client(token_secret=SECRET)
    final = mint(SECRET, view=["final"], ttl_s=60)
    assert opens(c, f"/v1/streams/final/events?token={final}") == 200
    assert opens(c, "/v1/streams/final/events", headers={"Authorization": f"Bearer {final}"}) == 200
    missing = c.get("/v1/streams/final/events")
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert missing.get_json(force=True)["reason"] == "missing"
    other = c.get(f"/v1/streams/semi/events?token={final}")
    assert other.status_code == 403
    assert other.get_json(force=True)["type"] == "urn:emostream:problem:invalid-token"
    sender_only = mint(SECRET, subject="u", send=["final"], ttl_s=60)
    assert c.get(f"/v1/streams/final/events?token={sender_only}").status_code == 403
    ws = c.get("/v1/streams/final/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert ws.status_code == 401
    text = runtime_of(c.application).metrics.exposition()[0].decode()
    assert 'emostream_fanout_token_rejections_total{reason="missing"} 2.0' in text
    assert 'emostream_fanout_token_rejections_total{reason="scope"} 2.0' in text


def test_earlier_tokens_still_open_feeds_during_the_transition() -> None:
    """With viewer_token_secret kept beside the new key, both forms open the feed."""
    c = client(token_secret=SECRET, viewer_token_secret=LEGACY)
    old = mint_legacy_viewer_token(LEGACY.encode(), "final", ttl_s=60)
    new = mint(SECRET, view=["final"], ttl_s=60)
    assert opens(c, f"/v1/streams/final/events?token={old}") == 200
    assert opens(c, f"/v1/streams/final/events?token={new}") == 200
    foreign = mint_legacy_viewer_token(LEGACY.encode(), "semi", ttl_s=60)
    assert c.get(f"/v1/streams/final/events?token={foreign}").status_code == 403
    # Only the earlier secret configured: earlier tokens work, nothing else does.
    only_old = client(viewer_token_secret=LEGACY)
    assert opens(only_old, f"/v1/streams/final/events?token={old}") == 200
    assert only_old.get(f"/v1/streams/final/events?token={new}").status_code == 401


def test_feeds_stay_open_without_a_key_or_when_turned_off() -> None:
    """No key: no token needed (a stray one is ignored); viewer_tokens=off keeps them open."""
    assert opens(client(), "/v1/streams/final/events?token=whatever") == 200
    assert opens(client(token_secret=SECRET, viewer_tokens="off"), "/v1/streams/x/events") == 200
    with pytest.raises(ValueError, match="viewer tokens need a key"):
        FanoutSettings(viewer_tokens="required")


def test_cli_mints_viewer_and_sender_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emostream token` prints JWTs the verifier accepts, for viewers or (--sender) senders."""
    monkeypatch.setenv("EMOSTREAM_TOKEN_SECRET", SECRET)
    verifier = TokenVerifier(TokenKeys(secret=SECRET))
    assert main(["token", "final", "semi", "--ttl", "120"]) == 0
    viewer = verifier.verify(capsys.readouterr().out.strip(), "view", "semi")
    assert viewer.subject is None
    assert main(["token", "final", "--sender", "u-7"]) == 0
    sender = verifier.verify(capsys.readouterr().out.strip(), "send", "final")
    assert sender.subject == "u-7"
    monkeypatch.setenv("EMOSTREAM_VIEWER_TOKEN_SECRET", LEGACY)
    assert main(["token", "final", "--legacy"]) == 0
    assert capsys.readouterr().out.strip().count(".") == 1
    monkeypatch.delenv("EMOSTREAM_TOKEN_SECRET")
    assert main(["token", "final"]) == 1


@pytest.mark.integration
def test_closed_registry_feeds_only_live_streams(redis_url: str) -> None:
    """In closed mode a feed of a stream that is not open is 404; once opened it is served."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:streams:"
    c = client(registry_mode="closed", redis_url=redis_url, registry_key_prefix=prefix)
    refused = c.get("/v1/streams/final/events")
    assert refused.status_code == 404
    assert refused.get_json(force=True)["type"] == "urn:emostream:problem:stream-not-live"
    admin = StreamRegistry(
        FanoutSettings(redis_url=redis_url, registry_key_prefix=prefix).registry_config()
    )
    admin.open("final")
    fresh = client(registry_mode="closed", redis_url=redis_url, registry_key_prefix=prefix)
    assert opens(fresh, "/v1/streams/final/events") == 200


@pytest.mark.integration
def test_streams_that_end_lose_their_replay_buffers(redis_url: str) -> None:
    """When the registry reloads, buffers of streams no longer live (and unwatched) are dropped."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:streams:"
    settings = FanoutSettings(
        **OFFLINE, registry_mode="closed", redis_url=redis_url, registry_key_prefix=prefix
    )
    app = create_app(settings, connect_upstream=False)
    runtime = runtime_of(app)
    admin = StreamRegistry(settings.registry_config())
    admin.open("kept")
    admin.open("ended")
    for stream in ("kept", "ended", "watched"):
        runtime.hub.publish(make_swarm(stream, 1))
    sub = runtime.hub.subscribe("watched", transport="sse")
    runtime.registry.refresh()
    assert runtime.hub.stream_count() == 3
    admin.close("ended")
    runtime.registry.refresh()
    assert sorted(runtime.hub.unwatched()) == ["kept"]
    assert runtime.hub.stream_count() == 2
    sub.close()
