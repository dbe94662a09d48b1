"""The Emostream client: send reactions to ingest, follow a stream's swarms from fanout."""

import email.utils
import logging
import random
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

import orjson
import requests
import urllib3

from emostream.client._sse import SSEParser
from emostream.client.errors import (
    ApiError,
    ConnectionFailedError,
    RateLimitedError,
    RequestRejectedError,
    ServiceUnavailableError,
)
from emostream.common import endpoints
from emostream.common.events import SwarmMessage

log = logging.getLogger(__name__)

#: What the feed's own ``retry:`` field defaults to until the server sends one.
_DEFAULT_RETRY_MS = 2000
_MAX_BACKOFF_S = 30.0
#: Errors of a connection that was open or being opened; the feed reconnects after any of them.
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    urllib3.exceptions.HTTPError,
    OSError,
)

Reaction = dict[str, Any]


class EmostreamClient:
    """A client of one Emostream deployment (ingest and fanout base URLs).

    ``send`` retries only what the server says it did not take (429 and 503, after their
    Retry-After) or what never reached it (connection refused), so a reaction is never counted
    twice. ``swarms`` reconnects after any interruption and resumes after the last id it
    yielded, so a caller sees every swarm once, in order.

    ``token`` is a signed token (JWT) sent as ``Authorization: Bearer`` with sends and feeds:
    a sender token (its ``sub`` is the user, so reactions may leave ``user_id`` out), a viewer
    token, or one with both claims. ``admin_token`` authorises :meth:`open_stream` and
    :meth:`close_stream`, the stream registry's admin API.
    """

    def __init__(
        self,
        ingest_url: str = endpoints.INGEST_URL,
        fanout_url: str = endpoints.FANOUT_URL,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
        token: str | None = None,
        admin_token: str | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self.ingest_url = ingest_url.rstrip("/")
        self.fanout_url = fanout_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._admin_token = admin_token
        self._new_session = session_factory
        # Sends share one pooled session; each feed opens its own, so a feed read in one thread
        # and sends from another never share a connection pool's state.
        self._session = session_factory()

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __enter__(self) -> "EmostreamClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- ingest ------------------------------------------------------------------------------

    def send(self, stream_id: str, reactions: list[Reaction] | Reaction) -> int:
        """Post one reaction (a dict) or a batch (a list) to ``stream_id``; returns how many
        the server accepted.

        Each reaction is ``{"user_id": ..., "emoji": ..., "ts"?: ...}``. Raises
        :class:`RequestRejectedError` for invalid input, :class:`RateLimitedError` or
        :class:`ServiceUnavailableError` when retries ran out, :class:`ConnectionFailedError`
        when ingest cannot be reached.
        """
        url = f"{self.ingest_url}/v1/streams/{quote(stream_id, safe='')}/reactions"
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._auth}
        pending, taken = reactions, 0
        attempt = 0
        while True:
            body = orjson.dumps(pending)
            try:
                resp = self._session.post(url, data=body, headers=headers, timeout=self.timeout_s)
            except requests.ConnectionError as exc:
                if not _never_sent(exc) or attempt >= self.max_retries:
                    raise ConnectionFailedError(f"cannot reach ingest at {url}: {exc}") from exc
                delay = _backoff(_DEFAULT_RETRY_MS / 1000, attempt)
            except requests.Timeout as exc:
                # The request may have been taken: sending it again could count it twice.
                raise ConnectionFailedError(f"no answer from ingest at {url}: {exc}") from exc
            else:
                if resp.status_code in (200, 202):
                    return taken + _accepted(resp, pending)
                error = _api_error(resp)
                retryable = isinstance(error, RateLimitedError) or resp.status_code == 503
                if not retryable or attempt >= self.max_retries:
                    raise error
                if isinstance(pending, list):
                    left = _not_enqueued(error, pending)
                    taken += len(pending) - len(left)
                    pending = left
                delay = error.retry_after_s or _backoff(_DEFAULT_RETRY_MS / 1000, attempt)
            attempt += 1
            delay = min(delay, self.max_retry_wait_s)
            log.debug("retrying a send", extra={"url": url, "attempt": attempt, "delay_s": delay})
            time.sleep(delay)

    def open_stream(self, stream_id: str) -> bool:
        """Open ``stream_id`` in the stream registry (admin token); True if it was not live."""
        resp = self._admin("PUT", stream_id)
        return resp.status_code == 201

    def close_stream(self, stream_id: str) -> bool:
        """Close ``stream_id`` (admin token); True if it was live, False if it was not."""
        try:
            self._admin("DELETE", stream_id)
        except RequestRejectedError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def _admin(self, method: str, stream_id: str) -> requests.Response:
        if not self._admin_token:
            raise ValueError("the stream registry's admin API needs admin_token")
        url = f"{self.ingest_url}/v1/streams/{quote(stream_id, safe='')}"
        headers = {"Authorization": f"Bearer {self._admin_token}"}
        try:
            resp = self._session.request(method, url, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ConnectionFailedError(f"cannot reach ingest at {url}: {exc}") from exc
        if resp.status_code >= 300:
            raise _api_error(resp)
        return resp

    # -- fanout ------------------------------------------------------------------------------

    def swarms(
        self,
        stream_id: str,
        last_event_id: str | None = None,
        timeout: float = 45.0,
        *,
        max_failures: int | None = 10,
    ) -> Generator[SwarmMessage, None, None]:
        """Yield the swarms of ``stream_id`` from the SSE feed, forever (break out, or ``close()``).

        Without ``last_event_id`` the feed starts with the stream's latest swarm; with it, with
        the first swarm after that id still in the server's replay window. ``timeout`` is the
        longest silence tolerated (the server sends a heartbeat at least every 15 s) before the
        connection is taken for dead and reopened. After a dropped connection the feed is
        reopened with ``Last-Event-ID`` after the server's ``retry`` delay, backing off while
        attempts keep failing; ``max_failures`` consecutive failures (None: no limit) raise
        :class:`ConnectionFailedError` or the last :class:`ApiError`. A 4xx answer (a bad
        stream id) is raised at once.
        """
        url = f"{self.fanout_url}/v1/streams/{quote(stream_id, safe='')}/events"
        feed = _FeedState(last_id=last_event_id)
        failures = 0
        with self._new_session() as session:
            while True:
                delay: float | None = None
                try:
                    with session.get(
                        url,
                        headers={**_feed_headers(feed.last_id), **self._auth},
                        stream=True,
                        timeout=(self.timeout_s, timeout),
                    ) as resp:
                        if resp.status_code == 204:
                            return  # the SSE way of saying "do not reconnect"
                        if resp.status_code == 200:
                            _check_event_stream(resp, url)
                            failures = 0
                            yield from _read_feed(resp, feed)
                            log.debug("feed ended by the server", extra={"url": url})
                        else:
                            error = _api_error(resp)
                            failures += 1
                            if isinstance(error, RequestRejectedError) or (
                                max_failures is not None and failures >= max_failures
                            ):
                                raise error
                            delay = error.retry_after_s
                except _NETWORK_ERRORS as exc:
                    failures += 1
                    if max_failures is not None and failures >= max_failures:
                        raise ConnectionFailedError(
                            f"feed {url} failed {failures} times in a row: {exc}"
                        ) from exc
                    log.debug("feed interrupted", extra={"url": url, "error": str(exc)})
                if delay is None:
                    delay = _backoff(feed.retry_s, max(failures - 1, 0))
                time.sleep(min(delay, self.max_retry_wait_s))


def listen(
    stream_id: str, fanout_url: str = endpoints.FANOUT_URL, out: TextIO | None = None
) -> None:
    """Write each swarm of ``stream_id`` to ``out`` (stdout) as one JSON line, until interrupted.

    JSON lines so the output pipes straight into ``jq`` or a file; the feed resumes by itself
    after a dropped connection.
    """
    out = out or sys.stdout
    client = EmostreamClient(fanout_url=fanout_url)
    log.info("listening", extra={"stream_id": stream_id, "fanout_url": client.fanout_url})
    for swarm in client.swarms(stream_id):
        out.write(orjson.dumps(swarm).decode() + "\n")
        out.flush()


# -- helpers ---------------------------------------------------------------------------------


@dataclass
class _FeedState:
    """What survives a reconnection: where to resume, and how long the server asked us to wait."""

    last_id: str | None
    retry_s: float = _DEFAULT_RETRY_MS / 1000


def _read_feed(resp: requests.Response, feed: _FeedState) -> Iterator[SwarmMessage]:
    """The swarms of one open feed, skipping any id not after the last one yielded."""
    parser = SSEParser()
    for chunk in _chunks(resp):
        for event in parser.feed(chunk):
            if event.event != "swarm":
                continue
            if event.id and feed.last_id and event.id <= feed.last_id:
                continue  # ids only move forward: never yield one twice
            swarm: SwarmMessage = orjson.loads(event.data)
            feed.last_id = event.id or feed.last_id
            yield swarm
        if parser.retry_ms is not None:
            feed.retry_s = parser.retry_ms / 1000


def _feed_headers(last_id: str | None) -> dict[str, str]:
    headers = {
        "Accept": "text/event-stream",
        "Cache-Control": "no-cache",
        # A compressing proxy would hold events back until it has a block worth compressing.
        "Accept-Encoding": "identity",
    }
    if last_id:
        headers["Last-Event-ID"] = last_id
    return headers


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body's bytes as soon as they arrive (``read1``: whatever is there, at least one)."""
    raw = resp.raw
    while True:
        chunk: bytes = raw.read1(65536, decode_content=True)
        if not chunk:
            return
        yield chunk


def _check_event_stream(resp: requests.Response, url: str) -> None:
    ctype = resp.headers.get("Content-Type", "")
    if not ctype.startswith("text/event-stream"):
        raise RequestRejectedError(
            resp.status_code,
            {"title": "Not an event stream", "detail": f"Content-Type is {ctype!r}"},
            url=url,
        )


def _never_sent(exc: requests.ConnectionError) -> bool:
    """Whether the connection failed before the request left (refused, unresolvable, timeout)."""
    cause = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", None)
    return isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    )


