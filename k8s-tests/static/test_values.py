"""values.yaml, values.schema.json and the chart's own checks of inconsistent values."""

import importlib.util
import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart


def rejected(values: list[str], profile: str | None = None) -> str:
    """helm template's error for values it must refuse."""
    result = chartlib.render_text(profile, values)
    assert result.returncode != 0, f"{values} rendered"
    return result.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["kafka.provider=confluent"],
            "at '/kafka/provider': value must be one of 'strimzi', 'external'",
        ),
        (
            ["ingest.config.max_bach=100"],
            "at '/ingest/config': additional properties 'max_bach' not allowed",
        ),
        (["ingest.config.max_batch=0"], "at '/ingest/config/max_batch': minimum: got 0, want 1"),
        (
            ["fanout.config.heartbeat_s=30"],
            "at '/fanout/config/heartbeat_s': maximum: got 30, want 15",
        ),
        (
            ["aggregate.mode=yarn"],
            "at '/aggregate/mode': value must be one of 'native', 'operator'",
        ),
        (["ingest.resources.limits.memory=lots"], "at '/ingest/resources/limits/memory'"),
        (["podSecurityContext.runAsNonRoot=false"], "at '/podSecurityContext/runAsNonRoot'"),
        (
            ["autoscaling.provider=hpa"],
            "at '/autoscaling/provider': value must be one of 'keda', 'prometheus-adapter'",
        ),
        (["redis.external.url=http://redis"], "at '/redis/external/url'"),
        (["loadtest.runTime=five minutes"], "at '/loadtest/runTime'"),
    ],
)
def test_schema_rejects_a_broken_value_with_a_clear_message(
    values: list[str], message: str
) -> None:
    """values.schema.json refuses the value and names where it is and what was expected."""
    error = rejected(values)
    assert "values don't meet the specifications of the schema" in error
    assert message in error


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["ingest.terminationGracePeriodSeconds=20"],
            "ingest.terminationGracePeriodSeconds (20) must exceed ingest.preStopSleepSeconds"
            " + ingest.config.graceful_timeout_s (5 + 20)",
        ),
        (
            ["ingest.config.graceful_timeout_s=10"],
            "ingest.config.graceful_timeout_s (10) must exceed"
            " ingest.config.shutdown_flush_timeout_s (10)",
        ),
        (
            ["kafka.provider=external"],
            "kafka.provider=external needs kafka.external.bootstrapServers",
        ),
        (
            ["redis.provider=external"],
            "redis.provider=external needs redis.external.url or redis.external.existingSecret",
        ),
        (
            ["aggregate.config.min_executors=7"],
            "aggregate.config.min_executors (7) exceeds aggregate.config.max_executors (6)",
        ),
        (
            ["fanout.config.drain_s=8"],
            "fanout.config.graceful_timeout_s must be at least fanout.config.drain_s + 4 (12)",
        ),
        (
            ["autoscaling.fanout.connectionsPerPod=6000"],
            "must stay below fanout.config.max_connections",
        ),
        (
            ["aggregate.checkpoint.persistence.enabled=false"],
            "aggregate.checkpoint needs a location",
        ),
        (
            ["aggregate.checkpoint.location=s3a://bucket/cp"],
            "set either aggregate.checkpoint.location or aggregate.checkpoint.persistence",
        ),
        (
            ["ingest.config.kafka_bootstrap_servers=x:9092"],
            "at '/ingest/config': additional properties 'kafka_bootstrap_servers' not allowed",
        ),
        (
            ["autoscaling.ingest.minReplicas=5", "autoscaling.ingest.maxReplicas=3"],
            "autoscaling.ingest.minReplicas (5) exceeds maxReplicas (3)",
        ),
    ],
)
def test_inconsistent_values_fail_with_the_values_to_change(
    values: list[str], message: str
) -> None:
    """Combinations the schema cannot express are refused by the chart with a precise message."""
    assert message in rejected(values)


def test_every_values_key_is_commented() -> None:
    """Each key of values.yaml has a comment on the line above (or on the list item's line)."""
    lines = (chartlib.CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^\s*(- )?(\"[^\"]+\"|[A-Za-z0-9_.-]+):")
    uncommented = []
    for number, line in enumerate(lines):
        if not key.match(line) or line.lstrip().startswith("#"):
            continue
        previous = lines[number - 1].strip() if number else ""
        if not previous.startswith(("#", "- #")):
            uncommented.append(f"{number + 1}: {line.strip()}")
    assert uncommented == []


def test_every_values_key_is_in_the_schema() -> None:
    """values.schema.json is strict: each object in it lists its keys, and values.yaml fits it."""
    import json  # noqa: PLC0415

    schema = json.loads((chartlib.CHART / "values.schema.json").read_text())
    values = yaml.safe_load((chartlib.CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    # helm lint --strict (test_render) validates values.yaml against the schema itself.


def test_settings_schema_matches_the_settings_classes() -> None:
    """The config sections of values.schema.json are those of the roles' Settings classes."""
    spec = importlib.util.spec_from_file_location(
        "sync_settings_schema", chartlib.ROOT / "tools" / "sync_settings_schema.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import json  # noqa: PLC0415

    current = json.loads(module.SCHEMA.read_text())
    assert module.synced(current) == current, "run .venv/bin/python tools/sync_settings_schema.py"


def test_chart_managed_settings_cannot_be_set_in_config() -> None:
    """Addresses and ports the chart decides are not settable in any config section."""
    import json  # noqa: PLC0415

    defs = json.loads((chartlib.CHART / "values.schema.json").read_text())["$defs"]
    for section in ("commonSettings", "ingestSettings", "fanoutSettings", "aggregateSettings"):
        props = set(defs[section]["properties"])
        assert not props & {
            "kafka_bootstrap_servers",
            "kafka_security_protocol",
            "kafka_sasl_mechanism",
            "kafka_sasl_username",
            "kafka_sasl_password",
            "kafka_ssl_ca_location",
            "redis_url",
            "spark_master",
            "metrics_host",
            "metrics_port",
            "checkpoint_location",
        }, section
