"""The per-user rate limit against a real Redis: GCRA, batches, expiry, and Redis going away."""

import logging
import subprocess
import time
from pathlib import Path

import pytest
import redis

from emostream.ingest._metrics import IngestMetrics
from emostream.ingest._ratelimit import RateLimiter
from emostream.ingest.settings import IngestSettings
from emostream.localstack import checks
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _limiter(url: str, prefix: str, **settings: float) -> tuple[RateLimiter, IngestMetrics]:
    # A generous time limit: on a busy machine the default 50 ms would let a slow answer
    # through unchecked, which is not what these tests are about.
    settings.setdefault("rate_limit_timeout_s", 1.0)
    s = IngestSettings(redis_url=url, rate_limit_key_prefix=prefix, max_batch=1, **settings)
    metrics = IngestMetrics()
    return RateLimiter(s, metrics), metrics


def _unchecked(metrics: IngestMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "emostream_ingest_rate_limit_unchecked_requests_total", {"reason": reason}
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


def test_the_limit_is_shared_by_every_limiter(redis_url: str, key_prefix: str) -> None:
    """Two limiters (two workers or replicas) draw on the same per-user bucket."""
    one, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=3)
    two, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=1, rate_limit_burst=3)
    assert one.acquire({"u": 2}).allowed
    assert not two.acquire({"u": 2}).allowed
    assert two.acquire({"u": 1}).allowed


def test_keys_expire_once_the_bucket_is_full_again(redis_url: str, key_prefix: str) -> None:
    """A user's key lives only as long as its bucket needs to refill."""
    limiter, _ = _limiter(redis_url, key_prefix, rate_limit_per_s=100, rate_limit_burst=10)
    assert limiter.acquire({"u": 5}).allowed
    ttl = redis.Redis.from_url(redis_url).pttl(key_prefix + "u")
    assert 0 < ttl <= 50


def test_a_zero_rate_turns_the_limit_off(key_prefix: str) -> None:
    """With rate 0 nothing is asked of Redis (which need not even exist)."""
    limiter, metrics = _limiter(
        f"redis://127.0.0.1:{free_port()}/0", key_prefix, rate_limit_per_s=0
    )
    assert limiter.acquire({"u": 10**6}).allowed
    assert _unchecked(metrics, "redis_error") == 0


def test_redis_down_fails_open_counted_logged_and_recovers(
    tmp_path: Path, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without Redis requests pass unchecked (metric, one log line), quickly, then it recovers."""
    server = checks.require_program("redis-server", "apt-get install -y redis-server")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    limiter, metrics = _limiter(
        url, key_prefix, rate_limit_per_s=1, rate_limit_burst=1, rate_limit_retry_s=0.3
    )
    with caplog.at_level(logging.INFO, logger="emostream.ingest._ratelimit"):
        # Redis is not there yet: fail open, fast.
        started = time.monotonic()
        verdicts = [limiter.acquire({"u": 1}) for _ in range(50)]
        assert time.monotonic() - started < 1.0
        assert all(v.allowed and not v.checked for v in verdicts)
        assert _unchecked(metrics, "redis_error") == 1
        assert _unchecked(metrics, "redis_backoff") == 49
        down = [r for r in caplog.records if "unchecked" in r.getMessage()]
        assert len(down) == 1
        assert down[0].levelno == logging.WARNING

        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            wait_until("Redis", lambda: checks.redis_ready(url), 30)
            time.sleep(0.35)
            # Checked again: the limit holds once more (burst 1).
            first, second = limiter.acquire({"u": 1}), limiter.acquire({"u": 1})
            assert (first.allowed, first.checked) == (True, True)
            assert (second.allowed, second.checked) == (False, True)
            assert any("checked again" in r.getMessage() for r in caplog.records)

            # Redis restarted (its scripts forgotten, connections broken): fail open once,
            # then the script is loaded again.
            proc.terminate()
            proc.wait()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            wait_until("Redis", lambda: checks.redis_ready(url), 30)
            assert not limiter.acquire({"v": 1}).checked
            time.sleep(0.35)
            assert limiter.acquire({"v": 1}).checked
            assert redis.Redis.from_url(url).exists(key_prefix + "v")
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
