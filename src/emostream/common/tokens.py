"""Signed tokens: who a sender is, and which streams a sender or a viewer may use.

Tokens are JWTs (RFC 7519) that a streaming platform's own auth issues, the way Centrifugo and
Mercure take them: signed HS256 with a shared secret, or RS256/ES256 with a private key whose
public half (a PEM, or a JWKS URL) Emostream is given. Checking is PyJWT's; nothing here is
cryptography. The claims::

    {"sub": "user-42",                      # the sender's user id (sender tokens)
     "exp": 1767225600,                     # required
     "emostream": {"send": ["match-1"],     # streams the bearer may react to ("*": any)
                   "view": ["match-1"]}}    # streams the bearer may watch ("*": any)

Refusals: a missing, malformed, forged or expired token, or one for another issuer or audience,
is 401 (get a new token); a valid token that does not cover the stream, or that lives longer
than ``token_max_ttl_s``, is 403. Every refusal is a :class:`TokenError` with a bounded
``reason`` for metrics.

The viewer tokens of earlier releases, ``<expiry>.<base64url HMAC-SHA256(stream.expiry)>``, are
still accepted by fanout while ``viewer_token_secret`` is set (:func:`verify_legacy_viewer_token`);
see docs/operations.md for the transition.
"""

import base64
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from emostream.common.errors import ConfigurationError, EmostreamError

Action = Literal["send", "view"]
#: The private claim holding the streams a token covers (like Mercure's ``mercure`` claim).
CLAIM = "emostream"
ANY_STREAM = "*"
#: Why a token is refused: the ``reason`` of a refusal, and a metric label.
REASONS = (
    "missing",
    "malformed",
    "signature",
    "expired",
    "too_long",
    "scope",
    "keys_unavailable",
)
#: Verified tokens kept per process, so a client that sends many requests with one token pays
#: for one signature check; a full cache is emptied and refilled.
_CACHE_SIZE = 10_000


