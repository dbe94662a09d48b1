"""Ingest settings: defaults, environment variables and consistency checks."""

import pytest
from pydantic import ValidationError

from emostream.ingest.settings import IngestSettings


def test_defaults_match_the_contract() -> None:
    """Out of the box: 256 KiB bodies, batches of 500, 5 s future skew, 60 s past age, lz4."""
    s = IngestSettings()
    assert (s.max_body_bytes, s.max_batch) == (256 * 1024, 500)
    assert (s.max_future_skew_s, s.max_past_age_s) == (5.0, 60.0)
    assert s.producer_compression == "lz4"


def test_every_field_is_described() -> None:
    """Each ingest-specific setting carries a description for the docs and the chart."""
    own = set(IngestSettings.model_fields) - {
        "kafka_bootstrap_servers",
        "redis_url",
        "reactions_topic",
        "swarms_topic",
        "emoji_valence",
        "swarm_divisor",
        "log_level",
    }
    assert own
    for name in own:
        assert IngestSettings.model_fields[name].description, name


def test_settings_come_from_emostream_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    """EMOSTREAM_* variables set the fields."""
    monkeypatch.setenv("EMOSTREAM_MAX_BATCH", "50")
    monkeypatch.setenv("EMOSTREAM_PRODUCER_COMPRESSION", "zstd")
    s = IngestSettings()
    assert (s.max_batch, s.producer_compression) == (50, "zstd")


def test_graceful_timeout_must_cover_the_flush() -> None:
    """gunicorn's grace period shorter than the producer flush is refused at start-up."""
    with pytest.raises(ValidationError, match="graceful_timeout_s"):
        IngestSettings(graceful_timeout_s=5, shutdown_flush_timeout_s=10)


def test_queue_must_hold_a_whole_batch() -> None:
    """A producer queue smaller than the largest batch is refused at start-up."""
    with pytest.raises(ValidationError, match="producer_queue_max_messages"):
        IngestSettings(max_batch=10, producer_queue_max_messages=5)


def test_unknown_compression_is_refused() -> None:
    """Only librdkafka's codecs are accepted."""
    with pytest.raises(ValidationError):
        IngestSettings(producer_compression="brotli")


def test_burst_must_cover_a_whole_batch() -> None:
    """A burst smaller than the largest batch is refused while the limit is on."""
    with pytest.raises(ValidationError, match="rate_limit_burst"):
        IngestSettings(max_batch=100, rate_limit_burst=50)
    assert IngestSettings(max_batch=100, rate_limit_burst=50, rate_limit_per_s=0)


def test_metrics_dir_is_prometheus_clients_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metrics directory is read from PROMETHEUS_MULTIPROC_DIR, or given by name."""
    assert IngestSettings().metrics_dir is None
    assert IngestSettings(metrics_dir="/m").metrics_dir == "/m"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/p")
    assert IngestSettings().metrics_dir == "/p"
