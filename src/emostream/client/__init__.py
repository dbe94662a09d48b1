"""The Python SDK of Emostream: send reactions, follow a stream's swarms.

    from emostream.client import EmostreamClient

    client = EmostreamClient("http://127.0.0.1:8000", "http://127.0.0.1:8080")
    client.send("final", [{"user_id": "u1", "emoji": "🔥"}])
    for swarm in client.swarms("final"):
        print(swarm["counts"])

Errors are :class:`~emostream.client.errors.ApiError` (with the server's problem document) or
:class:`~emostream.client.errors.ConnectionFailedError`, both ``EmostreamError``.
"""

from emostream.client._client import EmostreamClient, listen
from emostream.client._sse import SSEEvent, SSEParser
from emostream.client.errors import (
    ApiError,
    ClientError,
    ConnectionFailedError,
    RateLimitedError,
    RequestRejectedError,
    ServiceUnavailableError,
)

__all__ = [
    "ApiError",
    "ClientError",
    "ConnectionFailedError",
    "EmostreamClient",
    "RateLimitedError",
    "RequestRejectedError",
    "SSEEvent",
    "SSEParser",
    "ServiceUnavailableError",
    "listen",
]
