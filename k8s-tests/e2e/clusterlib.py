"""The run's view of the cluster: names, tools, progress lines, readiness, the images' tags.

conftest.py builds its fixtures from these; the tests import them from here (a module name of
its own, so it never clashes with another directory's conftest).
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from brokerlib import (
    ADMIN,
    CLIENT_PRELUDE,
    SETUP,
    SETUP_WAIT_S,
    EnvValue,
    Identity,
    client_env,
    client_volume,
    env_var,
    secrets_manifest,
    setup_env,
)
from kubernetes import client
from tests.support.waiting import WaitTimeoutError, wait_until

from emostream.client import EmostreamClient

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHART = ROOT / "charts" / "emostream"
RELEASE = "e2e"
CHART_VALUES = [CHART / "ci" / "kind-values.yaml", HERE / "values.yaml"]
# Object names are <fullname>-<component>; a fixed fullname keeps them independent of RELEASE.
FULLNAME = "emostream"
#: The Job that creates the broker's users, ACLs and topics (brokerlib.SETUP).
SETUP_JOB = "kafka-setup"
#: How often a wait on the cluster asks again (each ask is a kubectl or HTTP round trip).
POLL_S = 0.5


def version() -> str:
    """The project's version: the tag of its images."""
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise RuntimeError("no version in pyproject.toml")


def kafka_version() -> str:
    """The Kafka version of the jars cached for the local stack: the broker image's tag."""
    jars = sorted((ROOT / ".emostream" / "jars").glob("kafka-*"))
    if not jars:
        raise RuntimeError("no Kafka jars in .emostream/jars/: run k8s-tests/e2e/images.sh")
    return jars[-1].name.removeprefix("kafka-")


def kafka_manifest(release: str = RELEASE) -> str:
    """kafka.yaml: the broker (its start script, StatefulSet and Service) and its NetworkPolicy,
    admitting ``release``'s Kafka clients."""
    manifest = (HERE / "kafka.yaml").read_text()
    manifest = manifest.replace("KAFKA_VERSION", kafka_version())
    return manifest.replace("RELEASE", release)


def python_job(
    name: str,
    script: str,
    env: Mapping[str, EnvValue],
    *,
    cpu: str = "100m",
    kafka: Identity = ADMIN,
) -> str:
    """A Job manifest running ``script`` with the ingest image's Python (confluent-kafka and
    the emostream package), ``env`` in its environment, labelled so that kafka.yaml's
    NetworkPolicy admits it, as restricted as the chart's own pods.

    It is a Kafka client of the run's broker signed in as ``kafka`` (the admin unless told):
    the contract's ``EMOSTREAM_KAFKA_*`` variables, the CA mounted, and ``KAFKA`` (librdkafka's
    connection settings) defined before ``script`` runs (brokerlib.CLIENT_PRELUDE).
    """
    ca_volume, ca_mount = client_volume()
    variables = {**client_env(kafka), **env}
    container = {
        "name": "main",
        "image": f"emostream/ingest:{version()}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-u", "-c", CLIENT_PRELUDE + script],
        "env": [env_var(k, v) for k, v in variables.items()],
        "volumeMounts": [ca_mount],
        "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"e2e-kafka-client": "true"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [ca_volume],
                },
            },
        },
    }
    return yaml.safe_dump(job)


def tool(env: str, local: Path | None, name: str) -> str:
    """The program named by ``env``, else ``local`` if it exists, else ``name`` on PATH."""
    found = os.environ.get(env)
    if not found and local is not None and local.exists():
        found = str(local)
    found = found or shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: set {env} or put it on PATH")
    return found


#: How long a stream opened through one ingest pod takes to be live on every ingest and fanout
#: pod: the chart's registry_refresh_s (1 s), twice over.
REGISTRY_SPREAD_S = 2.0


def admin_token_of(cluster: "Cluster", fullname: str) -> str:
    """The admin token in the Secret the chart made for release ``fullname``."""
    secret = cluster.get("secret", f"{fullname}-admin")
    return base64.b64decode(secret["data"]["admin-token"]).decode()


def open_stream(sdk: EmostreamClient, stream: str) -> None:
    """Open ``stream`` in the chart's closed registry, and wait until every pod knows it."""
    sdk.open_stream(stream)
    time.sleep(REGISTRY_SPREAD_S)


