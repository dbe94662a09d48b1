"""The chart's NetworkPolicies, enforced by the cluster's policy engine (kube-router here).

A probe pod in the namespace that carries none of the labels the policies admit tries TCP
connections: Redis, Kafka and every metrics port (the aggregation's through its Service,
ingest's and fanout's on their pods: the container ports named ``metrics``) must be out of its
reach, while the public ports of ingest and fanout stay open to it, and answer 404 for /metrics.
The chart's own pods still reach what they need (fanout Redis, ingest Kafka). Then the same
probe runs with the policies off (the chart's `networkPolicy.enabled=false` and the harness
broker's policy deleted) and must reach everything, ingest's and fanout's metrics ports
answering /metrics, so the check is shown able to fail; the policies are restored afterwards.
"""

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from brokerlib import BOOTSTRAP
from clusterlib import CHART, FULLNAME, Cluster, Progress, kafka_manifest, version

PROBE = "policy-probe"
REDIS = f"{FULLNAME}-redis:6379"
KAFKA = BOOTSTRAP
AGGREGATE_METRICS = f"{FULLNAME}-aggregate:9108"
PUBLIC = [f"{FULLNAME}-ingest:8000", f"{FULLNAME}-fanout:8080"]
BLOCKED = [REDIS, KAFKA, AGGREGATE_METRICS]
#: The tiers whose pods serve /metrics on a port of their own, beside the public one.
WEB_TIERS = ("ingest", "fanout")
# A dropped SYN shows as a timeout, a rejected one as refused: either way no connection.
CONNECT = textwrap.dedent("""
    import json, socket, sys
    result = {}
    for target in sys.argv[1:]:
        host, port = target.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            result[target] = "open"
        except OSError as exc:
            result[target] = f"closed ({exc.__class__.__name__})"
    print(json.dumps(result))
""")
#: The HTTP status of each URL, or why there was none.
STATUS = textwrap.dedent("""
    import json, sys, urllib.error, urllib.request
    result = {}
    for url in sys.argv[1:]:
        try:
            result[url] = urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as exc:
            result[url] = exc.code
        except OSError as exc:
            result[url] = f"no answer ({exc.__class__.__name__})"
    print(json.dumps(result))
""")


