"""Which streams are live: a registry kept in Redis and mirrored in every process's memory.

Two modes. ``open``: a stream comes into being with its first reaction, within two caps (live
streams in all, and new streams per minute per client), and stops being live after
``registry_idle_s`` without a reaction. ``closed``: streams are opened and closed through
ingest's admin API, and nothing else is live. In both modes the admin API may open a stream
(live until closed) or close one.

Requests never wait on Redis for a stream the mirror knows: the mirror is a set in memory,
refreshed every ``registry_refresh_s`` by a background thread. Only a stream the mirror does
not know costs a round trip, and only in open mode (to be admitted). So a stream opened or
closed on one process is seen by the others within one refresh.

Redis keys (``registry_key_prefix`` + ...):

- ``live``: a sorted set of stream ids, scored by the epoch millisecond at which each stops
  being live (``+inf`` for streams opened by the admin API);
- ``version``: incremented whenever the set's members change, so a mirror reloads the set
  only then (a refresh is otherwise two cheap commands);
- ``new:<client>``: streams a client created in the current minute (open mode).

Redis down: the mirror keeps its last state; in open mode an unknown stream is admitted
unchecked (counted), up to the live-stream cap in this process, for the same reason the rate
limit fails open: an outage of Redis must not become an outage of reactions.
"""

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis

from emostream.common.pid import current_pid

log = logging.getLogger(__name__)

Mode = Literal["open", "closed"]

#: KEYS: live set, version, the client's new-stream counter. ARGV: stream id, idle ms, most
#: live streams, most new streams per minute per client (0: no limit).
#: Returns {1, created} when live, else {0, why (1: live cap, 2: client cap), ms to wait}.
_ADMIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], 'GT', expiry, ARGV[1])
  return {1, 0}
end
if redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) > 0 then
  redis.call('INCR', KEYS[2])
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return {0, 1, 0}
end
local limit = tonumber(ARGV[4])
if limit > 0 then
  local n = redis.call('INCR', KEYS[3])
  if n == 1 then redis.call('PEXPIRE', KEYS[3], 60000) end
  if n > limit then return {0, 2, redis.call('PTTL', KEYS[3])} end
end
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
redis.call('INCR', KEYS[2])
return {1, 1}
"""

#: KEYS: live set, version. Drops the streams past their expiry (by Redis's clock).
_SWEEP_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if gone > 0 then redis.call('INCR', KEYS[2]) end
return gone
"""


class Admission(enum.Enum):
    """The registry's answer for a stream a request names."""

    LIVE = "live"
    #: Closed mode: the stream is not open.
    NOT_LIVE = "not_live"
    #: Open mode: as many streams are live as may be.
    LIVE_CAP = "live_cap"
    #: Open mode: this client created as many streams this minute as it may.
    CLIENT_CAP = "client_cap"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An :class:`Admission` and, for a refusal, seconds until trying again makes sense."""

    admission: Admission
    retry_after_s: float = 0.0


LIVE = Verdict(Admission.LIVE)


@dataclass(frozen=True)
class RegistryConfig:
    """The registry's settings (see the ``registry_*`` fields of the settings classes)."""

    mode: Mode
    redis_url: str
    key_prefix: str = "emostream:streams:"
    refresh_s: float = 1.0
    idle_s: float = 300.0
    max_live_streams: int = 10_000
    new_streams_per_min: int = 60
    timeout_s: float = 0.5


