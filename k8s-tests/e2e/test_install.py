"""A live install asks the cluster: missing operators fail at once, the API port is found.

Each check is a `helm install --dry-run=server` into the run's namespace: the chart renders
against the real API server (its lookups answer), and nothing is created.
"""

import json
import subprocess

import pytest
import yaml
from clusterlib import CHART, Cluster

pytestmark = pytest.mark.cluster

EXTERNAL_KAFKA = (
    "--set",
    "kafka.provider=external",
    "--set",
    "kafka.external.bootstrapServers=k:9092",
)


def _dry_run(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [cluster.helm, "install", "dry-run", str(CHART), "--namespace", cluster.namespace]
    return subprocess.run(  # noqa: S603 - helm with the test's own arguments
        [*cmd, "--dry-run=server", "--output", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _served(cluster: Cluster, api: str) -> bool:
    return api in cluster.run("kubectl", "api-versions").split()


def test_missing_operators_fail_the_install_naming_what_to_install(cluster: Cluster) -> None:
    """Default values (Strimzi) or the operator mode on a cluster without them: one clear error."""
    if _served(cluster, "kafka.strimzi.io/v1") or _served(cluster, "sparkoperator.k8s.io/v1beta2"):
        pytest.skip("this cluster has Strimzi or the Spark Operator: nothing is missing")
    default = _dry_run(cluster)
    assert default.returncode != 0
    assert "the Strimzi operator (kafka.strimzi.io/v1" in default.stderr, default.stderr
    operator = _dry_run(cluster, *EXTERNAL_KAFKA, "--set", "aggregate.mode=operator")
    assert operator.returncode != 0
    assert "the Kubeflow Spark Operator" in operator.stderr, operator.stderr
    assert "Strimzi" not in operator.stderr


def test_the_driver_may_reach_the_port_the_api_server_listens_on(cluster: Cluster) -> None:
    """The install finds the API server's endpoint port (the EndpointSlice default/kubernetes)."""
    slice_ = json.loads(
        subprocess.run(  # noqa: S603 - kubectl with the test's own arguments
            [cluster.kubectl, "get", "endpointslice", "kubernetes", "-n", "default", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    ports = {p["port"] for p in slice_["ports"]}
    # networkPolicy.apiServerPorts names no port of its own, so the lookup must find them.
    done = _dry_run(cluster, *EXTERNAL_KAFKA, "--set", "networkPolicy.apiServerPorts={443}")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)["manifest"]
    policy = next(
        o
        for o in yaml.safe_load_all(manifest)
        if o and o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-aggregate")
    )
    allowed = {
        p["port"] for rule in policy["spec"]["egress"] if "to" not in rule for p in rule["ports"]
    }
    assert ports <= allowed, (ports, allowed)
