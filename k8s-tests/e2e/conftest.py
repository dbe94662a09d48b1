"""Fixtures that install the chart on a real cluster (the one KUBECONFIG names) for one run.

A run gets its own namespace. Into it go a single-node KRaft Kafka broker (kafka.yaml, from the
image images.sh builds, since the chart's Strimzi operator may not be installed), secured with
TLS, SCRAM users and ACLs made for the run (brokerlib.py), with the chart's two topics, then the
chart itself (`helm install`, kafka.provider=external over SASL_SSL), and the run waits
until every pod is ready, printing each change as it happens. Tests reach ingest and fanout
through `kubectl port-forward` on 127.0.0.1. At the end the release is uninstalled and the
namespace deleted, whatever the tests did; EMOSTREAM_E2E_KEEP=1 keeps both for a look. The
chart's monitors and alert rules go to the Prometheus the Operator runs in namespace
monitoring, which KEDA and the tests query.

Environment: KUBECONFIG (required, else every test is skipped), HELM (default
.emostream/bin/helm, else helm on PATH), KUBECTL (default kubectl), EMOSTREAM_E2E_READY_S (how
long the install may take to become ready, default 600), EMOSTREAM_E2E_TIMINGS (a file to write
the run's timings to, as name<TAB>seconds lines; run.sh prints them in its table).
"""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from clusterlib import (
    CHART,
    CHART_VALUES,
    FULLNAME,
    HERE,
    RELEASE,
    ROOT,
    Cluster,
    Progress,
    admin_token_of,
    open_stream,
    tool,
)
from kube_portforward import PortForward
from kubernetes import client as kube
from kubernetes import config

from emostream.client import EmostreamClient

#: Where k8s-tests/cluster/install-monitoring.sh runs the Operator and its Prometheus.
PROMETHEUS_NAMESPACE = "monitoring"


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
def kafka(cluster: Cluster, progress: Progress) -> None:
    """The in-cluster broker (SASL_SSL on kafka.<namespace>.svc:9093) with the chart's users,
    their ACLs and topics."""
    start = progress.elapsed()
    progress.say("applying the broker's Secrets and kafka.yaml; waiting for users, ACLs, topics")
    cluster.start_kafka()
    progress.mark("kafka ready: users, ACLs, topics", start)


