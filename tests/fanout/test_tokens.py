"""Signed viewer tokens: minting, checking, and feeds that require them."""

import time

import pytest
from flask.testing import FlaskClient

from emostream.cli import main
from emostream.fanout.app import create_app, runtime_of
from emostream.fanout.settings import FanoutSettings
from emostream.fanout.tokens import TokenError, mint_token, verify_token

SECRET = b"test-secret-of-this-site"
NOW = 1_800_000_000


def check(token: str | None, stream_id: str = "final", now: float = NOW) -> None:
    """verify_token with the test secret and a one-day limit."""
    verify_token(SECRET, stream_id, token, max_ttl_s=86_400, now=now)


def test_a_minted_token_opens_its_stream_until_it_expires() -> None:
    """A token is <expiry>.<base64url MAC>, valid for its stream until its expiry."""
    token = mint_token(SECRET, "final", ttl_s=300, now=NOW)
    expiry, _, mac = token.partition(".")
    assert int(expiry) == NOW + 300
    assert len(mac) == 43  # 32 bytes of HMAC-SHA256, base64url without padding
    assert set(mac) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    check(token)
    check(token, now=NOW + 299)


@pytest.mark.parametrize(
    ("token", "stream_id", "now", "reason", "status"),
    [
        (None, "final", NOW, "missing", 401),
        ("", "final", NOW, "missing", 401),
        ("nodot", "final", NOW, "malformed", 401),
        ("abc.def", "final", NOW, "malformed", 401),
        (f"{NOW + 300}.", "final", NOW, "malformed", 401),
        (mint_token(SECRET, "final", ttl_s=300, now=NOW), "semi", NOW, "signature", 403),
        (mint_token(b"other-secret", "final", ttl_s=300, now=NOW), "final", NOW, "signature", 403),
        (mint_token(SECRET, "final", ttl_s=300, now=NOW), "final", NOW + 300, "expired", 401),
        (mint_token(SECRET, "final", ttl_s=90_000, now=NOW), "final", NOW, "too_long", 403),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(
    token: str | None, stream_id: str, now: int, reason: str, status: int
) -> None:
    """Missing, malformed, expired, foreign and over-long tokens are refused, each named."""
    with pytest.raises(TokenError) as caught:
        check(token, stream_id, now)
    assert (caught.value.reason, caught.value.status) == (reason, status)


def test_a_token_cannot_be_extended_by_editing_its_expiry() -> None:
    """The MAC covers the expiry: changing it invalidates the token."""
    token = mint_token(SECRET, "final", ttl_s=60, now=NOW)
    _, _, mac = token.partition(".")
    with pytest.raises(TokenError, match="not valid"):
        check(f"{NOW + 3600}.{mac}")


def secured_client() -> FlaskClient:
    """An app whose feeds need tokens (no Kafka, no Redis)."""
    settings = FanoutSettings(
        viewer_token_secret=SECRET.decode(), snapshot_from_redis=False, presence_enabled=False
    )
    return create_app(settings, connect_upstream=False).test_client()


def test_feeds_require_a_valid_token_when_a_secret_is_set() -> None:
    """401/403 problem documents without a good token; the feed opens with one."""
    client = secured_client()
    missing = client.get("/v1/streams/final/events")
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json(force=True)["reason"] == "missing"
    other = mint_token(SECRET, "semi", ttl_s=60)
    wrong = client.get(f"/v1/streams/final/events?token={other}")
    assert wrong.status_code == 403
    assert wrong.get_json(force=True)["type"] == "urn:emostream:problem:invalid-token"
    ws = client.get(
        "/v1/streams/final/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    )
    assert ws.status_code == 401
    good = client.get(
        f"/v1/streams/final/events?token={mint_token(SECRET, 'final', ttl_s=60)}", buffered=False
    )
    try:
        assert good.status_code == 200
    finally:
        good.close()
    text = client.get("/metrics").get_data(as_text=True)
    assert 'emostream_fanout_token_rejections_total{reason="missing"} 2.0' in text
    assert 'emostream_fanout_token_rejections_total{reason="signature"} 1.0' in text


def test_without_a_secret_feeds_stay_open() -> None:
    """No secret configured: no token needed (and a stray one is ignored)."""
    app = create_app(
        FanoutSettings(snapshot_from_redis=False, presence_enabled=False), connect_upstream=False
    )
    assert runtime_of(app).settings.viewer_token_secret is None
    resp = app.test_client().get("/v1/streams/final/events?token=whatever", buffered=False)
    try:
        assert resp.status_code == 200
    finally:
        resp.close()


def test_cli_mints_a_token_the_server_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`emostream token STREAM --ttl N` prints a token valid for that stream for N seconds."""
    monkeypatch.setenv("EMOSTREAM_VIEWER_TOKEN_SECRET", SECRET.decode())
    assert main(["token", "final", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    verify_token(SECRET, "final", token, max_ttl_s=86_400)
    assert int(token.partition(".")[0]) - time.time() == pytest.approx(120, abs=5)
    monkeypatch.delenv("EMOSTREAM_VIEWER_TOKEN_SECRET")
    assert main(["token", "final"]) == 1
