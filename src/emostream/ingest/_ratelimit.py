"""Per-user and per-address rate limits, decided in each worker and shared through Redis.

The rule is GCRA (the generic cell rate algorithm, a token bucket kept as a single timestamp):
a user may send ``rate`` reactions a second, sustained, and up to ``burst`` at once after
resting. A bucket is its "theoretical arrival time" (TAT): when the user's next reaction would
be on schedule. A request is charged for all its reactions at once, per user id in it and,
unless its users come from a sender token, to its client address too (a body's user id is
whatever the sender says, so the address is what bounds one sender that invents users). A batch
is all or nothing, like validation: a 429 means nothing of the request was counted or enqueued,
and ``Retry-After`` is when the slowest of its buckets may take it.

No round trip on a request's path: each worker process decides from its own copy of the buckets,
in memory, and a background thread reconciles them with Redis every ``rate_limit_sync_s``. One
script call sends what this process charged since the last round; Redis adds it to the shared
buckets (in microseconds of Redis's own clock, so replicas with skewed clocks agree; a key
expires once its bucket is full again, so idle users cost no memory) and answers the TAT, after
every process's charges, of each bucket that was not full before this round's charge; the
process adopts it when it is later than its own. A bucket that was full held nothing but what
this process just charged, which it knows already, so most users cost no answer at all.

The tolerance, written down in docs/ingest.md and held by a test with two servers: a user whose
requests reach P processes (workers x replicas) can get through, beyond what one process alone
would let through, at most what the other P - 1 let through before they heard, i.e.
(P - 1) x (burst + rate x sync interval) reactions, and only once: those reactions are charged to
the shared bucket all the same, so the user then waits until they are paid for. Over any longer
time a user gets the rate, never more. A process first hears of a user's shared bucket by
charging it: its first request there is decided as if the bucket were full.

Redis down: each process still holds every user and address to the rate on its own, and the
requests it decides meanwhile are counted as not checked against the shared buckets (see
:class:`RateLimiter`).
"""

import hashlib
import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from emostream.ingest._metrics import IngestMetrics
from emostream.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

