"""Errors the SDK raises, all under :class:`~emostream.common.errors.EmostreamError`.

An error reply from a service is an :class:`ApiError` carrying the problem document the service
sent (``status``, ``title``, ``detail`` and any extension members), so a caller can show the
server's own explanation; the subclass says whether trying again can help.
"""

from typing import Any

from emostream.common.errors import EmostreamError


class ClientError(EmostreamError):
    """Root of the SDK's errors."""


class ConnectionFailedError(ClientError):
    """The service could not be reached (refused, timed out, reset) after the allowed retries."""


class ApiError(ClientError):
    """The service answered with an error status."""

    def __init__(
        self,
        status: int,
        problem: dict[str, Any],
        *,
        url: str,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.problem = problem
        self.url = url
        self.retry_after_s = retry_after_s
        self.title = str(problem.get("title") or f"HTTP {status}")
        self.detail = str(problem.get("detail") or "")
        message = f"{status} {self.title}" + (f": {self.detail}" if self.detail else "")
        super().__init__(f"{message} ({url})")


class RequestRejectedError(ApiError):
    """The request itself is wrong (4xx other than 429): sending it again will not help."""


class RateLimitedError(ApiError):
    """429: the sender is over its rate; ``retry_after_s`` says when to try again."""


class ServiceUnavailableError(ApiError):
    """503 or another 5xx: the service cannot take the request now; retrying later may work."""
