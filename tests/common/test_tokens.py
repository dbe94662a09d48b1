"""Signed tokens: JWTs by a shared secret, a public key or a JWKS URL, and the earlier form."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emostream.common.errors import ConfigurationError
from emostream.common.tokens import (
    TokenError,
    TokenKeys,
    TokenVerifier,
    bearer,
    mint,
    mint_legacy_viewer_token,
    verify_legacy_viewer_token,
)

SECRET = "a-secret-the-platform-and-emostream-share"  # noqa: S105 - a test secret
FORGED_WITH = "another-secret-of-32-bytes-or-more"


def in_a_minute() -> int:
    """An expiry a minute from now (read when a token is made, not when the module loads)."""
    return int(time.time()) + 60


def verifier(**keys: Any) -> TokenVerifier:
    """A verifier of the given keys (default: the test secret)."""
    return TokenVerifier(TokenKeys(**(keys or {"secret": SECRET})))


def refused(check: Any) -> tuple[str, int]:
    """The reason and status of the TokenError ``check()`` raises."""
    with pytest.raises(TokenError) as caught:
        check()
    return caught.value.reason, caught.value.status


def test_a_sender_token_names_its_user_and_streams() -> None:
    """sub is the user; emostream.send lists the streams it may react to."""
    token = mint(SECRET, subject="u-1", send=["final", "semi"], ttl_s=300)
    claims = verifier().verify(token, "send", "final")
    assert claims.subject == "u-1"
    assert claims.covers("send", "semi")
    assert not claims.covers("send", "other")
    assert not claims.covers("view", "final")


def test_a_wildcard_covers_every_stream() -> None:
    """ "*" in a claim covers any stream id."""
    claims = verifier().verify(mint(SECRET, view=["*"], ttl_s=60), "view", "anything")
    assert claims.subject is None


@pytest.mark.parametrize(
    ("make", "reason", "status"),
    [
        (lambda: None, "missing", 401),
        (lambda: "not-a-jwt", "malformed", 401),
        (
            lambda: mint(FORGED_WITH, subject="u", send=["s"], ttl_s=60),
            "signature",
            401,
        ),
        (
            lambda: mint(SECRET, subject="u", send=["s"], ttl_s=10, now=time.time() - 100),
            "expired",
            401,
        ),
        (lambda: mint(SECRET, subject="u", send=["other"], ttl_s=60), "scope", 403),
        (lambda: mint(SECRET, subject="u", view=["s"], ttl_s=60), "scope", 403),
        (lambda: mint(SECRET, subject="u", send=["s"], ttl_s=90_000), "too_long", 403),
        (lambda: jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"), "malformed", 401),
        (
            lambda: jwt.encode(
                {"exp": in_a_minute(), "emostream": ["s"]}, SECRET, algorithm="HS256"
            ),
            "malformed",
            401,
        ),
        (
            lambda: jwt.encode(
                {"exp": in_a_minute(), "emostream": {"send": ["s"]}}, key="", algorithm="none"
            ),
            "malformed",
            401,
        ),
    ],
    ids=[
        "missing",
        "garbage",
        "forged",
        "expired",
        "other-stream",
        "viewer-only",
        "too-long",
        "no-exp",
        "claim-not-object",
        "alg-none",
    ],
)
def test_bad_tokens_are_refused_with_a_reason(make: Any, reason: str, status: int) -> None:
    """Missing, invalid, forged and expired are 401; valid but out of scope or too long, 403."""
    assert refused(lambda: verifier().verify(make(), "send", "s")) == (reason, status)


def test_a_tampered_claim_breaks_the_signature() -> None:
    """Editing the payload (say, adding a stream) invalidates the token."""
    header, _, rest = mint(SECRET, subject="u", send=["s"], ttl_s=60).partition(".")
    _, _, signature = rest.partition(".")
    forged_payload = jwt.utils.base64url_encode(
        json.dumps({"sub": "u", "exp": in_a_minute(), "emostream": {"send": ["*"]}}).encode()
    ).decode()
    assert refused(
        lambda: verifier().verify(f"{header}.{forged_payload}.{signature}", "send", "x")
    ) == ("signature", 401)


def test_issuer_and_audience_are_checked_when_configured() -> None:
    """With token_issuer/token_audience set, tokens must carry them."""
    strict = verifier(secret=SECRET, issuer="https://auth.tv.example", audience="emostream")
    good = jwt.encode(
        {
            "exp": in_a_minute(),
            "iss": "https://auth.tv.example",
            "aud": "emostream",
            "emostream": {"view": ["s"]},
        },
        SECRET,
        algorithm="HS256",
    )
    strict.verify(good, "view", "s")
    wrong = jwt.encode(
        {"exp": in_a_minute(), "iss": "https://evil.example", "aud": "emostream"},
        SECRET,
        algorithm="HS256",
    )
    assert refused(lambda: strict.verify(wrong, "view", "s")) == ("malformed", 401)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_key_tokens(algorithm: str) -> None:
    """RS256 and ES256 tokens check against the PEM public key; HS256 ones are refused."""
    private: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keyed = verifier(public_key=pem)
    token = jwt.encode(
        {"sub": "u", "exp": in_a_minute(), "emostream": {"send": ["s"]}},
        private,
        algorithm=algorithm,
    )
    assert keyed.verify(token, "send", "s").subject == "u"
    # The public key used as an HMAC secret (algorithm confusion) must not pass.
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(
        json.dumps({"sub": "u", "exp": in_a_minute(), "emostream": {"send": ["s"]}}).encode()
    )
    mac = hmac.new(pem.encode(), header + b"." + payload, hashlib.sha256).digest()
    confused = b".".join([header, payload, jwt.utils.base64url_encode(mac)]).decode()
    assert refused(lambda: keyed.verify(confused, "send", "s"))[1] == 401


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, Any]]:
    """A real HTTP server on a free port serving one RSA key as a JWKS; yields (url, key)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", private
    server.shutdown()