def _backoff(base_s: float, attempt: int) -> float:
    """``base_s`` doubled per attempt, capped, with jitter so that many clients spread out."""
    delay: float = min(base_s * (2**attempt), _MAX_BACKOFF_S)
    return delay * random.uniform(0.75, 1.25)  # noqa: S311 - jitter, not security


def _accepted(resp: requests.Response, reactions: list[Reaction] | Reaction) -> int:
    try:
        body = resp.json()
    except requests.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("accepted"), int):
        return int(body["accepted"])
    # /send_emoji-style replies carry no count: everything sent was taken.
    return len(reactions) if isinstance(reactions, list) else 1


def _not_enqueued(error: ApiError, batch: list[Reaction]) -> list[Reaction]:
    """The reactions of ``batch`` an error reply says were not taken: those a 503 names when
    Kafka took part of the batch (``accepted``, ``not_enqueued``), else all of them."""
    taken, missing = error.problem.get("accepted"), error.problem.get("not_enqueued")
    if not isinstance(taken, int) or taken <= 0 or not isinstance(missing, list):
        return batch
    return [batch[i] for i in missing if isinstance(i, int) and 0 <= i < len(batch)]


def _api_error(resp: requests.Response) -> ApiError:
    """The error matching an error reply, carrying its problem document."""
    try:
        problem = resp.json()
    except requests.JSONDecodeError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"title": resp.reason or f"HTTP {resp.status_code}", "detail": resp.text[:200]}
    retry_after = _retry_after(resp.headers.get("Retry-After"))
    status = resp.status_code
    cls: type[ApiError]
    if status == 429:
        cls = RateLimitedError
    elif status >= 500:
        cls = ServiceUnavailableError
    else:
        cls = RequestRejectedError
    return cls(status, problem, url=resp.url, retry_after_s=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After value (delay seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(tz=UTC)).total_seconds())