def open_sse_feeds(fanout_url: str, stream: str, count: int) -> list[socket.socket]:
    """``count`` SSE requests for ``stream``, each answered 200 and left open, never read.

    Each is one connection on fanout (its gauge, its autoscaler signal), and fanout writes every
    swarm to each; the few kilobytes a test sends fit the sockets' buffers unread.
    """
    address = urlsplit(fanout_url)
    request = (
        f"GET /v1/streams/{stream}/events HTTP/1.1\r\nHost: {address.netloc}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    feeds = []
    for _ in range(count):
        feed = socket.create_connection((address.hostname, address.port), timeout=10)
        feeds.append(feed)
        feed.sendall(request)
        head = feed.recv(4096)
        if not head.startswith(b"HTTP/1.1 200"):
            for f in feeds:
                f.close()
            raise AssertionError(f"fanout refused a feed: {head[:200]!r}")
    return feeds


class Progress:
    """Lines on the terminal with the seconds since the run began (pytest hides fixture output)."""

    def __init__(self, pytestconfig: pytest.Config) -> None:
        self._reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        self._capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        self._start = time.monotonic()
        #: The run's figures for the timings table: name -> shown value ("12.3 s", "41,000/s").
        self.timings: dict[str, str] = {}

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def say(self, message: str) -> None:
        line = f"[{self.elapsed():5.0f}s] {message}"
        if self._reporter is None or self._capture is None:
            sys.stderr.write(line + "\n")
            return
        # Fixture output is captured like a test's; progress must show while the run waits.
        with self._capture.global_and_fixture_disabled():
            self._reporter.write_line(line)

    def mark(self, name: str, since: float) -> None:
        """Record how long ``name`` took (since ``since``, an :meth:`elapsed` value)."""
        self.seconds(name, self.elapsed() - since)

    def seconds(self, name: str, seconds: float) -> None:
        """Record that ``name`` took ``seconds``."""
        self.figure(name, f"{seconds:.1f} s")

    def figure(self, name: str, shown: str) -> None:
        """Record a figure of the run as it is to be shown (a rate, a count)."""
        self.timings[name] = shown
        self.say(f"{name}: {shown}")


@dataclass
class Cluster:
    """The run's namespace on the cluster, with the tools that reach it."""

    namespace: str
    core: client.CoreV1Api
    kubectl: str
    helm: str
    progress: Progress

    def run(self, *args: str, stdin: str | None = None, timeout_s: float = 300) -> str:
        """Run kubectl or helm (the first argument) against the run's namespace; fail loudly."""
        tool = self.kubectl if args[0] == "kubectl" else self.helm
        # The namespace goes first: whatever follows a "--" belongs to the command run in a pod.
        cmd = [tool, "--namespace", self.namespace, *args[1:]]
        done = subprocess.run(  # noqa: S603 - kubectl and helm with the run's own arguments
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def get(self, *what: str) -> Any:
        """``kubectl get ... -o json``, parsed."""
        return json.loads(self.run("kubectl", "get", *what, "-o", "json"))

    def pods_summary(self) -> dict[str, str]:
        """Each pod's name with its phase, readiness and restarts, e.g. 'Running 1/1'."""
        out: dict[str, str] = {}
        for pod in self.get("pods")["items"]:
            statuses = pod["status"].get("containerStatuses", [])
            ready = sum(1 for s in statuses if s["ready"])
            waiting = [s["state"]["waiting"]["reason"] for s in statuses if "waiting" in s["state"]]
            restarts = sum(s["restartCount"] for s in statuses)
            text = f"{pod['status']['phase']} {ready}/{len(pod['spec']['containers'])}"
            if waiting:
                text += f" {','.join(waiting)}"
            if restarts:
                text += f" restarts={restarts}"
            out[pod["metadata"]["name"]] = text
        return out

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until every pod is ready or has succeeded, printing each pod's changes."""
        seen: dict[str, str] = {}
        pending: list[str] = []

        def all_ready() -> bool:
            nonlocal seen
            now = self.pods_summary()
            for name, state in sorted(now.items()):
                if seen.get(name) != state:
                    self.progress.say(f"  {name}: {state}")
            seen = now
            pending[:] = [
                n for n, s in now.items() if not s.startswith("Succeeded") and not _all_ready(s)
            ]
            return bool(now) and not pending

        self.wait(
            lambda: f"every pod to be ready; not yet: {', '.join(pending)}",
            all_ready,
            timeout_s,
            interval_s=2,
        )

    def wait(
        self,
        what: str | Callable[[], str],
        ready: Callable[[], object],
        timeout_s: float,
        *,
        interval_s: float,
    ) -> None:
        """:func:`wait_until` ``ready``; when it times out, print the diagnostics first."""
        try:
            wait_until(what, ready, timeout_s, interval_s=interval_s)
        except WaitTimeoutError:
            self.dump_diagnostics()
            raise

    def start_kafka(self, release: str = RELEASE) -> None:
        """The run's broker: its Secrets (a new CA, certificate and passwords), kafka.yaml (the
        broker and its NetworkPolicy admitting ``release``'s clients), then the setup Job (users,
        ACLs, topics); returns once that Job succeeded."""
        self.run("kubectl", "apply", "-f", "-", stdin=secrets_manifest(self.namespace))
        self.run("kubectl", "apply", "-f", "-", stdin=kafka_manifest(release))
        job = python_job(SETUP_JOB, SETUP, setup_env())
        self.run("kubectl", "apply", "-f", "-", stdin=job)
        self.wait_job(SETUP_JOB, SETUP_WAIT_S + 60)

    def wait_job(self, name: str, timeout_s: float) -> str:
        """Wait until Job ``name`` has succeeded and return its log; fail at once, with the
        log, if it failed."""
        status: dict[str, Any] = {}

        def done() -> bool:
            status.clear()
            status.update(self.get("job", name)["status"])
            return bool(status.get("succeeded") or status.get("failed"))

        self.wait(lambda: f"job/{name} to finish: {status}", done, timeout_s, interval_s=2)
        log = self.run("kubectl", "logs", f"job/{name}")
        if status.get("failed"):
            raise AssertionError(f"job/{name} failed:\n{log}")
        return log

    def dump_diagnostics(self) -> None:
        """Print events and the end of every pod's log, to explain a failed wait."""
        for line in self.run("kubectl", "get", "events", "--sort-by=.lastTimestamp").splitlines():
            self.progress.say(f"  event {line}")
        for pod in self.get("pods")["items"]:
            name = pod["metadata"]["name"]
            for c in pod["spec"]["containers"]:
                cmd = [self.kubectl, "logs", "-n", self.namespace, name, "-c", c["name"]]
                log = subprocess.run(  # noqa: S603 - kubectl with the run's own arguments
                    [*cmd, "--tail=15"], capture_output=True, text=True, timeout=30, check=False
                ).stdout
                for line in log.splitlines():
                    self.progress.say(f"  {name}/{c['name']}: {line}")


def _all_ready(state: str) -> bool:
    phase, counts = state.split()[:2]
    ready, total = counts.split("/")
    return phase == "Running" and ready == total
