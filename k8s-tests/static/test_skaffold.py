"""skaffold.yaml builds every image the chart runs, deploys it and forwards what it renders."""

import os
import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart

SKAFFOLD = chartlib.ROOT / "skaffold.yaml"


@pytest.fixture(scope="module")
def skaffold() -> dict:
    """skaffold.yaml, parsed."""
    return yaml.safe_load(SKAFFOLD.read_text())


def _normalised(image: str) -> str:
    return re.sub(r"[/\-.:]", "_", image)


def test_current_schema_version(skaffold: dict) -> None:
    """The config uses the schema of the skaffold the end-to-end run builds (v4beta14, from
    skaffold 2.19; SKAFFOLD_VERSION in k8s-tests/cluster/versions.env)."""
    assert skaffold["apiVersion"] == "skaffold/v4beta14"
    assert skaffold["kind"] == "Config"


def test_every_chart_image_is_built_and_wired(skaffold: dict) -> None:
    """Each Emostream image in values.yaml is an artifact, and its tag reaches the chart."""
    values = yaml.safe_load((chartlib.CHART / "values.yaml").read_text())
    chart_images = {
        "ingest": values["ingest"]["image"]["repository"],
        "fanout": values["fanout"]["image"]["repository"],
        "aggregate": values["aggregate"]["image"]["repository"],
        "loadtest": values["loadtest"]["image"]["repository"],
    }
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert set(chart_images.values()) == set(artifacts)
    (release,) = skaffold["deploy"]["helm"]["releases"]
    templates = release["setValueTemplates"]
    for key, image in chart_images.items():
        assert templates[f"{key}.image.repository"] == f"{{{{.IMAGE_REPO_{_normalised(image)}}}}}"
        assert templates[f"{key}.image.tag"] == f"{{{{.IMAGE_TAG_{_normalised(image)}}}}}"


def test_artifacts_build_with_the_project_build_script(skaffold: dict) -> None:
    """Each artifact runs tools/skaffold-build.sh for a role that has a Dockerfile."""
    for artifact in skaffold["build"]["artifacts"]:
        script, role = artifact["custom"]["buildCommand"].split()
        assert os.access(chartlib.ROOT / script, os.X_OK), script
        assert (chartlib.ROOT / "images" / role / "Dockerfile").is_file(), role
        assert artifact["image"] == f"emostream/{role}"
        for path in artifact["custom"]["dependencies"]["paths"]:
            assert list(chartlib.ROOT.glob(path)), f"{artifact['image']}: {path} matches nothing"


def test_profiles_use_existing_values_files(skaffold: dict) -> None:
    """kind, minikube and full exist and name values files of the chart."""
    profiles = {p["name"]: p for p in skaffold["profiles"]}
    assert {"kind", "minikube", "full"} <= set(profiles)
    assert profiles["kind"]["activation"] == [{"kubeContext": "kind-emostream"}]
    assert profiles["minikube"]["activation"] == [{"kubeContext": "minikube"}]
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            if patch["path"].endswith("/valuesFiles"):
                for path in patch["value"]:
                    assert (chartlib.ROOT / path).is_file(), path
            elif patch["path"].endswith("/valuesFiles/-"):
                assert (chartlib.ROOT / patch["value"]).is_file(), patch["value"]


def test_port_forwards_name_rendered_services(skaffold: dict) -> None:
    """Each forwarded Service exists with that port in the release skaffold deploys."""
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (release["name"], release["namespace"]) == (chartlib.RELEASE, chartlib.NAMESPACE)
    objects = chartlib.rendered("kind-values.yaml")
    for forward in skaffold["portForward"]:
        service = chartlib.find(objects, "Service", forward["resourceName"])
        assert forward["port"] in {p["port"] for p in service["spec"]["ports"]}
        assert forward["address"] == "127.0.0.1"
