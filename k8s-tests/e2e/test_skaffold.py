"""The dev loop the layout promises: `skaffold run -p kind` builds, deploys, and a swarm arrives.

skaffold (built at a pinned version by k8s-tests/cluster/build-binaries.sh) builds the four
images with tools/skaffold-build.sh, loads them into the kind cluster and installs the chart
with them, as `skaffold dev -p kind` does for a developer. The run adds the profile e2e (the
harness's broker and Redis images, k8s-tests/e2e/values.yaml) and its own namespace, with a
broker of its own from kafka.yaml. Reactions posted through the new install must come back as
exact counts on its feed.

Needs the offline kind cluster (its context, kind-<cluster>): skipped, saying so, elsewhere.
"""

import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterlib import ROOT, Cluster, Progress, admin_token_of, open_stream, tool, version
from kube_portforward import PortForward
from kubernetes import client as kube
from tests.support.feeds import SwarmCollector
from tests.support.waiting import wait_until

from emostream.client import EmostreamClient

#: skaffold.yaml's release: its objects are named emostream-<component>.
RELEASE = "emostream"
#: The stream the skaffold install is tried with.
STREAM = "e2e-skaffold"


@functools.cache
def _cluster_env() -> dict[str, str]:
    """k8s-tests/cluster/env.sh's settings (the cluster's name, where skaffold and kind are)."""
    script = f"set -a && source {ROOT / 'k8s-tests' / 'cluster' / 'env.sh'} && env -0"
    out = subprocess.run(  # noqa: S603 - bash sourcing the repository's own env.sh
        ["/bin/bash", "-c", script], capture_output=True, check=True
    ).stdout.decode()
    return dict(line.split("=", 1) for line in out.split("\0") if "=" in line)


@pytest.fixture
def skaffold_cluster(cluster: Cluster, progress: Progress) -> Iterator[Cluster]:
    """A namespace of its own with a broker, for skaffold's release; deleted afterwards."""
    settings = _cluster_env()
    context = cluster.run("kubectl", "config", "current-context").strip()
    if context != f"kind-{settings['CLUSTER_NAME']}":
        pytest.skip(f"skaffold's kind profile needs the kind cluster; the context is {context}")
    namespace = f"{cluster.namespace}-skaffold"
    cluster.core.create_namespace(kube.V1Namespace(metadata=kube.V1ObjectMeta(name=namespace)))
    there = Cluster(namespace, cluster.core, cluster.kubectl, cluster.helm, progress)
    try:
        there.start_kafka(RELEASE)
        yield there
    finally:
        if os.environ.get("EMOSTREAM_E2E_KEEP") != "1":
            cluster.core.delete_namespace(namespace)


def _skaffold(there: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """skaffold with kind and helm on its PATH, its output shown as it comes."""
    settings = _cluster_env()
    skaffold = os.environ.get("SKAFFOLD") or settings["CLUSTER_SKAFFOLD"]
    if not Path(skaffold).exists():
        pytest.skip(f"no skaffold at {skaffold}: run k8s-tests/cluster/build-binaries.sh skaffold")
    helm = tool("HELM", ROOT / ".emostream" / "bin" / "helm", "helm")
    path = os.pathsep.join(
        [str(Path(settings["CLUSTER_KIND"]).parent), str(Path(helm).parent), os.environ["PATH"]]
    )
    env = {**os.environ, "PATH": path, "SKAFFOLD_UPDATE_CHECK": "false"}
    cmd = [skaffold, *args, "--namespace", there.namespace, "--interactive=false"]
    return subprocess.run(  # noqa: S603 - skaffold with the test's own arguments
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False
    )


def test_skaffold_run_builds_deploys_and_a_swarm_arrives(
    skaffold_cluster: Cluster, progress: Progress
) -> None:
    """`skaffold run -p kind,e2e`, then reactions posted through it arrive as exact counts."""
    there = skaffold_cluster
    start = progress.elapsed()
    done = _skaffold(there, "run", "-p", "kind,e2e")
    for line in (done.stdout + done.stderr).splitlines()[-25:]:
        progress.say(f"  skaffold: {line}")
    assert done.returncode == 0, f"skaffold run failed:\n{done.stdout}{done.stderr}"
    progress.mark("skaffold run -p kind,e2e (build, load, helm install)", start)
    try:
        images = {
            c["image"]
            for d in there.get("deployments")["items"]
            for c in d["spec"]["template"]["spec"]["containers"]
        }
        # skaffold tags by the images' inputs (tagPolicy inputDigest), not the project version.
        assert images, "skaffold deployed nothing"
        assert all(not i.endswith(f":{version()}") for i in images), images
        _a_swarm_arrives(there, progress)
    finally:
        _skaffold(there, "delete", "-p", "kind,e2e")


def _a_swarm_arrives(there: Cluster, progress: Progress) -> None:
    ns, kubectl = there.namespace, there.kubectl
    with (
        PortForward(kubectl, ns, f"svc/{RELEASE}-ingest", 8000) as ingest,
        PortForward(kubectl, ns, f"svc/{RELEASE}-fanout", 8080) as fanout,
        EmostreamClient(
            ingest_url=ingest.url,
            fanout_url=fanout.url,
            admin_token=admin_token_of(there, RELEASE),
        ) as client,
    ):
        open_stream(client, STREAM)
        with SwarmCollector(client, STREAM, timeout=60, max_failures=None) as feed:
            start = progress.elapsed()
            reactions = [{"user_id": f"s{i}", "emoji": "🎉"} for i in range(120)]
            assert client.send(STREAM, reactions) == 120
            wait_until("exact counts", lambda: feed.totals() == {"🎉": 120}, 300, interval_s=1)
            progress.mark("skaffold's install: first swarm with exact counts", start)
