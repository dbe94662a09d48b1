"""Keep the chart's settings schema in step with the roles' Settings classes.

values.schema.json describes ``config``, ``ingest.config``, ``fanout.config`` and
``aggregate.config`` with ``$defs`` (commonSettings, ingestSettings, fanoutSettings,
aggregateSettings) derived from the pydantic Settings classes: the same names, types and bounds,
minus the settings the chart decides itself (addresses, ports, the Spark master). This writes
them; ``--check`` exits 1 when the file differs, which the static chart tests also assert.

usage: .venv/bin/python tools/sync_settings_schema.py [--check]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from emostream.aggregate.settings import AggregateSettings
from emostream.common.settings import CommonSettings
from emostream.fanout.settings import FanoutSettings
from emostream.ingest.settings import IngestSettings

SCHEMA = Path(__file__).resolve().parent.parent / "charts" / "emostream" / "values.schema.json"

#: Settings the chart sets from other values, never from a config map.
CHART_MANAGED = {
    "kafka_bootstrap_servers": "kafka.*",
    "redis_url": "redis.*",
    "kafka_security_protocol": "kafka.strimzi.security / kafka.external.securityProtocol",
    "kafka_sasl_mechanism": "kafka.external.saslMechanism (SCRAM-SHA-512 with Strimzi)",
    "kafka_sasl_username": "each role's KafkaUser or kafka.external.existingSecret",
    "kafka_sasl_password": "each role's KafkaUser or kafka.external.existingSecret",
    "kafka_ssl_ca_location": "the Kafka CA mounted from its Secret",
    "metrics_dir": "gunicorn_conf (a fresh directory under /tmp)",
    "spark_master": "aggregate.mode",
    "metrics_host": "0.0.0.0 in every pod (Prometheus scrapes the metrics port)",
    "metrics_port": "each role's `metrics` container port (aggregate.metrics.port)",
    "checkpoint_location": "aggregate.checkpoint",
    "spark_jars": "the Spark image (the connector is on Spark's class path)",
    "spark_driver_memory": "aggregate.driver.memory",
    "autoscale_executors": "always on in a cluster (min_executors..max_executors)",
    "registry_mode": "access.registry",
    "sender_tokens": "access.tokens.senders",
    "viewer_tokens": "access.tokens.viewers",
    "token_jwks_url": "access.tokens.jwksUrl",
    "token_secret": "access.tokens (a Secret)",
    "token_public_key": "access.tokens (a Secret)",
    "admin_token": "access.adminToken (a Secret)",
}
ROLES: dict[str, type[BaseSettings]] = {
    "commonSettings": CommonSettings,
    "ingestSettings": IngestSettings,
    "fanoutSettings": FanoutSettings,
    "aggregateSettings": AggregateSettings,
}
_KEEP = (
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "pattern",
    "enum",
    "minLength",
    "items",
    "additionalProperties",
    "description",
)


def settings_schema(cls: type[BaseSettings]) -> dict[str, Any]:
    """The JSON schema of one Settings class's chart-settable fields, keyed by field name."""
    generated = cls.model_json_schema()["properties"]
    props: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        if name in CHART_MANAGED:
            continue
        source = generated[
            field.validation_alias if isinstance(field.validation_alias, str) else name
        ]
        props[name] = {key: source[key] for key in _KEEP if key in source}
    return {
        "type": "object",
        "additionalProperties": False,
        "description": f"{cls.__module__}.{cls.__name__} fields, passed as EMOSTREAM_<NAME>.",
        "properties": props,
    }


def synced(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its settings ``$defs`` regenerated."""
    out: dict[str, Any] = json.loads(json.dumps(schema))
    for name, cls in ROLES.items():
        out["$defs"][name] = settings_schema(cls)
    return out


def main() -> int:
    """Rewrite (or, with --check, compare) the settings $defs of values.schema.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is in step")
    args = parser.parse_args()
    current = json.loads(SCHEMA.read_text())
    wanted = synced(current)
    if args.check:
        if wanted != current:
            sys.stdout.write(
                f"{SCHEMA} is out of step with the Settings classes; run {sys.argv[0]}\n"
            )
            return 1
        return 0
    SCHEMA.write_text(json.dumps(wanted, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {SCHEMA}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
