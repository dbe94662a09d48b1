"""Per-user and per-address rate limits shared by every worker and replica: one Redis round
trip per request.

The rule is GCRA (the generic cell rate algorithm, a token bucket kept as a single timestamp):
a user may send ``rate`` reactions a second, sustained, and up to ``burst`` at once after
resting. Per user, Redis keeps the "theoretical arrival time" of the user's next reaction, in
microseconds of Redis's own clock (so replicas with skewed clocks agree), under a key that
expires once the bucket is full again, so idle users cost no memory.

A request is charged for all its reactions at once, per user id in it and, unless its users
come from a sender token, to its client address too (a body's user id is whatever the sender
says, so the address is what bounds one sender that invents users), by one Lua script: it reads
every key, and only if every bucket has room moves them all on. A batch is all or nothing, like
validation: a 429 means nothing of the request was counted or enqueued, and ``Retry-After`` is
when the slowest of its buckets may take it.

Why a script written here rather than a library: the ``limits`` package counts a cost per hit
but needs a second round trip to learn when to retry, and takes one key per call, so a batch of
many users would cost a round trip each. GCRA in Lua is a dozen lines.

Redis down: the limit fails open (see :class:`RateLimiter`).
"""

import hashlib
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from emostream.ingest._metrics import IngestMetrics
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

#: KEYS: one per bucket the request is charged to: each user of it, then maybe its address.
#: ARGV[1]: how many of the keys are users'. ARGV[2], ARGV[3]: microseconds per reaction (1 /
#: rate) and microseconds a full bucket holds (burst / rate) of a user's bucket; ARGV[4],
#: ARGV[5]: the same of an address's. ARGV[6..]: the reactions charged to each key. The two
#: buckets' shapes are passed once, not per key: a batch of 500 users stays 500 arguments.
#: Returns {1} when allowed, else {0, microseconds until the request would fit, key index}.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local users = tonumber(ARGV[1])
local tats = redis.call('MGET', unpack(KEYS))
local new = {}
local wait, worst = 0, 0
for i = 1, #KEYS do
  local shape = i <= users and 2 or 4
  local count = tonumber(ARGV[i + 5])
  local interval = tonumber(ARGV[shape])
  local capacity = tonumber(ARGV[shape + 1])
  local tat = tonumber(tats[i]) or now
  if tat < now then tat = now end
  local next_tat = tat + count * interval
  local allow_at = next_tat - capacity
  if allow_at - now > wait then
    wait, worst = allow_at - now, i
  end
  new[i] = next_tat
end
if wait > 0 then
  return {0, math.ceil(wait), worst}
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', math.ceil((new[i] - now) / 1000))
end
return {1}
"""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rate limit's answer for one request."""

    allowed: bool
    #: Seconds until the request would be allowed (0 when it is).
    retry_after_s: float = 0.0
    #: The user id that is over its rate (None when allowed or when the address is).
    user_id: str | None = None
    #: The client address that is over its rate (None when allowed or when a user is).
    address: str | None = None
    #: False when Redis could not be asked and the request went through unchecked.
    checked: bool = True


ALLOWED = Verdict(True)


def _bucket(rate_per_s: float, burst: int) -> tuple[float, float] | None:
    """A bucket's microseconds per reaction and microseconds it holds; None when off."""
    if rate_per_s <= 0:
        return None
    interval_us = 1e6 / rate_per_s
    return interval_us, burst * interval_us


