"""Viewer presence: how many viewers each stream has across every fanout worker and pod.

Each worker reports its own count of a stream's viewers into one Redis hash per stream (field:
the worker's id; value: ``<count>:<valid until, ms>``) and reads back the sum of the entries
still valid. Redis 7.0 has no expiry per hash field, so every entry carries its own deadline,
checked against Redis's clock (``TIME``, so pods' clocks need not agree) by a small Lua script
that writes this worker's entry, deletes expired ones and sums the rest. A worker that dies
without withdrawing its entries stops counting after ``presence_ttl_s``; the whole key expires
when no worker refreshes it.

All streams of one refresh go in one pipeline: one round trip per refresh period, whatever the
number of streams. Presence is fail-open: when Redis fails, feeds carry on with the last known
counts of the other workers (dropped once older than the TTL, like their Redis entries would
be) and this worker's own exact count, and the failure is counted.
"""

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

#: The script's KEYS[1] is the stream's hash; ARGV: worker id, its count, the entry TTL in ms.
_REPORT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, me = KEYS[1], ARGV[1]
local count, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
if count > 0 then
  redis.call('HSET', key, me, string.format('%d:%d', count, now + ttl))
else
  redis.call('HDEL', key, me)
end
local total = 0
local entries = redis.call('HGETALL', key)
for i = 1, #entries, 2 do
  local value = entries[i + 1]
  local sep = string.find(value, ':', 1, true)
  local n = sep and tonumber(string.sub(value, 1, sep - 1))
  local deadline = sep and tonumber(string.sub(value, sep + 1))
  if n == nil or deadline == nil or deadline < now then
    redis.call('HDEL', key, entries[i])
  else
    total = total + n
  end
end
if count > 0 then
  redis.call('PEXPIRE', key, ttl)
end
return total
"""


def presence_key(stream_id: str) -> str:
    """The Redis hash holding each worker's viewer count of ``stream_id``."""
    return f"emostream:fanout:viewers:{stream_id}"


def worker_id() -> str:
    """An id unique to this worker process, readable in Redis (host, pid, random suffix)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class PresenceStats:
    """Running totals, read by the metrics at scrape time."""

    refreshes: int = 0
    failures: int = 0
    #: Largest cross-pod viewer count among the streams this worker serves.
    max_viewers: int = 0


@dataclass(frozen=True)
class _Others:
    """Viewers of a stream on other workers, as of one refresh."""

    count: int
    at: float


class Presence:
    """This worker's side of the presence count: reports local counts, knows the totals."""

    def __init__(
        self,
        client: Callable[[], redis.Redis],
        local_counts: Callable[[], dict[str, int]],
        *,
        ttl_s: float,
        me: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._local_counts = local_counts
        self._ttl_ms = int(ttl_s * 1000)
        self._ttl_s = ttl_s
        self.me = me or worker_id()
        self._clock = clock
        self._others: dict[str, _Others] = {}
        self._reported: set[str] = set()
        self._sha: str | None = None
        self._failing = False
        self.stats = PresenceStats()

    def viewers(self, stream_id: str, local: int) -> int:
        """The stream's viewers across all workers, given this worker's ``local`` count now."""
        others = self._others.get(stream_id)
        if others is None or self._clock() - others.at > self._ttl_s:
            return local
        return others.count + local

    def refresh(self) -> bool:
        """Report this worker's counts and read the totals, in one round trip; False on failure.

        Streams this worker stopped serving are reported once with zero (their entry deleted)
        and then forgotten.
        """
        counts = self._local_counts()
        streams = sorted(set(counts) | self._reported)
        if not streams:
            return True
        try:
            totals = self._report(streams, counts)
        except redis.RedisError as exc:
            self.stats.failures += 1
            if not self._failing:
                log.warning("could not refresh viewer presence", extra={"error": str(exc)})
            self._failing = True
            return False
        if self._failing:
            log.info("viewer presence refreshes again")
        self._failing = False
        self.stats.refreshes += 1
        now = self._clock()
        most = 0
        for stream_id, total in zip(streams, totals, strict=True):
            mine = counts.get(stream_id, 0)
            if mine > 0:
                self._others[stream_id] = _Others(max(0, int(total) - mine), now)
                most = max(most, int(total))
            else:
                self._others.pop(stream_id, None)
        self._reported = {s for s in streams if counts.get(s, 0) > 0}
        self.stats.max_viewers = most
        return True

    def withdraw(self) -> bool:
        """Delete this worker's entries (it is stopping); False if Redis could not be told."""
        self._local_counts = dict
        return self.refresh()

    def _report(self, streams: list[str], counts: dict[str, int]) -> list[int]:
        client = self._client()
        if self._sha is None:
            self._sha = str(client.script_load(_REPORT_SCRIPT))
        try:
            return self._run_script(client, self._sha, streams, counts)
        except NoScriptError:
            # Redis restarted (or its script cache was flushed) since the script was loaded.
            self._sha = str(client.script_load(_REPORT_SCRIPT))
            return self._run_script(client, self._sha, streams, counts)

    def _run_script(
        self, client: redis.Redis, sha: str, streams: list[str], counts: dict[str, int]
    ) -> list[int]:
        # EVALSHA directly: redis-py's Script objects in a pipeline ask SCRIPT EXISTS before
        # every execution, a second round trip per refresh.
        pipe = client.pipeline(transaction=False)
        for stream_id in streams:
            pipe.evalsha(
                sha, 1, presence_key(stream_id), self.me, counts.get(stream_id, 0), self._ttl_ms
            )
        return [int(t) for t in pipe.execute()]
