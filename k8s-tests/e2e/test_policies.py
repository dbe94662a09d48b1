"""The chart's NetworkPolicies, enforced by the cluster's policy engine (kube-router here).

A probe pod in the namespace that carries none of the labels the policies admit tries TCP
connections: Redis, Kafka and the aggregation's metrics port must be out of its reach, while the
public ports of ingest and fanout stay open to it. The chart's own pods still reach what they
need (fanout Redis, ingest Kafka). Then the same probe runs with the policies off (the chart's
`networkPolicy.enabled=false` and the harness broker's policy deleted) and must reach
everything, so the check is shown able to fail; the policies are restored afterwards.

Ingest and fanout serve /metrics on their public port for now, so that port is open to the
probe by design; it is not in the blocked list.
"""

import json
import textwrap
from collections.abc import Iterator

import pytest
from clusterlib import CHART, FULLNAME, Cluster, Progress, kafka_manifest, version

PROBE = "policy-probe"
REDIS = f"{FULLNAME}-redis:6379"
KAFKA = "kafka:9092"
AGGREGATE_METRICS = f"{FULLNAME}-aggregate:9108"
PUBLIC = [f"{FULLNAME}-ingest:8000", f"{FULLNAME}-fanout:8080"]
BLOCKED = [REDIS, KAFKA, AGGREGATE_METRICS]
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


def _pod_of(cluster: Cluster, component: str) -> str:
    pods = cluster.get("pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert running, f"no running {component} pod"
    return str(running[0]["metadata"]["name"])


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
    """With the chart's default policies, the probe reaches the public ports only; the chart's
    pods reach Redis and Kafka; with the policies off, the probe reaches everything."""
    seen: dict[str, str] = {}

    def probe_sees(want_open: set[str]) -> bool:
        seen.clear()
        seen.update(_connect(cluster, probe, PUBLIC + BLOCKED))
        return {t for t, state in seen.items() if state == "open"} == want_open

    # The engine applies a policy change within seconds, not at once.
    cluster.wait(lambda: f"only the public ports open to the probe: {seen}",
                 lambda: probe_sees(set(PUBLIC)), 60, interval_s=3)  # fmt: skip
    progress.say(f"policies on, unlabelled probe: {seen}")
    allowed = {
        **_connect(cluster, _pod_of(cluster, "fanout"), [REDIS]),
        **_connect(cluster, _pod_of(cluster, "ingest"), [KAFKA]),
    }
    assert set(allowed.values()) == {"open"}, f"the chart's own pods are kept out: {allowed}"
    progress.say(f"policies on, fanout -> Redis and ingest -> Kafka: {allowed}")

    _policies(cluster, release, enabled=False)
    try:
        cluster.wait(lambda: f"every port open to the probe with policies off: {seen}",
                     lambda: probe_sees(set(PUBLIC + BLOCKED)), 60, interval_s=3)  # fmt: skip
        progress.say(f"policies off, unlabelled probe: {seen}")
    finally:
        _policies(cluster, release, enabled=True)
    cluster.wait(lambda: f"the probe kept out again: {seen}",
                 lambda: probe_sees(set(PUBLIC)), 60, interval_s=3)  # fmt: skip
