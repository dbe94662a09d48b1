"""What a bare install gets on the clusters users have: minikube's API port, no KEDA.

A live install also refuses values whose operators are missing (Strimzi, the Spark Operator):
that check needs a cluster to ask, so k8s-tests/e2e/test_install.py makes it.
"""

import chartlib
import pytest

pytestmark = pytest.mark.chart

DRIVER_POLICY = f"{chartlib.RELEASE}-aggregate"
WEB_TIERS = (f"{chartlib.RELEASE}-ingest", f"{chartlib.RELEASE}-fanout")
WITHOUT_KEDA = tuple(api for api in chartlib.OPERATOR_APIS if api != "keda.sh/v1alpha1")


def _api_server_ports(objects: list[chartlib.Obj]) -> set[int]:
    """The ports the Spark driver may open to any destination: the API server's."""
    policy = chartlib.find(objects, "NetworkPolicy", DRIVER_POLICY)
    return {
        port["port"]
        for rule in policy["spec"]["egress"]
        if "to" not in rule
        for port in rule["ports"]
    }


@pytest.mark.parametrize(
    ("profile", "port"), [(None, 6443), ("minikube-values.yaml", 8443)], ids=["kind", "minikube"]
)
def test_the_driver_reaches_the_api_server_port_of_the_cluster(
    profile: str | None, port: int
) -> None:
    """The driver's egress allows the API Service (443) and the cluster's own API port."""
    assert {443, port} <= _api_server_ports(chartlib.render(profile))


def test_without_keda_the_autoscalers_are_left_out_and_the_notes_say_so() -> None:
    """No keda.sh API: no ScaledObjects, fixed replica counts, and NOTES names what to do."""
    objects = chartlib.render(api_versions=WITHOUT_KEDA)
    assert not chartlib.of_kind(objects, "ScaledObject")
    for name in WEB_TIERS:
        assert chartlib.find(objects, "Deployment", name)["spec"]["replicas"] == 2
    notes, _ = chartlib.install_notes()
    assert "keda.sh/v1alpha1 is not served by this cluster" in notes
    assert "Install KEDA" in notes


def test_with_keda_the_autoscalers_own_the_replica_counts() -> None:
    """With keda.sh served, each web tier has a ScaledObject and its Deployment sets no replicas."""
    objects = chartlib.render()
    scaled = {
        o["spec"]["scaleTargetRef"]["name"] for o in chartlib.of_kind(objects, "ScaledObject")
    }
    assert scaled == set(WEB_TIERS)
    for name in WEB_TIERS:
        assert "replicas" not in chartlib.find(objects, "Deployment", name)["spec"]
