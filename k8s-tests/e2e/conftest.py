"""Fixtures that install the chart on a real cluster (the one KUBECONFIG names) for one run.

A run gets its own namespace. Into it go a single-node KRaft Kafka broker (kafka.yaml, from the
image images.sh builds, since the chart's Strimzi operator may not be installed) with the chart's
two topics, then the chart itself (`helm install`, kafka.provider=external), and the run waits
until every pod is ready, printing each change as it happens. Tests reach ingest and fanout
through `kubectl port-forward` on 127.0.0.1. At the end the release is uninstalled and the
namespace deleted, whatever the tests did; EMOSTREAM_E2E_KEEP=1 keeps both for a look. The
autoscaling and observability tests also get a Prometheus in the namespace (prometheus.yaml),
with the chart's alert rules, for KEDA and the tests to query.

Environment: KUBECONFIG (required, else every test is skipped), HELM (default
.emostream/bin/helm, else helm on PATH), KUBECTL (default kubectl), EMOSTREAM_E2E_READY_S (how
long the install may take to become ready, default 600), EMOSTREAM_E2E_TIMINGS (a file to write
the run's timings to, as name<TAB>seconds lines; run.sh prints them in its table).
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterlib import (
    CHART,
    CHART_VALUES,
    FULLNAME,
    HERE,
    RELEASE,
    ROOT,
    Cluster,
    Progress,
    kafka_version,
    prometheus_version,
    tool,
    version,
)
from kube_portforward import PortForward
from kubernetes import client as kube
from kubernetes import config

from emostream.client import EmostreamClient


@pytest.fixture(scope="session")
def progress(pytestconfig: pytest.Config) -> Iterator[Progress]:
    """Progress lines and the timings of the run's phases, summed up at the end."""
    p = Progress(pytestconfig)
    yield p
    for name, shown in p.timings.items():
        p.say(f"timing: {name}: {shown}")
    if path := os.environ.get("EMOSTREAM_E2E_TIMINGS"):
        rows = (f"{name}\t{shown}\n" for name, shown in p.timings.items())
        Path(path).write_text("".join(rows))


@pytest.fixture(scope="session")
def cluster(progress: Progress) -> Iterator[Cluster]:
    """A fresh namespace on the KUBECONFIG cluster, deleted at the end of the run."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.skip("KUBECONFIG is not set: these tests need a Kubernetes cluster (docs/e2e.md)")
    config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core = kube.CoreV1Api()
    namespace = f"emostream-e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace(kube.V1Namespace(metadata=kube.V1ObjectMeta(name=namespace)))
    progress.say(f"namespace {namespace} on {kubeconfig}")
    c = Cluster(
        namespace=namespace,
        core=core,
        kubectl=tool("KUBECTL", None, "kubectl"),
        helm=tool("HELM", ROOT / ".emostream" / "bin" / "helm", "helm"),
        progress=progress,
    )
    try:
        yield c
    finally:
        if os.environ.get("EMOSTREAM_E2E_KEEP") == "1":
            progress.say(f"keeping namespace {namespace} (EMOSTREAM_E2E_KEEP=1)")
        else:
            progress.say(f"deleting namespace {namespace}")
            core.delete_namespace(namespace)


@pytest.fixture(scope="session")
def kafka(cluster: Cluster, progress: Progress) -> str:
    """The in-cluster broker with the chart's topics; returns its bootstrap address."""
    start = progress.elapsed()
    manifest = (HERE / "kafka.yaml").read_text()
    manifest = manifest.replace("KAFKA_VERSION", kafka_version())
    manifest = manifest.replace("EMOSTREAM_VERSION", version())
    cluster.run("kubectl", "apply", "-f", "-", stdin=manifest)
    progress.say("applied kafka.yaml; waiting for the broker and its topics")

    def topics_made() -> bool:
        return bool(cluster.get("job", "kafka-topics")["status"].get("succeeded"))

    cluster.wait("the Kafka topics to be created", topics_made, 300, interval_s=2)
    progress.mark("kafka ready with topics", start)
    return f"kafka.{cluster.namespace}.svc:9092"


