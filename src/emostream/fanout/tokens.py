"""Signed viewer tokens: ``<expiry epoch seconds>.<base64url HMAC-SHA256>``, one per stream.

The MAC covers the stream id and the expiry, so a token opens one stream's feeds until it
expires and cannot be moved to another stream or extended. Whoever runs the site mints them
with the shared secret (:func:`mint_token`, or ``emostream token``) and hands them to viewers in
the page URL; fanout checks them with :func:`verify_token` when a feed opens (a feed already
open is not cut when its token expires).
"""

import base64
import hashlib
import hmac
import time

from emostream.common.errors import EmostreamError


class TokenError(EmostreamError):
    """A viewer token was refused; ``reason`` names why (a metric label), ``status`` the reply."""

    def __init__(self, reason: str, detail: str, status: int) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status


def _mac(secret: bytes, stream_id: str, expires_at: int) -> str:
    # The stream id cannot contain "." (STREAM_ID_RE), so the message is unambiguous.
    digest = hmac.new(secret, f"{stream_id}.{expires_at}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_token(secret: bytes, stream_id: str, *, ttl_s: int, now: float | None = None) -> str:
    """A token for ``stream_id`` valid for ``ttl_s`` seconds from ``now`` (default: now)."""
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    expires_at = int(time.time() if now is None else now) + ttl_s
    return f"{expires_at}.{_mac(secret, stream_id, expires_at)}"


def verify_token(
    secret: bytes,
    stream_id: str,
    token: str | None,
    *,
    max_ttl_s: int,
    now: float | None = None,
) -> None:
    """Accept ``token`` for ``stream_id`` or raise :class:`TokenError`.

    Missing, malformed and expired tokens are 401 (the viewer needs a new token); a token whose
    signature does not match this stream, or that expires implausibly far ahead, is 403.
    """
    if not token:
        raise TokenError("missing", "this feed needs a viewer token (?token=)", 401)
    expiry, sep, mac = token.partition(".")
    if not sep or not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12 or not mac:
        raise TokenError("malformed", "the viewer token is not <expiry>.<signature>", 401)
    expires_at = int(expiry)
    current = time.time() if now is None else now
    # Compared before the expiry check, so a bad token never learns whether it had expired.
    if not hmac.compare_digest(mac.encode(), _mac(secret, stream_id, expires_at).encode()):
        raise TokenError("signature", "the viewer token is not valid for this stream", 403)
    if expires_at <= current:
        raise TokenError("expired", "the viewer token has expired; get a new one", 401)
    if expires_at > current + max_ttl_s:
        raise TokenError("too_long", "the viewer token expires further ahead than allowed", 403)