def _chart_values() -> list[str]:
    """The values every helm command of the run gives the chart (values.yaml names the broker
    kafka.yaml runs, SASL_SSL, and the Secret brokerlib.py makes with the role users)."""
    return [
        *(arg for f in CHART_VALUES for arg in ("-f", str(f))),
        "--set", f"fullnameOverride={FULLNAME}",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def prometheus_url(cluster: Cluster, release: str) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to the Operator's Prometheus, for the tests' queries."""
    with PortForward(
        cluster.kubectl, PROMETHEUS_NAMESPACE, "svc/prometheus-operated", 9090, "/-/ready"
    ) as pf:
        yield pf.url


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster, prometheus_url: str, progress: Progress) -> str:
    """The Operator's Prometheus once it scrapes every target of the chart's ServiceMonitors and
    PodMonitors in the run's namespace; returns its address inside the cluster, for KEDA."""
    start = progress.elapsed()
    monitors = [
        m for kind in ("servicemonitors", "podmonitors") for m in cluster.get(kind)["items"]
    ]
    assert monitors, "the chart made no ServiceMonitor or PodMonitor (monitoring.enabled)"
    # The Operator names each scrape pool serviceMonitor/<namespace>/<name>/<endpoint>.
    jobs = {
        f"{m['kind'][0].lower()}{m['kind'][1:]}/{cluster.namespace}/{m['metadata']['name']}"
        for m in monitors
    }
    pools: set[str] = set()

    def scraping_all() -> bool:
        reply = requests.get(f"{prometheus_url}/api/v1/targets?state=active", timeout=10)
        pools.clear()
        for target in reply.json()["data"]["activeTargets"]:
            if target["health"] == "up":
                pools.add(target["scrapePool"].rsplit("/", 1)[0])
        return jobs <= pools

    cluster.wait(
        lambda: f"Prometheus to scrape {sorted(jobs)}; up so far: {sorted(pools & jobs)}",
        scraping_all,
        300,
        interval_s=5,
    )
    progress.mark("Operator's Prometheus scraping the release", start)
    return f"http://prometheus-operated.{PROMETHEUS_NAMESPACE}.svc:9090"


@pytest.fixture(scope="session")
def alert_rules(cluster: Cluster, release: str) -> list[dict[str, Any]]:
    """The rule groups of the PrometheusRule the chart installed."""
    rules = cluster.get("prometheusrules")["items"]
    assert len(rules) == 1, f"expected the chart's one PrometheusRule, found {len(rules)}"
    groups: list[dict[str, Any]] = rules[0]["spec"]["groups"]
    return groups


@pytest.fixture(scope="session")
def release(cluster: Cluster, kafka: None, progress: Progress) -> Iterator[str]:
    """The chart installed into the run's namespace and ready; uninstalled at the end."""
    start = progress.elapsed()
    progress.say(f"helm install {RELEASE} (kind-values.yaml + e2e values.yaml)")
    try:
        cluster.run("helm", "install", RELEASE, str(CHART), *_chart_values())
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


@pytest.fixture
def autoscaling(
    cluster: Cluster,
    prometheus: str,
    ingest_forward: PortForward,
    fanout_forward: PortForward,
    progress: Progress,
) -> Iterator[None]:
    """Autoscaling on (autoscaling-values.yaml: KEDA, reading the Operator's Prometheus) for one
    test, off afterwards, so every other test sees the install it expects."""
    try:
        cluster.run("kubectl", "get", "crd", "scaledobjects.keda.sh")
    except RuntimeError:
        pytest.skip("KEDA is not installed on this cluster (docs/e2e.md: install KEDA first)")
    cluster.run(
        "helm", "upgrade", RELEASE, str(CHART), "--reuse-values",
        "-f", str(HERE / "autoscaling-values.yaml"),
        "--set", f"autoscaling.prometheus.serverAddress={prometheus}",
    )  # fmt: skip
    try:
        for tier in ("ingest", "fanout"):
            cluster.run(
                "kubectl", "wait", "--for=condition=Ready", "--timeout=120s",
                f"scaledobject/{FULLNAME}-{tier}",
            )  # fmt: skip
        progress.say("autoscaling on: ScaledObjects ready")
        yield
    finally:
        # The autoscalers owned .spec.replicas (server-side apply), and one may still scale
        # until KEDA has removed its HPA: the chart takes the field back, once more after that.
        off = (
            "helm", "upgrade", RELEASE, str(CHART), "--reuse-values", "--force-conflicts",
            "--set", "autoscaling.enabled=false",
        )  # fmt: skip
        cluster.run(*off)
        cluster.wait(
            "the autoscalers' HPAs to be gone",
            lambda: not cluster.run("kubectl", "get", "hpa", "-o", "name").strip(),
            120,
            interval_s=2,
        )
        cluster.run(*off)
        # A scale-down may have removed the pods the forwards were on: they move to the next.
        for forward in (ingest_forward, fanout_forward):
            forward.wait_answering()


@pytest.fixture(scope="session")
def ingest_forward(cluster: Cluster, release: str) -> Iterator[PortForward]:
    """The port-forward to the ingest Service, re-established when its pod goes away."""
    with PortForward(cluster.kubectl, cluster.namespace, f"svc/{FULLNAME}-ingest", 8000) as pf:
        yield pf


@pytest.fixture(scope="session")
def ingest_url(ingest_forward: PortForward) -> str:
    """http://127.0.0.1:<port> forwarded to the ingest Service."""
    return ingest_forward.url


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
def admin_token(cluster: Cluster, release: str) -> str:
    """The admin token of the stream registry, from the Secret the chart made for it."""
    return admin_token_of(cluster, FULLNAME)


@pytest.fixture(scope="session")
def client(ingest_url: str, fanout_url: str, admin_token: str) -> Iterator[EmostreamClient]:
    """An SDK client on the two port-forwards, with the admin token."""
    with EmostreamClient(
        ingest_url=ingest_url, fanout_url=fanout_url, admin_token=admin_token
    ) as c:
        yield c


@pytest.fixture(scope="session")
def live_stream(client: EmostreamClient) -> Callable[[str], str]:
    """Makes a fresh stream live in the chart's closed registry: ``live_stream("e2e")``."""

    def new(prefix: str) -> str:
        stream = f"{prefix}-{uuid.uuid4().hex[:8]}"
        open_stream(client, stream)
        return stream

    return new


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Every test here needs the cluster."""
    for item in items:
        item.add_marker(pytest.mark.cluster)
