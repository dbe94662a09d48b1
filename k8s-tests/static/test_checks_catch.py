"""The checks are not vacuous: each rejects a rendering broken in the way it guards against."""

import copy

import chartlib
import pytest

pytestmark = pytest.mark.chart


def broken(profile: str | None = None) -> list[chartlib.Obj]:
    """A private copy of a rendering to break."""
    return copy.deepcopy(list(chartlib.rendered(profile)))


def container(objects: list[chartlib.Obj], kind: str, name: str) -> chartlib.Obj:
    """The first container of a workload."""
    return chartlib.find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]


def test_a_container_without_resources_is_caught() -> None:
    """Dropping the ingest container's resources is reported, naming the container."""
    objects = broken()
    del container(objects, "Deployment", "emostream-ingest")["resources"]
    problems = chartlib.check_resources_and_probes(objects)
    assert "Deployment/emostream-ingest container ingest: no cpu request" in problems
    assert "Deployment/emostream-ingest container ingest: no memory limit" in problems


def test_a_container_without_probes_is_caught() -> None:
    """Dropping fanout's readiness probe and the driver's liveness probe is reported."""
    objects = broken()
    del container(objects, "Deployment", "emostream-fanout")["readinessProbe"]
    del container(objects, "StatefulSet", "emostream-aggregate")["livenessProbe"]
    assert chartlib.check_resources_and_probes(objects) == [
        "Deployment/emostream-fanout container fanout: no readinessProbe",
        "StatefulSet/emostream-aggregate container driver: no livenessProbe",
    ]


@pytest.mark.parametrize("profile", ["full-values.yaml", "prometheus-adapter-values.yaml"])
def test_an_autoscaler_pointing_at_a_missing_deployment_is_caught(
    profile: str, exported: set[str]
) -> None:
    """A ScaledObject or HPA whose target Deployment does not exist is reported."""
    objects = broken(profile)
    scaler = next(o for o in objects if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"))
    scaler["spec"]["scaleTargetRef"]["name"] = "emostream-ingress"
    problems = chartlib.check_autoscalers(objects, exported)
    assert any("emostream-ingress, which is not a rendered Deployment" in p for p in problems), (
        problems
    )


def test_an_autoscaler_on_a_metric_nobody_exports_is_caught(exported: set[str]) -> None:
    """A KEDA query on a misspelled metric, or a typo in trigger metadata, is reported."""
    objects = broken("full-values.yaml")
    scaler = chartlib.find(objects, "ScaledObject", "emostream-fanout")
    trigger = scaler["spec"]["triggers"][0]
    trigger["metadata"]["query"] = trigger["metadata"]["query"].replace("connections", "conections")
    trigger["metadata"]["treshold"] = trigger["metadata"].pop("threshold")
    problems = chartlib.check_autoscalers(objects, exported)
    assert any("emostream_fanout_conections, which nothing exports" in p for p in problems)
    assert any("unknown prometheus metadata {'treshold'}" in p for p in problems)


@pytest.mark.parametrize(
    ("kind", "path", "field", "typo"),
    [
        ("Kafka", "spec.kafka", "listeners", "listners"),
        ("Kafka", "spec", "kafkaExporter", "kafkaExporters"),
        ("KafkaNodePool", "spec", "replicas", "replica"),
        ("KafkaTopic", "spec", "partitions", "partition"),
        ("SparkApplication", "spec", "dynamicAllocation", "dynamicAlocation"),
        ("SparkApplication", "spec.driver", "serviceAccount", "serviceAccountName"),
        ("ScaledObject", "spec", "maxReplicaCount", "maxReplicas"),
        ("ServiceMonitor", "spec", "endpoints", "endpoint"),
        ("PrometheusRule", "spec", "groups", "group"),
        (
            "Deployment",
            "spec.template.spec",
            "terminationGracePeriodSeconds",
            "terminationGracePeriod",
        ),
    ],
)
def test_a_misspelled_field_is_rejected_by_the_schema(
    kind: str, path: str, field: str, typo: str
) -> None:
    """A field renamed to a near miss fails validation against the kind's (CRD) schema."""
    objects = broken("full-values.yaml")
    target = chartlib.of_kind(objects, kind)[0]
    node = target
    for key in path.split("."):
        node = node[key]
    node[typo] = node.pop(field)
    problems = chartlib.schema_problems([target])
    assert len(problems) == 1
    assert f"additional properties '{typo}' not allowed" in problems[0], problems


def test_an_unknown_kind_has_no_schema_and_fails() -> None:
    """A kind without a vendored schema is an error, never silently skipped."""
    problems = chartlib.schema_problems(
        [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}]
    )
    assert len(problems) == 1
    assert "could not find schema" in problems[0]