class RateLimiter:
    """Charges each request's reactions to their users' buckets in Redis.

    Fails open: when Redis does not answer within ``rate_limit_timeout_s`` the request goes
    through unchecked, counted in ``emostream_ingest_rate_limit_unchecked_requests_total`` and
    logged (once per outage), and for ``rate_limit_retry_s`` afterwards requests skip Redis
    altogether, so an outage adds no latency. Why open: the limit protects against a runaway
    client, while Kafka's bounded queue (503) still protects the pipeline; failing closed would
    turn a Redis outage into an outage of every reaction, the product itself.
    """

    def __init__(self, settings: IngestSettings, metrics: IngestMetrics) -> None:
        self._metrics = metrics
        self._prefix = settings.rate_limit_key_prefix
        self._user = _bucket(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._address = _bucket(
            settings.rate_limit_per_address_per_s, settings.rate_limit_per_address_burst
        )
        # Only a factory of connections (from the URL: host, port, db, password, TLS); no
        # socket is opened until a request needs one.
        self._pool = redis.ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=settings.rate_limit_timeout_s,
            socket_connect_timeout=settings.rate_limit_timeout_s,
            # No retries: a failed round trip fails open at once.
            retry=Retry(NoBackoff(), 0),
        )
        self._sha = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's name
        self._local = threading.local()
        self._retry_s = settings.rate_limit_retry_s
        self._skip_until = 0.0
        self._down = False

    @property
    def enabled(self) -> bool:
        """Whether a limit is configured."""
        return bool(self._user or self._address)

    def acquire(self, users: dict[str, int], address: str | None = None) -> Verdict:
        """Charge ``users`` (user id -> reactions), and ``address`` with their sum, in one round
        trip; allowed only if every bucket has room. No address: the users are trusted (their
        ids come from sender tokens)."""
        prefix = self._prefix
        keys = [prefix + user for user in users] if self._user else []
        counts = list(users.values()) if self._user else []
        if self._address and address is not None:
            keys.append(prefix + "address:" + address)
            counts.append(sum(users.values()))
        if not keys:
            return ALLOWED
        if self._skip_until and time.monotonic() < self._skip_until:
            self._metrics.unchecked.labels("redis_backoff").inc()
            return Verdict(True, checked=False)
        try:
            shapes = (*(self._user or (0, 0)), *(self._address or (0, 0)))
            users_charged = len(users) if self._user else 0
            result = self._evalsha(len(keys), *keys, users_charged, *shapes, *counts)
        except redis.RedisError as e:
            return self._failed_open(e)
        if self._down:
            self._recovered()
        if result[0] == 1:
            return ALLOWED
        wait_us, index = int(result[1]), int(result[2])
        if self._user and index <= len(users):
            return Verdict(False, retry_after_s=wait_us / 1e6, user_id=list(users)[index - 1])
        return Verdict(False, retry_after_s=wait_us / 1e6, address=address)

    def retry_after_header(self, verdict: Verdict) -> str:
        """The Retry-After value (whole seconds, at least 1) of a refused request."""
        return str(max(1, math.ceil(verdict.retry_after_s)))

    def _evalsha(self, *args: str | float | int) -> list[int]:
        """Run the script on this thread's connection: one write, one read.

        Each request thread keeps its own connection, so a call needs neither a pool checkout
        nor redis-py's command machinery (which costs more CPU than the round trip itself).
        A connection that failed is dropped and the next call opens a new one.
        """
        conn = self._connection()
        try:
            conn.send_command("EVALSHA", self._sha, *args)
            try:
                reply = conn.read_response()
            except redis.exceptions.NoScriptError:
                # A restarted or flushed Redis forgot the script: load it once, then run it.
                conn.send_command("SCRIPT", "LOAD", GCRA_SCRIPT)
                conn.read_response()
                conn.send_command("EVALSHA", self._sha, *args)
                reply = conn.read_response()
        except redis.RedisError:
            self._local.conn = None
            conn.disconnect()
            raise
        return cast("list[int]", reply)

    def _connection(self) -> Any:  # redis-py's connection methods are untyped
        """This thread's connection (a forked child's threads start without one)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = local.conn = self._pool.make_connection()
            local.pid = os.getpid()
        return conn

    def _failed_open(self, error: redis.RedisError) -> Verdict:
        self._metrics.unchecked.labels("redis_error").inc()
        self._skip_until = time.monotonic() + self._retry_s
        if not self._down:
            self._down = True
            log.warning(
                "rate limit unchecked: Redis failed; requests go through unchecked until it "
                "answers again",
                extra={"error": str(error), "retry_s": self._retry_s},
            )
        return Verdict(True, checked=False)

    def _recovered(self) -> None:
        self._down = False
        self._skip_until = 0.0
        log.info("rate limit checked again: Redis answers")