class TokenError(EmostreamError):
    """A token was refused; ``reason`` names why (a metric label), ``status`` the reply."""

    def __init__(self, reason: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    subject: str | None
    expires_at: int
    send: frozenset[str]
    view: frozenset[str]

    def covers(self, action: Action, stream_id: str) -> bool:
        """Whether the token lets its bearer ``action`` (send or view) ``stream_id``."""
        streams = self.send if action == "send" else self.view
        return stream_id in streams or ANY_STREAM in streams


@dataclass(frozen=True)
class TokenKeys:
    """How tokens are checked: one shared secret (HS256), a public key, or a JWKS URL."""

    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = 30.0
    max_ttl_s: int = 86_400

    @property
    def configured(self) -> bool:
        """Whether any key is set (else no token can be checked)."""
        return bool(self.secret or self.public_key or self.jwks_url)


class TokenVerifier:
    """Checks tokens against :class:`TokenKeys`; safe to share between threads."""

    def __init__(self, keys: TokenKeys) -> None:
        given = [k for k in (keys.secret, keys.public_key, keys.jwks_url) if k]
        if len(given) != 1:
            raise ConfigurationError(
                "tokens need exactly one of token_secret, token_public_key and token_jwks_url"
            )
        self._keys = keys
        # HS256 only with a secret, RS256/ES256 only with a public key: a token can never pick
        # an algorithm that turns the public key into an HMAC secret.
        self._algorithms = ["HS256"] if keys.secret else ["RS256", "ES256"]
        self._jwks = jwt.PyJWKClient(keys.jwks_url) if keys.jwks_url else None
        self._cache: dict[str, Claims] = {}
        self._lock = threading.Lock()

    def verify(self, token: str | None, action: Action, stream_id: str) -> Claims:
        """The claims of ``token`` if it lets its bearer ``action`` ``stream_id``.

        Raises :class:`TokenError`: 401 for a missing or invalid token, 403 for a valid one
        that does not cover the stream.
        """
        claims = self.claims(token)
        if not claims.covers(action, stream_id):
            raise scope_error(action, stream_id)
        return claims

    def claims(self, token: str | None) -> Claims:
        """The claims of a valid ``token``, whatever it covers (else :class:`TokenError`)."""
        if not token:
            raise TokenError("missing", "this request needs a token (Authorization: Bearer)", 401)
        now = time.time()
        claims = self._cache.get(token)
        if claims is None or claims.expires_at <= now - self._keys.leeway_s:
            claims = self._decode(token, now)
            with self._lock:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                self._cache[token] = claims
        return claims

    def _decode(self, token: str, now: float) -> Claims:
        keys = self._keys
        try:
            key: Any = (
                self._jwks.get_signing_key_from_jwt(token).key
                if self._jwks is not None
                else keys.secret or keys.public_key
            )
            payload = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=keys.issuer,
                audience=keys.audience,
                leeway=keys.leeway_s,
                options={"require": ["exp"], "verify_aud": keys.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("expired", "the token has expired; get a new one", 401) from None
        except jwt.PyJWKClientConnectionError as e:
            raise TokenError("keys_unavailable", f"cannot fetch the token keys: {e}", 503) from e
        except (jwt.InvalidSignatureError, jwt.PyJWKClientError):
            raise TokenError("signature", "the token's signature is not valid", 401) from None
        except jwt.InvalidTokenError as e:
            raise TokenError("malformed", f"the token is not valid: {e}", 401) from None
        claims = _claims(payload)
        if claims.expires_at > now + keys.max_ttl_s:
            raise TokenError("too_long", "the token expires further ahead than allowed", 403)
        return claims


def scope_error(action: Action, stream_id: str) -> TokenError:
    """The 403 of a valid token that does not cover ``stream_id``."""
    return TokenError("scope", f"the token does not allow to {action} stream {stream_id!r}", 403)


def _claims(payload: dict[str, Any]) -> Claims:
    scope = payload.get(CLAIM)
    if scope is None:
        scope = {}
    if not isinstance(scope, dict):
        raise TokenError("malformed", f"the token's {CLAIM!r} claim must be an object", 401)
    subject = payload.get("sub")
    if subject is not None and not (isinstance(subject, str) and 0 < len(subject) <= 128):
        raise TokenError("malformed", "the token's sub must be a string of 1-128 chars", 401)
    return Claims(
        subject=subject,
        expires_at=int(payload["exp"]),
        send=_streams(scope, "send"),
        view=_streams(scope, "view"),
    )


def _streams(scope: dict[str, Any], action: Action) -> frozenset[str]:
    streams = scope.get(action, [])
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        raise TokenError("malformed", f"{CLAIM}.{action} must be a list of stream ids", 401)
    return frozenset(streams)


def mint(
    secret: str,
    *,
    subject: str | None = None,
    send: list[str] | None = None,
    view: list[str] | None = None,
    ttl_s: int,
    now: float | None = None,
) -> str:
    """An HS256 token for tests, tools and platforms without their own issuer."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = {"iat": issued, "exp": issued + ttl_s}
    if subject is not None:
        payload["sub"] = subject
    payload[CLAIM] = {k: v for k, v in (("send", send), ("view", view)) if v}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None without one)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# The viewer tokens of earlier releases.


def _legacy_mac(secret: bytes, stream_id: str, expires_at: int) -> str:
    # The stream id cannot contain "." (STREAM_ID_RE), so the message is unambiguous.
    digest = hmac.new(secret, f"{stream_id}.{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_legacy_viewer_token(token: str) -> bool:
    """Whether ``token`` has the earlier ``<expiry>.<mac>`` form (a JWT has three parts)."""
    return token.count(".") == 1


def mint_legacy_viewer_token(
    secret: bytes, stream_id: str, *, ttl_s: int, now: float | None = None
) -> str:
    """An earlier-release viewer token, for tests of the transition."""
    expires_at = int(time.time() if now is None else now) + ttl_s
    return f"{expires_at}.{_legacy_mac(secret, stream_id, expires_at)}"


def verify_legacy_viewer_token(
    secret: bytes, stream_id: str, token: str | None, *, max_ttl_s: int, now: float | None = None
) -> None:
    """Accept an earlier-release viewer token for ``stream_id`` or raise :class:`TokenError`.

    As before: missing, malformed and expired are 401; a signature for another stream, or an
    expiry implausibly far ahead, is 403.
    """
    if not token:
        raise TokenError("missing", "this feed needs a viewer token (?token=)", 401)
    expiry, _, mac = token.partition(".")
    if not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12 or not mac:
        raise TokenError("malformed", "the viewer token is not <expiry>.<signature>", 401)
    expires_at = int(expiry)
    current = time.time() if now is None else now
    # Compared before the expiry check, so a bad token never learns whether it had expired.
    if not hmac.compare_digest(mac.encode(), _legacy_mac(secret, stream_id, expires_at).encode()):
        raise TokenError("signature", "the viewer token is not valid for this stream", 403)
    if expires_at <= current:
        raise TokenError("expired", "the viewer token has expired; get a new one", 401)
    if expires_at > current + max_ttl_s:
        raise TokenError("too_long", "the viewer token expires further ahead than allowed", 403)