def test_a_writable_root_file_system_is_caught() -> None:
    """A container made root-writable, or run as root, is reported."""
    objects = broken()
    c = container(objects, "StatefulSet", "emostream-redis")
    c["securityContext"]["readOnlyRootFilesystem"] = False
    c["securityContext"]["runAsUser"] = 0
    problems = chartlib.check_pod_security(objects)
    assert "StatefulSet/emostream-redis container redis: root file system is writable" in problems
    assert "StatefulSet/emostream-redis container redis: runs as uid 0" in problems


def test_a_service_selecting_no_pod_is_caught() -> None:
    """A Service or PodDisruptionBudget whose selector matches no pod template is reported."""
    objects = broken()
    chartlib.find(objects, "Service", "emostream-fanout")["spec"]["selector"][
        "app.kubernetes.io/component"
    ] = "fan-out"
    problems = chartlib.check_selectors(objects)
    assert any(p.startswith("Service/emostream-fanout: selector") for p in problems), problems


def test_a_short_grace_period_is_caught() -> None:
    """A grace period shorter than preStop + graceful timeout is reported."""
    objects = broken()
    chartlib.find(objects, "Deployment", "emostream-ingest")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = 20
    assert chartlib.check_graceful_shutdown(objects) == [
        "Deployment/emostream-ingest: grace 20 s <= preStop 5 s + graceful timeout 20 s"
    ]


def test_a_metrics_port_on_a_public_service_or_ingress_is_caught() -> None:
    """The metrics port added to ingest's public Service, an Ingress routed to fanout's metrics
    Service, and a monitor scraping the public port are each reported."""
    objects = broken("full-values.yaml")
    ingest = chartlib.find(objects, "Service", "emostream-ingest")
    ingest["spec"]["ports"].append({"name": "scrape", "port": 9100, "targetPort": "metrics"})
    ingress = chartlib.find(objects, "Ingress", "emostream-fanout")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] = {
        "name": "emostream-fanout-metrics",
        "port": {"number": 9101},
    }
    monitor = chartlib.find(objects, "ServiceMonitor", "emostream-aggregate")
    monitor["spec"]["endpoints"][0]["port"] = "http"
    problems = chartlib.check_metrics_exposure(objects)
    assert any(p.startswith("Service/emostream-ingest: public Service exposes") for p in problems)
    assert any(p.startswith("Ingress/emostream-fanout: routes to a metrics port") for p in problems)
    assert "ServiceMonitor/emostream-aggregate: scrapes port 'http', not 'metrics'" in problems


def test_a_metrics_port_open_to_everyone_is_caught() -> None:
    """A NetworkPolicy rule admitting anyone to fanout's metrics port is reported."""
    objects = broken("external-values.yaml")
    policy = chartlib.find(objects, "NetworkPolicy", "emostream-fanout")
    rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "metrics")
    del rule["from"]
    scrapers = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert chartlib.check_metrics_policies(objects, scrapers) == [
        "NetworkPolicy/emostream-fanout: the metrics port admits all"
    ]


def test_a_client_with_another_roles_credentials_is_caught() -> None:
    """ingest reading fanout's KafkaUser Secret, and fanout without the CA, are reported."""
    objects = broken()
    env = container(objects, "Deployment", "emostream-ingest")["env"]
    password = next(e for e in env if e["name"] == "EMOSTREAM_KAFKA_SASL_PASSWORD")
    password["valueFrom"]["secretKeyRef"]["name"] = "emostream-fanout"
    fanout = container(objects, "Deployment", "emostream-fanout")
    fanout["env"] = [e for e in fanout["env"] if e["name"] != "EMOSTREAM_KAFKA_SSL_CA_LOCATION"]
    assert chartlib.check_kafka_clients(objects) == [
        "Deployment/emostream-fanout container fanout: no CA for the TLS listener",
        "Deployment/emostream-ingest container ingest: password from ('emostream-fanout', "
        "'password'), not its KafkaUser's Secret",
    ]
