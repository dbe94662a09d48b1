"""NOTES.txt tells the truth: every object its commands name is one the chart renders."""

import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart


@pytest.mark.parametrize("profile", [None, *chartlib.PROFILES], ids=["default", *chartlib.PROFILES])
def test_notes_commands_name_rendered_objects(profile: str | None) -> None:
    """port-forward targets are rendered Services with that port; waited-for objects exist."""
    notes, objects = chartlib.install_notes(profile)
    values = yaml.safe_load((chartlib.CHART / "values.yaml").read_text())
    if profile:
        overrides = yaml.safe_load((chartlib.CHART / "ci" / profile).read_text())
        grafana = {
            **values["monitoring"]["grafana"],
            **overrides.get("monitoring", {}).get("grafana", {}),
        }
    else:
        grafana = values["monitoring"]["grafana"]
    forwards = re.findall(r"kubectl -n (\S+) port-forward svc/(\S+) (\d+):(\d+)", notes)
    assert len(forwards) >= 3
    for namespace, service, _local, remote in forwards:
        if namespace == grafana["namespace"]:
            assert (service, int(remote)) == (grafana["service"], grafana["port"])
            continue
        assert namespace == chartlib.NAMESPACE
        svc = chartlib.find(objects, "Service", service)
        assert int(remote) in {p["port"] for p in svc["spec"]["ports"]}, service
    for kind, name in re.findall(r"\b(deployment|kafka|job)/([a-z0-9-]+)", notes):
        chartlib.find(
            objects, {"deployment": "Deployment", "kafka": "Kafka", "job": "Job"}[kind], name
        )
    for name in re.findall(r"get sparkapplication (\S+)", notes):
        chartlib.find(objects, "SparkApplication", name)
    assert "curl -N http://127.0.0.1:8080/v1/streams/default/events" in notes