#: KEYS: the buckets one process charged since the last round: users', then addresses'.
#: ARGV[1]: how many of the keys are users'. ARGV[2], ARGV[3]: microseconds per reaction (1 /
#: rate) of a user's bucket and of an address's. ARGV[4..]: the reactions charged to each key.
#: The charges already happened, so they are added whatever the buckets hold.
#: Returns Redis's time, then (key number, TAT after the charge) for each key whose bucket was
#: not full before it (microseconds, as strings).
RECONCILE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local users = tonumber(ARGV[1])
local tats = redis.call('MGET', unpack(KEYS))
local out = {string.format('%.0f', now)}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[i <= users and 2 or 3])
  local tat = tonumber(tats[i]) or now
  local shared = tat > now
  if not shared then tat = now end
  tat = tat + tonumber(ARGV[i + 3]) * interval
  redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  if shared then
    out[#out + 1] = tostring(i)
    out[#out + 1] = string.format('%.0f', tat)
  end
end
return out
"""

#: Most keys one script call reconciles, so Redis is never busy with one call for long.
_KEYS_PER_CALL = 1000
#: How often a process forgets the buckets that are full again (they cost memory only).
_PRUNE_S = 10.0


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


ALLOWED = Verdict(True)


@dataclass(slots=True)
class _Buckets:
    """The buckets of one kind (users' or client addresses'): their shape, this process's copy
    of them, and what it charged since the last round."""

    #: Microseconds per reaction (1 / rate) and microseconds a bucket holds (burst / rate).
    interval_us: float
    capacity_us: float
    #: Redis key of the bucket of id ``x``: ``key_prefix + x``.
    key_prefix: str
    #: id -> TAT in microseconds of time.monotonic(); a missing id is a full bucket.
    tats: dict[str, float] = field(default_factory=dict)
    #: id -> reactions charged since the last round.
    charged: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rate_per_s: float, burst: int, key_prefix: str) -> "_Buckets | None":
        """The buckets of a rate; None when the rate is 0 (no limit)."""
        if rate_per_s <= 0:
            return None
        interval_us = 1e6 / rate_per_s
        return cls(interval_us, burst * interval_us, key_prefix)

    def after(self, charges: dict[str, int], now_us: float) -> tuple[list[float], float]:
        """The TATs of the buckets of ``charges`` (id -> reactions) were they charged now, and
        how far past its capacity the fullest would be (> 0: it has no room)."""
        interval, tats = self.interval_us, self.tats
        after = [
            (tat if (tat := tats.get(key, now_us)) > now_us else now_us) + n * interval
            for key, n in charges.items()
        ]
        return after, max(after, default=now_us) - now_us - self.capacity_us

    def take(self, charges: dict[str, int], tats: list[float]) -> None:
        """Record ``charges`` (id -> reactions), whose buckets' TATs are now ``tats``."""
        self.tats.update(zip(charges, tats, strict=True))
        charged = self.charged
        for key, n in charges.items():
            charged[key] = charged.get(key, 0) + n

    def adopt(self, key: str, tat: float) -> None:
        """Take the shared bucket's TAT if it is later than this process's."""
        if tat > self.tats.get(key, 0.0):
            self.tats[key] = tat

    def prune(self, now_us: float) -> None:
        """Forget buckets that are full again (a missing id means just that)."""
        self.tats = {key: tat for key, tat in self.tats.items() if tat > now_us}


def _resp(*args: str | float | int) -> bytes:
    """``args`` as one RESP command, as redis-py would pack it, for a fraction of its cost: a
    round carries up to two thousand arguments."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RateLimiter:
    """Charges each request's reactions to its users' (and address's) buckets, in memory, and
    reconciles the buckets with every other process through Redis in the background.

    When a round fails (Redis does not answer within ``rate_limit_timeout_s``), the limit holds
    per process: every user and address still gets the rate from each process on its own. The
    requests decided meanwhile are counted in
    ``emostream_ingest_rate_limit_unchecked_requests_total`` (not checked against the shared
    buckets), the outage is logged once, and Redis is tried again after ``rate_limit_retry_s``.
    Why not refuse: the limit protects against a runaway client, while Kafka's bounded queue
    (503) still protects the pipeline; refusing would turn a Redis outage into an outage of
    every reaction, the product itself.
    """

    def __init__(
        self, settings: IngestSettings, metrics: IngestMetrics, *, background: bool = True
    ) -> None:
        """``background=False``: no reconciling thread; the caller runs :meth:`reconcile`."""
        self._metrics = metrics
        self._background = background
        prefix = settings.rate_limit_key_prefix
        self._users = _Buckets.of(settings.rate_limit_per_s, settings.rate_limit_burst, prefix)
        self._addresses = _Buckets.of(
            settings.rate_limit_per_address_per_s,
            settings.rate_limit_per_address_burst,
            prefix + "address:",
        )
        self._sync_s = settings.rate_limit_sync_s
        self._retry_s = settings.rate_limit_retry_s
        # Only a factory of connections (from the URL: host, port, db, password, TLS); no
        # socket is opened until a round needs one.
        self._pool = redis.ConnectionPool.from_url(
            settings.redis_url,
            socket_timeout=settings.rate_limit_timeout_s,
            socket_connect_timeout=settings.rate_limit_timeout_s,
            # No retries: a failed round is dropped and the next one tries again.
            retry=Retry(NoBackoff(), 0),
        )
        self._sha = hashlib.sha1(RECONCILE_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis's
        self._conn: Any = None
        self._lock = threading.Lock()
        self._down = False
        self._next_prune = 0.0
        self._thread: threading.Thread | None = None

    def acquire(self, users: dict[str, int], address: str | None = None) -> Verdict:
        """Charge ``users`` (user id -> reactions), and ``address`` with their sum; allowed only
        if every bucket has room. No address: the users are trusted (their ids come from sender
        tokens)."""
        by_user = self._users
        by_address = self._addresses if address is not None else None
        if by_user is None and by_address is None:
            return ALLOWED
        self._start()
        now = time.monotonic() * 1e6
        # How far past its capacity the fullest bucket would be: > 0 refuses the request.
        user_over = address_over = -1.0
        with self._lock:
            if by_user is not None:
                user_tats, user_over = by_user.after(users, now)
            if by_address is not None and address is not None:
                total = {address: sum(users.values())}
                address_tats, address_over = by_address.after(total, now)
            allowed = user_over <= 0 and address_over <= 0
            if allowed:
                if by_user is not None:
                    by_user.take(users, user_tats)
                if by_address is not None:
                    by_address.take(total, address_tats)
        if self._down:
            self._metrics.unchecked.labels("redis_down").inc()
        if allowed:
            return ALLOWED
        if user_over >= address_over:
            worst = list(users)[user_tats.index(max(user_tats))]
            return Verdict(False, retry_after_s=user_over / 1e6, user_id=worst)
        return Verdict(False, retry_after_s=address_over / 1e6, address=address)

    def retry_after_header(self, verdict: Verdict) -> str:
        """The Retry-After value (whole seconds, at least 1) of a refused request."""
        return str(max(1, math.ceil(verdict.retry_after_s)))

    def reconcile(self) -> bool:
        """One round: send Redis this process's charges, adopt the shared buckets' state.

        Runs in the background every ``rate_limit_sync_s``; tests call it to make a round
        happen now. False when Redis failed (the round's charges stay out of the shared
        buckets: the outage's share of the tolerance).
        """
        kinds = [b for b in (self._users, self._addresses) if b is not None]
        with self._lock:
            charged = [b.charged for b in kinds]
            for buckets in kinds:
                buckets.charged = {}
        self._prune(kinds)
        # Every bucket charged, users' first: its id here, its key in Redis, its reactions.
        ids: list[str] = []
        keys: list[str] = []
        counts: list[int] = []
        for buckets, charges in zip(kinds, charged, strict=True):
            prefix = buckets.key_prefix
            ids.extend(charges)
            keys.extend([prefix + key for key in charges])
            counts.extend(charges.values())
        users = len(charged[0]) if self._users is not None else 0
        try:
            for start in range(0, len(keys), _KEYS_PER_CALL):
                end = start + _KEYS_PER_CALL
                shared = self._round(keys[start:end], counts[start:end], max(0, users - start))
                with self._lock:
                    for i, tat in shared:
                        at = start + i
                        kinds[0 if at < users else -1].adopt(ids[at], tat)
        except redis.RedisError as e:
            self._failed(e)
            return False
        if self._down:
            self._down = False
            log.info("rate limit shared again: Redis answers")
        return True

    def _round(self, keys: list[str], counts: list[int], users: int) -> list[tuple[int, float]]:
        """Add ``counts`` to the shared buckets ``keys``, of which the first ``users`` are
        users'; return (position in ``keys``, TAT in microseconds of time.monotonic()) of the
        buckets that were not full before."""
        if not keys:
            return []
        intervals = [b.interval_us if b else 0.0 for b in (self._users, self._addresses)]
        sent = time.monotonic()
        reply = self._evalsha(len(keys), *keys, users, *intervals, *counts)
        received = time.monotonic()
        # Redis's clock to this process's, taking the answer as made halfway through the trip.
        offset = int(reply[0]) - (sent + received) / 2 * 1e6
        return [(int(reply[i]) - 1, int(reply[i + 1]) - offset) for i in range(1, len(reply), 2)]

    def _prune(self, kinds: list[_Buckets]) -> None:
        """Forget buckets that are full again, every ``_PRUNE_S``."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_S
        with self._lock:
            for buckets in kinds:
                buckets.prune(now * 1e6)

    def _start(self) -> None:
        """Start this process's reconciling thread (in a forked child, whose copy of the thread
        is not alive, a new one)."""
        thread = self._thread
        if (thread is not None and thread.is_alive()) or not self._background:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._conn = None
            thread = self._thread = threading.Thread(
                target=_reconcile_while_alive,
                args=(weakref.ref(self),),
                name="rate-limit-reconcile",
                daemon=True,
            )
            thread.start()

    def _evalsha(self, *args: str | float | int) -> list[bytes]:
        """Run the script on the reconciling thread's connection: one write, one read.

        A connection that failed is dropped and the next round opens a new one.
        """
        if self._conn is None:
            self._conn = self._pool.make_connection()
        conn = self._conn
        command = _resp("EVALSHA", self._sha, *args)
        try:
            conn.send_packed_command([command])
            try:
                reply = conn.read_response()
            except redis.exceptions.NoScriptError:
                # A restarted or flushed Redis forgot the script: load it once, then run it.
                conn.send_command("SCRIPT", "LOAD", RECONCILE_SCRIPT)
                conn.read_response()
                conn.send_packed_command([command])
                reply = conn.read_response()
        except redis.RedisError:
            self._conn = None
            conn.disconnect()
            raise
        return cast("list[bytes]", reply)

    def _failed(self, error: redis.RedisError) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "rate limit per process only: Redis failed; each process holds users to the "
                "rate on its own until Redis answers again",
                extra={"error": str(error), "retry_s": self._retry_s},
            )


def _reconcile_while_alive(ref: "weakref.ReferenceType[RateLimiter]") -> None:
    """The reconciling loop; it holds its limiter only weakly, so it ends with the limiter (an
    app a test made and dropped) instead of outliving it."""
    while (limiter := ref()) is not None:
        pause = limiter._retry_s if limiter._down else limiter._sync_s
        del limiter
        time.sleep(pause)
        limiter = ref()
        if limiter is None:
            return
        limiter.reconcile()
        del limiter