def _pod_manifest() -> dict[str, object]:
    """A pod with no label any policy admits, on the ingest image (it has Python)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": PROBE, "labels": {"e2e-probe": "true"}},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": f"emostream/ingest:{version()}",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


@pytest.fixture
def probe(cluster: Cluster, release: str) -> Iterator[str]:
    """The probe pod, running; deleted afterwards."""
    cluster.run("kubectl", "apply", "-f", "-", stdin=json.dumps(_pod_manifest()))
    try:
        cluster.run("kubectl", "wait", "--for=condition=Ready", f"pod/{PROBE}", "--timeout=120s")
        yield PROBE
    finally:
        cluster.run("kubectl", "delete", "pod", PROBE, "--wait=false")


def _connect(cluster: Cluster, pod: str, targets: list[str]) -> dict[str, str]:
    """Which of ``targets`` (host:port) ``pod`` can open a TCP connection to."""
    out = cluster.run("kubectl", "exec", pod, "--", "python", "-c", CONNECT, *targets)
    result: dict[str, str] = json.loads(out)
    return result


def _status(cluster: Cluster, pod: str, urls: list[str]) -> dict[str, int | str]:
    """The HTTP status ``pod`` gets for each of ``urls``."""
    out = cluster.run("kubectl", "exec", pod, "--", "python", "-c", STATUS, *urls)
    result: dict[str, int | str] = json.loads(out)
    return result


def _running_pod(cluster: Cluster, component: str) -> dict[str, Any]:
    """A running pod of ``component``, not one on its way out."""
    pods = cluster.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    running = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    assert running, f"no running {component} pod"
    pod: dict[str, Any] = running[0]
    return pod


def _pod_of(cluster: Cluster, component: str) -> str:
    return str(_running_pod(cluster, component)["metadata"]["name"])


def _metrics_ports(cluster: Cluster) -> list[str]:
    """ip:port of the container port named metrics on a pod of each web tier (no public
    Service reaches them)."""
    found = []
    for tier in WEB_TIERS:
        pod = _running_pod(cluster, tier)
        ports = [
            port["containerPort"]
            for c in pod["spec"]["containers"]
            for port in c.get("ports", [])
            if port.get("name") == "metrics"
        ]
        assert ports, f"{tier}'s pod has no container port named metrics"
        found.append(f"{pod['status']['podIP']}:{ports[0]}")
    return found


def _policies(cluster: Cluster, release: str, enabled: bool) -> None:
    """The chart's policies and the harness broker's on or off."""
    cluster.run(
        "helm", "upgrade", release, str(CHART), "--reuse-values",
        "--set", f"networkPolicy.enabled={str(enabled).lower()}",
    )  # fmt: skip
    if enabled:
        cluster.run("kubectl", "apply", "-f", "-", stdin=kafka_manifest())
    else:
        cluster.run("kubectl", "delete", "networkpolicy", "kafka")


def test_policies_keep_an_unlabelled_pod_out_and_let_the_chart_in(
    cluster: Cluster, release: str, probe: str, progress: Progress
) -> None:
    """With the chart's default policies, the probe reaches the public ports only, which answer
    404 for /metrics; the chart's pods reach Redis and Kafka; with the policies off, the probe
    reaches everything."""
    seen: dict[str, str] = {}
    public_metrics = [f"http://{address}/metrics" for address in PUBLIC]

    def probe_sees(policies_on: bool) -> bool:
        """Whether the probe reaches the public ports only (policies on) or everything."""
        # Pods may have been replaced (an upgrade): their metrics ports are looked up anew.
        targets = PUBLIC + BLOCKED + _metrics_ports(cluster)
        seen.clear()
        seen.update(_connect(cluster, probe, targets))
        want = set(PUBLIC) if policies_on else set(targets)
        return {t for t, state in seen.items() if state == "open"} == want

    # The engine applies a policy change within seconds, not at once.
    cluster.wait(lambda: f"only the public ports open to the probe: {seen}",
                 lambda: probe_sees(policies_on=True), 60, interval_s=3)  # fmt: skip
    progress.say(f"policies on, unlabelled probe: {seen}")
    statuses = _status(cluster, probe, public_metrics)
    assert set(statuses.values()) == {404}, f"/metrics on a public Service: {statuses}"
    progress.say(f"policies on, /metrics through the public Services: {statuses}")
    allowed = {
        **_connect(cluster, _pod_of(cluster, "fanout"), [REDIS]),
        **_connect(cluster, _pod_of(cluster, "ingest"), [KAFKA]),
    }
    assert set(allowed.values()) == {"open"}, f"the chart's own pods are kept out: {allowed}"
    progress.say(f"policies on, fanout -> Redis and ingest -> Kafka: {allowed}")

    _policies(cluster, release, enabled=False)
    try:
        cluster.wait(lambda: f"every port open to the probe with policies off: {seen}",
                     lambda: probe_sees(policies_on=False), 60, interval_s=3)  # fmt: skip
        progress.say(f"policies off, unlabelled probe: {seen}")
        metrics_urls = [f"http://{address}/metrics" for address in _metrics_ports(cluster)]
        statuses = _status(cluster, probe, metrics_urls)
        assert set(statuses.values()) == {200}, f"/metrics on the metrics ports: {statuses}"
        progress.say(f"policies off, /metrics on the metrics ports: {statuses}")
    finally:
        _policies(cluster, release, enabled=True)
    cluster.wait(lambda: f"the probe kept out again: {seen}",
                 lambda: probe_sees(policies_on=True), 60, interval_s=3)  # fmt: skip