def _chart_values(kafka: str) -> list[str]:
    """The values every helm command of the run gives the chart."""
    return [
        *(arg for f in CHART_VALUES for arg in ("-f", str(f))),
        "--set", f"fullnameOverride={FULLNAME}",
        "--set", f"kafka.external.bootstrapServers={kafka}",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def alert_rules(cluster: Cluster, kafka: str) -> list[dict[str, Any]]:
    """The rule groups of the chart's PrometheusRule, rendered for this install.

    The Prometheus Operator is not installed, so the chart is rendered as if its API were
    served (monitoring enabled, as in production), and the groups go to Prometheus as a file.
    """
    rendered = cluster.run(
        "helm", "template", RELEASE, str(CHART), *_chart_values(kafka),
        "--api-versions", "monitoring.coreos.com/v1", "--set", "monitoring.enabled=true",
        "--show-only", "templates/monitoring/prometheusrule.yaml",
    )  # fmt: skip
    groups: list[dict[str, Any]] = yaml.safe_load(rendered)["spec"]["groups"]
    return groups


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster, alert_rules: list[dict[str, Any]], progress: Progress) -> str:
    """Prometheus scraping the namespace with the chart's alert rules (prometheus.yaml).

    Returns its address inside the cluster, the one KEDA is given.
    """
    start = progress.elapsed()
    rules = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "prometheus-rules"},
        "data": {"emostream.yml": yaml.safe_dump({"groups": alert_rules})},
    }
    cluster.run("kubectl", "apply", "-f", "-", stdin=yaml.safe_dump(rules))
    manifest = (HERE / "prometheus.yaml").read_text()
    manifest = manifest.replace("PROMETHEUS_VERSION", prometheus_version())
    cluster.run("kubectl", "apply", "-f", "-", stdin=manifest)
    cluster.run("kubectl", "rollout", "status", "deployment/prometheus", "--timeout=300s")
    progress.mark("prometheus ready", start)
    return f"http://prometheus.{cluster.namespace}.svc:9090"


@pytest.fixture(scope="session")
def prometheus_url(cluster: Cluster, prometheus: str) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to Prometheus, for the tests' own queries."""
    with PortForward(cluster.kubectl, cluster.namespace, "svc/prometheus", 9090, "/-/ready") as pf:
        yield pf.url


@pytest.fixture(scope="session")
def release(cluster: Cluster, kafka: str, progress: Progress) -> Iterator[str]:
    """The chart installed into the run's namespace and ready; uninstalled at the end."""
    start = progress.elapsed()
    progress.say(f"helm install {RELEASE} (kind-values.yaml + e2e values.yaml)")
    try:
        cluster.run("helm", "install", RELEASE, str(CHART), *_chart_values(kafka))
        cluster.wait_ready(float(os.environ.get("EMOSTREAM_E2E_READY_S", "600")))
        progress.mark("helm install to every pod ready", start)
        yield RELEASE
    finally:
        if os.environ.get("EMOSTREAM_E2E_KEEP") != "1":
            progress.say(f"helm uninstall {RELEASE}")
            try:
                cluster.run("helm", "uninstall", RELEASE, "--wait", "--timeout", "120s")
            except RuntimeError as exc:
                progress.say(f"uninstall failed (the namespace is deleted anyway): {exc}")


@pytest.fixture(scope="session")
def ingest_url(cluster: Cluster, release: str) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to the ingest Service."""
    with PortForward(cluster.kubectl, cluster.namespace, f"svc/{FULLNAME}-ingest", 8000) as pf:
        yield pf.url


@pytest.fixture(scope="session")
def fanout_forward(cluster: Cluster, release: str) -> Iterator[PortForward]:
    """The port-forward to the fanout Service, re-established when its pod goes away."""
    with PortForward(cluster.kubectl, cluster.namespace, f"svc/{FULLNAME}-fanout", 8080) as pf:
        yield pf


@pytest.fixture(scope="session")
def fanout_url(fanout_forward: PortForward) -> str:
    """http://127.0.0.1:<port> forwarded to the fanout Service."""
    return fanout_forward.url


@pytest.fixture(scope="session")
def client(ingest_url: str, fanout_url: str) -> Iterator[EmostreamClient]:
    """An SDK client on the two port-forwards."""
    with EmostreamClient(ingest_url=ingest_url, fanout_url=fanout_url) as c:
        yield c


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Every test here needs the cluster."""
    for item in items:
        item.add_marker(pytest.mark.cluster)