def test_jwks_tokens(jwks_server: tuple[str, Any]) -> None:
    """Keys fetched from a JWKS URL check tokens by their kid."""
    url, private = jwks_server
    token = jwt.encode(
        {"sub": "u", "exp": in_a_minute(), "emostream": {"view": ["*"]}},
        private,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert verifier(jwks_url=url).verify(token, "view", "s").subject == "u"
    unknown = jwt.encode(
        {"exp": in_a_minute()}, private, algorithm="RS256", headers={"kid": "not-there"}
    )
    assert refused(lambda: verifier(jwks_url=url).verify(unknown, "view", "s")) == (
        "signature",
        401,
    )


def test_exactly_one_key_is_configured() -> None:
    """None or two of secret / public key / JWKS is a configuration error."""
    with pytest.raises(ConfigurationError):
        TokenVerifier(TokenKeys())
    with pytest.raises(ConfigurationError):
        TokenVerifier(TokenKeys(secret=SECRET, jwks_url="http://127.0.0.1:1/"))


def test_bearer_header() -> None:
    """Only the Bearer scheme carries a token."""
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None


LEGACY = b"test-secret-of-this-site"
T0 = 1_800_000_000


def legacy(stream_id: str = "final", *, ttl_s: int = 300, secret: bytes = LEGACY) -> str:
    """An earlier-release viewer token minted at T0."""
    return mint_legacy_viewer_token(secret, stream_id, ttl_s=ttl_s, now=T0)


@pytest.mark.parametrize(
    ("token", "stream_id", "now", "reason", "status"),
    [
        (None, "final", T0, "missing", 401),
        ("nodot", "final", T0, "malformed", 401),
        (f"{T0 + 300}.", "final", T0, "malformed", 401),
        (legacy(), "semi", T0, "signature", 403),
        (legacy(secret=b"other"), "final", T0, "signature", 403),
        (legacy(), "final", T0 + 300, "expired", 401),
        (legacy(ttl_s=90_000), "final", T0, "too_long", 403),
    ],
)  # fmt: skip
def test_earlier_viewer_tokens_are_still_checked(
    token: str | None, stream_id: str, now: int, reason: str, status: int
) -> None:
    """The earlier <expiry>.<mac> form keeps its rules during the transition."""
    verify_legacy_viewer_token(LEGACY, "final", legacy(), max_ttl_s=86_400, now=T0 + 299)
    assert refused(
        lambda: verify_legacy_viewer_token(LEGACY, stream_id, token, max_ttl_s=86_400, now=now)
    ) == (reason, status)
