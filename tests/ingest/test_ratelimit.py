"""The per-user rate limit against a real Redis: GCRA, batches, expiry, and Redis going away."""

import logging
import subprocess
import time
from pathlib import Path

import pytest
import redis

from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._ratelimit import RateLimiter, _resp
from emostream.ingest.settings import IngestSettings
from emostream.localstack import checks
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _limiter(url: str, prefix: str, **settings: float) -> tuple[RateLimiter, IngestMetrics]:
    s = IngestSettings(redis_url=url, rate_limit_key_prefix=prefix, max_batch=1, **settings)
    metrics = IngestMetrics()
    # Rounds happen when a test calls reconcile().
    return RateLimiter(s, metrics, background=False), metrics


def _unchecked(metrics: IngestMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "emostream_ingest_rate_limit_unchecked_requests_total", {"reason": "redis_down"}
    )
    return value or 0.0


def test_a_rested_user_may_send_a_burst_then_the_rate(redis_url: str, key_prefix: str) -> None:
    """A burst passes at once, the next is refused with the wait until one more fits."""
    limiter, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=10, rate_limit_burst=5)
    assert [limiter.acquire({"u": 1}).allowed for _ in range(5)] == [True] * 5
    refused = limiter.acquire({"u": 1})
    assert not refused.allowed
    assert refused.user_id == "u"
    assert 0.05 < refused.retry_after_s <= 0.1
    assert limiter.retry_after_header(refused) == "1"
    time.sleep(refused.retry_after_s + 0.02)
    assert limiter.acquire({"u": 1}).allowed
    assert not limiter.acquire({"u": 1}).allowed


def test_a_batch_is_charged_whole_and_all_or_nothing(redis_url: str, key_prefix: str) -> None:
    """A batch counts every reaction; one user over the rate refuses it and charges nobody."""
    limiter, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=4)
    assert limiter.acquire({"a": 4}).allowed
    refused = limiter.acquire({"b": 1, "a": 1, "c": 2})
    assert (refused.allowed, refused.user_id) == (False, "a")
    assert 0.9 < refused.retry_after_s <= 1.0
    # b and c were not charged by the refused batch: each still has its whole burst.
    assert limiter.acquire({"b": 4, "c": 4}).allowed


def test_the_limit_is_shared_by_limiters_after_a_round(redis_url: str, key_prefix: str) -> None:
    """Two limiters (two workers or replicas) draw on one bucket: each hears of the other's
    charges with its next round that charges the same user."""
    one, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=4)
    two, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=4)
    assert one.acquire({"u": 2}).allowed
    assert one.reconcile()
    # two has not heard of u: it decides as if u's bucket were full, then hears the truth.
    assert two.acquire({"u": 1}).allowed
    assert two.reconcile()
    # On its own two would take 2 more (1 + 2 <= 4); the shared bucket holds 3 already.
    refused = two.acquire({"u": 2})
    assert (refused.allowed, refused.user_id) == (False, "u")
    assert 0.8 < refused.retry_after_s <= 1.0
    assert one.acquire({"u": 1}).allowed
    assert one.reconcile()
    # On its own one would take 1 more (3 + 1 <= 4); the shared bucket is full.
    assert not one.acquire({"u": 1}).allowed


def test_a_round_carries_every_charge_of_many_users(redis_url: str, key_prefix: str) -> None:
    """More users than one script call takes are reconciled, each with its own count."""
    limiter, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=5)
    for i in range(2500):
        assert limiter.acquire({f"u{i}": 1 + i % 3}).allowed
    assert limiter.reconcile()
    store = redis.Redis.from_url(redis_url)
    ttls = [store.pttl(f"{key_prefix}u{i}") for i in (0, 1, 2, 2499)]
    # 1, 2, 3 and 1 reactions at one a second: that long until each bucket is full again.
    assert [round(t / 1000) for t in ttls] == [1, 2, 3, 1]