class StreamRegistry:
    """The mirror of the live streams, and the way to admit, open and close them.

    Thread-safe. The refresh thread starts with the first call in a process (gunicorn forks
    workers after building the app, and a thread does not survive a fork).
    """

    def __init__(
        self, config: RegistryConfig, *, on_refresh: Callable[[frozenset[str]], None] | None = None
    ) -> None:
        self.config = config
        p = config.key_prefix
        self._live_key, self._version_key, self._client_prefix = (
            p + "live",
            p + "version",
            p + "new:",
        )
        self._redis = redis.Redis.from_url(
            config.redis_url,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
        )
        self._admit_script = self._redis.register_script(_ADMIT_SCRIPT)
        self._sweep_script = self._redis.register_script(_SWEEP_SCRIPT)
        self._on_refresh = on_refresh
        self._live: frozenset[str] = frozenset()
        #: Admitted or opened here since the last reload (so they need no second round trip).
        self._added: set[str] = set()
        self._closed: set[str] = set()
        self._touched: set[str] = set()
        self._unrecorded: set[str] = set()
        self._version: bytes | None = None
        self._loaded = False
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()
        self.unchecked = 0
        self._down = False

    # Requests.

    def admit(self, stream_id: str, client: str) -> Verdict:
        """Whether a reaction from ``client`` to ``stream_id`` may be taken.

        A known stream costs a set lookup; in open mode an unknown one costs one round trip.
        """
        self.start()
        if self._known(stream_id):
            if self.config.mode == "open":
                self._touched.add(stream_id)
            return LIVE
        if self.config.mode == "closed":
            return Verdict(Admission.NOT_LIVE)
        return self._admit_new(stream_id, client)

    def is_live(self, stream_id: str) -> bool:
        """Whether the mirror holds ``stream_id`` (no round trip)."""
        self.start()
        return self._known(stream_id)

    def live_count(self) -> int:
        """Live streams as last read from Redis, plus those added here since."""
        return len(self._live) + len(self._added)

    # The admin API.

    def open(self, stream_id: str) -> bool:
        """Make ``stream_id`` live until :meth:`close`; True if it was not live before."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zscore(self._live_key, stream_id)
            pipe.zadd(self._live_key, {stream_id: float("inf")})
            pipe.incr(self._version_key)
            before = pipe.execute()[0]
        with self._lock:
            self._added.add(stream_id)
            self._closed.discard(stream_id)
        return before is None

    def close(self, stream_id: str) -> bool:
        """End ``stream_id``; True if it was live."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._live_key, stream_id)
            pipe.incr(self._version_key)
            removed = pipe.execute()[0]
        with self._lock:
            self._closed.add(stream_id)
            self._added.discard(stream_id)
        return bool(removed)

    # The mirror.

    def refresh(self) -> None:
        """Extend the streams touched since the last refresh, sweep expired ones and reload
        the set if it changed. Raises :class:`redis.RedisError` when Redis fails."""
        with self._lock:
            touched, self._touched = self._touched, set()
            unrecorded, self._unrecorded = self._unrecorded, set()
        # Local time is close enough to Redis's for an idle period of minutes.
        expiry = int(time.time() * 1000 + self.config.idle_s * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for stream_id in touched:
            pipe.zadd(self._live_key, {stream_id: expiry}, xx=True, gt=True)
        for stream_id in unrecorded:
            pipe.zadd(self._live_key, {stream_id: expiry}, nx=True)
        if unrecorded:
            pipe.incr(self._version_key)
        self._sweep_script(keys=[self._live_key, self._version_key], args=[], client=pipe)
        pipe.get(self._version_key)
        version = pipe.execute()[-1]
        if self._loaded and version == self._version:
            return
        with self._redis.pipeline(transaction=True) as reload:
            reload.get(self._version_key)
            reload.zrange(self._live_key, 0, -1)
            version, members = reload.execute()
        live = frozenset(m.decode() for m in members)
        with self._lock:
            self._live, self._version, self._loaded = live, version, True
            self._added -= live
            self._closed.clear()
        if self._on_refresh is not None:
            self._on_refresh(live)

    def start(self) -> None:
        """Load the mirror and start refreshing it, once per process (no-op afterwards).

        The first caller of a process waits for the first load, so a live stream is never
        refused for want of it.
        """
        pid = current_pid()
        if self._pid == pid:
            return
        with self._start_lock:
            if self._pid == pid:
                return
            self._stop.clear()
            try:
                self.refresh()
            except redis.RedisError as e:
                self._failed(e)
            threading.Thread(target=self._refresh_loop, name="stream-registry", daemon=True).start()
            self._pid = pid

    def stop(self) -> None:
        """Stop the refresh thread (it is a daemon; this is for tests and clean shutdowns)."""
        self._stop.set()

    # Internals.

    def _known(self, stream_id: str) -> bool:
        if stream_id in self._closed:
            return False
        return stream_id in self._live or stream_id in self._added

    def _admit_new(self, stream_id: str, client: str) -> Verdict:
        c = self.config
        try:
            result = self._admit_script(
                keys=[self._live_key, self._version_key, self._client_prefix + client],
                args=[stream_id, int(c.idle_s * 1000), c.max_live_streams, c.new_streams_per_min],
            )
        except redis.RedisError as e:
            return self._admit_unchecked(stream_id, e)
        if result[0] != 1:
            if int(result[1]) == 1:
                # Live streams end when idle; a minute is a fair guess at the next free slot.
                return Verdict(Admission.LIVE_CAP, retry_after_s=60.0)
            return Verdict(Admission.CLIENT_CAP, retry_after_s=int(result[2]) / 1000)
        with self._lock:
            self._added.add(stream_id)
            self._closed.discard(stream_id)
        return LIVE

    def _admit_unchecked(self, stream_id: str, error: redis.RedisError) -> Verdict:
        if self.live_count() >= self.config.max_live_streams:
            return Verdict(Admission.LIVE_CAP, retry_after_s=60.0)
        self.unchecked += 1
        if not self._down:
            self._down = True
            log.warning(
                "stream registry unchecked: Redis failed; new streams are admitted without it",
                extra={"error": str(error)},
            )
        with self._lock:
            self._added.add(stream_id)
            # Remembered so a refresh once Redis answers makes it live there too.
            self._unrecorded.add(stream_id)
        return LIVE

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.config.refresh_s):
            try:
                self.refresh()
            except redis.RedisError as e:
                self._failed(e)
            else:
                if self._down:
                    self._down = False
                    log.info("stream registry: Redis answers again")

    def _failed(self, error: redis.RedisError) -> None:
        if not self._down:
            self._down = True
            log.warning("stream registry: cannot read Redis", extra={"error": str(error)})
