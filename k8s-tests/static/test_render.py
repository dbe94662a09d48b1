"""The chart lints, renders with every profile, and every object fits its API's schema."""

import json
import re

import chartlib
import pytest

pytestmark = pytest.mark.chart


def test_lint_strict(profile: str | None) -> None:
    """helm lint --strict passes with the profile (values.schema.json included)."""
    result = chartlib.run(
        [
            chartlib.tool("helm"),
            "lint",
            "--strict",
            chartlib.CHART,
            "--namespace",
            chartlib.NAMESPACE,
            *chartlib.helm_args(profile, api_versions=()),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_object_validates_against_its_schema(objects: list[chartlib.Obj]) -> None:
    """kubeconform (strict) finds every object, executor pod template included, valid."""
    assert objects, "nothing rendered"
    assert chartlib.schema_problems(objects) == []


def test_profiles_cover_both_aggregation_modes_and_autoscalers() -> None:
    """Between them, the profiles render every optional kind the chart can produce."""
    kinds = {o["kind"] for p in [None, *chartlib.PROFILES] for o in chartlib.rendered(p)}
    assert {
        "SparkApplication",
        "StatefulSet",
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "Ingress",
        "Job",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "PodDisruptionBudget",
    } <= kinds


def test_monitoring_resources_need_the_operator_api() -> None:
    """Without monitoring.coreos.com/v1 the chart renders no monitors or rules (bare cluster)."""
    bare = chartlib.render(api_versions=())
    kinds = {o["kind"] for o in bare}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= {
        o["kind"] for o in chartlib.rendered(None)
    }


def test_vendored_schemas_record_their_provenance() -> None:
    """Each vendored schema is listed in SOURCES.json with its source and checksum."""
    sources = json.loads((chartlib.SCHEMAS / "SOURCES.json").read_text())["schemas"]
    files = {
        str(p.relative_to(chartlib.SCHEMAS))
        for p in chartlib.SCHEMAS.rglob("*.json")
        if p.name != "SOURCES.json"
    }
    assert files == set(sources)
    for path, origin in sources.items():
        assert origin["source"], path
        assert len(origin["sha256"]) == 64, path
        schema = json.loads((chartlib.SCHEMAS / path).read_text())
        assert schema.get("$schema"), path
    k8s = {
        o["source"]
        for o in sources.values()
        if o["source"].startswith("Go module k8s.io/kubernetes")
    }
    assert k8s == {f"Go module k8s.io/kubernetes v{chartlib.KUBE_VERSION}"}


#: The admin token the chart makes up on install, in its Secret.
ADMIN_TOKEN = re.compile(r"^  admin-token: (\S+)$", re.MULTILINE)


def test_rendering_is_deterministic() -> None:
    """Two renderings are identical, so config checksums only change with the configuration;
    only the admin token the chart makes up on install differs (random, in no checksum)."""
    first, second = (chartlib.render_text().stdout for _ in range(2))
    tokens = [ADMIN_TOKEN.findall(text) for text in (first, second)]
    assert [len(t) for t in tokens] == [1, 1]
    assert tokens[0] != tokens[1]
    assert ADMIN_TOKEN.sub("", first) == ADMIN_TOKEN.sub("", second)


def test_vendored_schemas_are_exactly_the_rendered_kinds() -> None:
    """The vendored schemas cover every kind some profile renders, and nothing else."""
    rendered = {
        (o["apiVersion"], o["kind"])
        for p in [None, *chartlib.PROFILES]
        for o in [*chartlib.rendered(p), *chartlib.embedded_pods(chartlib.rendered(p))]
    }
    rendered |= {
        (o["apiVersion"], o["kind"]) for o in chartlib.render(values=["loadtest.enabled=true"])
    }
    sources = json.loads((chartlib.SCHEMAS / "SOURCES.json").read_text())["schemas"]
    assert {(s["apiVersion"], s["kind"]) for s in sources.values()} == rendered