def test_keys_expire_once_the_bucket_is_full_again(redis_url: str, key_prefix: str) -> None:
    """A user's key lives only as long as its bucket needs to refill."""
    limiter, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=100, rate_limit_burst=10)
    assert limiter.acquire({"u": 5}).allowed
    assert limiter.reconcile()
    ttl = redis.Redis.from_url(redis_url).pttl(key_prefix + "u")
    assert 0 < ttl <= 50


def test_a_zero_rate_turns_the_limit_off(key_prefix: str) -> None:
    """With rate 0 nothing is asked of Redis (which need not even exist)."""
    limiter, metrics = _limiter(
        f"redis://127.0.0.1:{free_port()}/0", key_prefix, rate_limit_per_s=0
    )
    assert limiter.acquire({"u": 10**6}).allowed
    assert limiter.reconcile()
    assert _unchecked(metrics) == 0


def test_redis_down_limits_per_process_counted_logged_and_recovers(
    tmp_path: Path, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Redis each process still holds the rate on its own (counted, one log line);
    once Redis answers the charges are shared again, also after a restart that forgot the
    script."""
    server = checks.require_program("redis-server", "apt-get install -y redis-server")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    limiter, metrics = _limiter(url, key_prefix, rate_limit_per_s=1, rate_limit_burst=1)
    with caplog.at_level(logging.INFO, logger="emostream.ingest._ratelimit"):
        # Redis is not there: the round fails, the limit holds in this process.
        assert limiter.acquire({"u": 1}).allowed
        assert not limiter.reconcile()
        assert not limiter.acquire({"u": 1}).allowed
        assert limiter.acquire({"v": 1}).allowed
        assert _unchecked(metrics) == 2
        assert not limiter.reconcile()
        down = [r for r in caplog.records if "per process only" in r.getMessage()]
        assert len(down) == 1
        assert down[0].levelno == logging.WARNING

        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            wait_until("Redis", lambda: checks.redis_ready(url), 30)
            assert limiter.acquire({"w": 1}).allowed
            assert limiter.reconcile()
            assert any("shared again" in r.getMessage() for r in caplog.records)
            assert redis.Redis.from_url(url).exists(key_prefix + "w")
            # w was decided while Redis was still down; x after it answered again.
            assert limiter.acquire({"x": 1}).allowed
            assert _unchecked(metrics) == 3

            # Redis restarted (its scripts forgotten, the connection broken): one round fails,
            # the next loads the script again.
            proc.terminate()
            proc.wait()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            wait_until("Redis", lambda: checks.redis_ready(url), 30)
            assert limiter.acquire({"y": 1}).allowed
            assert not limiter.reconcile()
            assert limiter.acquire({"z": 1}).allowed
            assert limiter.reconcile()
            assert redis.Redis.from_url(url).exists(key_prefix + "z")
        finally:
            proc.terminate()
            proc.wait()


def test_an_address_is_charged_for_every_user_it_sends_for(redis_url: str, key_prefix: str) -> None:
    """Users invented by one address share its bucket; a user over its own rate is named."""
    limiter, _ = _limiter(
        redis_url,
        key_prefix,
        rate_limit_per_s=1,
        rate_limit_burst=3,
        rate_limit_per_address_per_s=1,
        rate_limit_per_address_burst=5,
    )
    assert limiter.acquire({"a": 3}, "10.0.0.1").allowed
    refused = limiter.acquire({"b": 1, "c": 2}, "10.0.0.1")
    assert (refused.allowed, refused.user_id, refused.address) == (False, None, "10.0.0.1")
    assert limiter.acquire({"b": 1, "c": 2}, "10.0.0.2").allowed
    over = limiter.acquire({"a": 1}, "10.0.0.3")
    assert (over.allowed, over.user_id) == (False, "a")
    assert limiter.reconcile()
    assert redis.Redis.from_url(redis_url).exists(key_prefix + "address:10.0.0.1")


def test_a_round_is_packed_as_redis_py_would_pack_it() -> None:
    """The round's own RESP packing gives redis-py's bytes, for keys, counts and intervals."""
    args = ("EVALSHA", "ab" * 20, 2, "p:ü", "p:address:::1", 1, 20000.0, 1000.5, 3, 7)
    assert _resp(*args) == b"".join(redis.Connection().pack_command(*args))
