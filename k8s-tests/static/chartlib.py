"""Render the Helm chart offline and check what it renders.

Everything here works without a cluster or a network: ``helm template`` with pinned
capabilities, ``kubeconform`` against the schemas vendored in ``k8s-tests/schemas/``, and plain
Python checks over the rendered objects. Each ``check_*`` function returns a list of problems
(empty when all is well), so tests can assert both that the chart passes and that a broken
rendering is caught.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "emostream"
ADDONS = ROOT / "charts" / "addons"
SCHEMAS = ROOT / "k8s-tests" / "schemas"
PROFILES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))

VERSIONS = ROOT / "k8s-tests" / "cluster" / "versions.env"


def _schema_target() -> str:
    """SCHEMA_KUBERNETES_VERSION of versions.env, without its "v"."""
    for line in VERSIONS.read_text().splitlines():
        if line.startswith("SCHEMA_KUBERNETES_VERSION="):
            return line.split("=", 1)[1].removeprefix("v")
    raise RuntimeError(f"no SCHEMA_KUBERNETES_VERSION in {VERSIONS}")


#: The Kubernetes version the vendored schemas come from (tools/vendor-schemas.sh).
KUBE_VERSION = _schema_target()
#: APIs of the operators the chart works with, as a cluster that runs them serves them.
OPERATOR_APIS = (
    "kafka.strimzi.io/v1",
    "keda.sh/v1alpha1",
    "monitoring.coreos.com/v1",
    "sparkoperator.k8s.io/v1beta2",
)
RELEASE = "emostream"
NAMESPACE = "emostream"
SCHEMA_LOCATION = str(SCHEMAS) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"

Obj = dict[str, Any]


class ToolMissingError(RuntimeError):
    """helm or kubeconform is not installed where the project puts them."""


def tool(name: str) -> Path:
    """Path of a pinned tool installed by tools/install-tools.sh."""
    bin_dir = Path(os.environ.get("EMOSTREAM_TOOLS_BIN", ROOT / ".emostream" / "bin"))
    path = bin_dir / name
    if not os.access(path, os.X_OK):
        raise ToolMissingError(
            f"{path} is missing: run tools/install-tools.sh (make test-chart does) to install "
            "helm, kubeconform and promqlcheck at their pinned versions"
        )
    return path


def run(command: list[str | Path], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool with no access to any cluster; return its result whatever the exit code."""
    env = {
        **os.environ,
        "KUBECONFIG": os.devnull,
        "HELM_CACHE_HOME": str(ROOT / ".emostream" / "helm"),
    }
    return subprocess.run(  # noqa: S603 - the project's own pinned tools
        [str(c) for c in command],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def helm_args(
    profile: str | None = None,
    values: Iterable[str] = (),
    api_versions: Iterable[str] = OPERATOR_APIS,
) -> list[str]:
    """Value and capability arguments shared by template and lint."""
    args: list[str] = []
    if profile:
        args += ["-f", str(CHART / "ci" / profile)]
    for value in values:
        args += ["--set", value]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render_text(
    profile: str | None = None,
    values: Iterable[str] = (),
    api_versions: Iterable[str] = OPERATOR_APIS,
    release: str = RELEASE,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart; the caller checks the exit code."""
    return run(
        [
            tool("helm"),
            "template",
            release,
            CHART,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            "--include-crds",
            *helm_args(profile, values, api_versions),
        ]
    )


@functools.cache
def rendered(profile: str | None) -> tuple[Obj, ...]:
    """The objects a profile renders, rendered once per test session (treat them as read-only)."""
    return tuple(render(profile))


def parse(manifest: str) -> list[Obj]:
    """The objects of a multi-document YAML stream."""
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def render(
    profile: str | None = None,
    values: Iterable[str] = (),
    api_versions: Iterable[str] = OPERATOR_APIS,
) -> list[Obj]:
    """The objects the chart renders with a profile and ``--set`` values (rendering must work)."""
    result = render_text(profile, values, api_versions)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return parse(result.stdout)


def install_notes(profile: str | None = None, values: Iterable[str] = ()) -> tuple[str, list[Obj]]:
    """NOTES.txt and the objects of a client-side dry-run install (no cluster involved)."""
    result = run(
        [
            tool("helm"),
            "install",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
            "--output",
            "json",
            *helm_args(profile, values, api_versions=()),
        ]
    )
    if result.returncode != 0:
        raise AssertionError(f"helm install --dry-run=client failed:\n{result.stderr}")
    release = json.loads(result.stdout)
    return release["info"]["notes"], parse(release["manifest"])


def kubeconform(objects: list[Obj]) -> list[Obj]:
    """kubeconform's verdict on each object, strict, against the vendored schemas only."""
    stream = "\n---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)
    result = run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            KUBE_VERSION,
            "-schema-location",
            SCHEMA_LOCATION,
            "-",
        ],
        stdin=stream,
    )
    report = json.loads(result.stdout)
    return list(report["resources"])


def schema_problems(objects: list[Obj]) -> list[str]:
    """Every object (and every embedded pod template) kubeconform does not find valid."""
    verdicts = kubeconform(objects + embedded_pods(objects))
    return [
        f"{v['kind']}/{v['name']}: {v['status']}: {v.get('msg', '')}"
        for v in verdicts
        if v["status"] != "statusValid"
    ]


# --- navigating rendered objects -------------------------------------------------------------


def name_of(obj: Obj) -> str:
    """``Kind/name`` for messages."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    """The objects of one kind."""
    return [o for o in objects if o.get("kind") == kind]


def find(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    """The object of a kind and name (it must exist)."""
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name} is not rendered")


def embedded_pods(objects: Iterable[Obj]) -> list[Obj]:
    """Pod manifests held in ConfigMaps (the Spark executor pod template)."""
    pods = []
    for cm in of_kind(objects, "ConfigMap"):
        for key, text in (cm.get("data") or {}).items():
            if key.endswith("pod-template.yaml"):
                pod = yaml.safe_load(text)
                pod.setdefault("metadata", {})["name"] = f"{cm['metadata']['name']}.{key}"
                pods.append(pod)
    return pods


def pod_specs(objects: Iterable[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(owner, owner object, pod spec) of every workload, Pod and embedded pod template."""
    objects = list(objects)
    for obj in objects + embedded_pods(objects):
        kind = obj.get("kind")
        if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            yield name_of(obj), obj, obj["spec"]["template"]["spec"]
        elif kind == "Pod":
            yield name_of(obj), obj, obj["spec"]


def pod_templates_labels(objects: Iterable[Obj]) -> list[tuple[str, dict[str, str]]]:
    """Labels of every pod the release will run, including pods an operator creates for it."""
    objects = list(objects)
    found = []
    for obj in objects + embedded_pods(objects):
        kind = obj.get("kind")
        if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            found.append((name_of(obj), obj["spec"]["template"]["metadata"].get("labels", {})))
        elif kind == "Pod":
            found.append((name_of(obj), obj["metadata"].get("labels", {})))
        elif kind == "SparkApplication":
            found.extend(
                (f"{name_of(obj)}.{role}", obj["spec"][role].get("labels", {}))
                for role in ("driver", "executor")
            )
    return found


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether matchLabels ``selector`` selects ``labels``."""
    return all(labels.get(k) == v for k, v in selector.items())


def selects_any(selector: Obj, labelled: list[tuple[str, dict[str, str]]]) -> bool:
    """Whether a LabelSelector (matchLabels, In and Exists) selects any of ``labelled``."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []

    def ok(labels: dict[str, str]) -> bool:
        for expr in expressions:
            value = labels.get(expr["key"])
            if (expr["operator"] == "In" and value not in expr["values"]) or (
                expr["operator"] == "Exists" and value is None
            ):
                return False
        return matches(match_labels, labels)

    return any(ok(labels) for _, labels in labelled)


# --- checks ------------------------------------------------------------------------------------

LONG_RUNNING = ("Deployment", "StatefulSet")
TMP = "/tmp"  # noqa: S108 - the path containers must get a volume at, not a file we write


def _container_basics(owner: str, kind: str, c: Obj) -> list[str]:
    where = f"{owner} container {c.get('name')}"
    res = c.get("resources") or {}
    problems = [
        f"{where}: no {key} request"
        for key in ("cpu", "memory")
        if key not in res.get("requests", {})
    ]
    if "memory" not in res.get("limits", {}):
        problems.append(f"{where}: no memory limit")
    if kind in LONG_RUNNING:
        problems += [f"{where}: no {p}" for p in ("livenessProbe", "readinessProbe") if p not in c]
    return problems


def check_resources_and_probes(objects: list[Obj]) -> list[str]:
    """Every container has CPU and memory requests and a memory limit; long-running ones probes."""
    problems = []
    for owner, obj, spec in pod_specs(objects):
        if owner.endswith("pod-template.yaml"):
            continue  # Spark sets an executor's resources from its configuration
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            problems += _container_basics(owner, obj["kind"], c)
    return problems


def _effective(spec: Obj, container: Obj, key: str) -> Any:
    value = (container.get("securityContext") or {}).get(key)
    return value if value is not None else (spec.get("securityContext") or {}).get(key)


def _container_security(where: str, sc: Obj, mounts: set[str]) -> list[str]:
    problems = []
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: root file system is writable")
    elif TMP not in mounts:
        problems.append(f"{where}: read-only root file system without a /tmp volume")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: capabilities are not all dropped")
    return problems


def check_pod_security(objects: list[Obj]) -> list[str]:
    """Non-root, read-only root file system with a writable /tmp, no capabilities, seccomp."""
    problems = []
    for owner, _obj, spec in pod_specs(objects):
        seccomp = (spec.get("securityContext") or {}).get("seccompProfile", {}).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"{owner}: pod seccompProfile is {seccomp!r}, not RuntimeDefault")
        for c in spec.get("containers", []):
            where = f"{owner} container {c['name']}"
            if _effective(spec, c, "runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            user = _effective(spec, c, "runAsUser")
            if user is not None and int(user) == 0:
                problems.append(f"{where}: runs as uid 0")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            problems += _container_security(where, c.get("securityContext") or {}, mounts)
    for app in of_kind(objects, "SparkApplication"):
        for role in ("driver", "executor"):
            pod = app["spec"][role]
            where = f"{name_of(app)} {role}"
            if (pod.get("podSecurityContext") or {}).get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            mounts = {m["mountPath"] for m in pod.get("volumeMounts", [])}
            problems += _container_security(where, pod.get("securityContext") or {}, mounts)
    return problems


def _workload_selectors(obj: Obj, labelled: list[tuple[str, dict[str, str]]]) -> list[str]:
    spec = obj["spec"]
    selector = spec["selector"]["matchLabels"]
    problems = []
    if not matches(selector, spec["template"]["metadata"].get("labels", {})):
        problems.append(f"{name_of(obj)}: selector {selector} does not match its pod labels")
    others = [n for n, lbl in labelled if n != name_of(obj) and matches(selector, lbl)]
    if others:
        problems.append(f"{name_of(obj)}: selector also selects pods of {others}")
    return problems


def _service_monitor(obj: Obj, objects: list[Obj]) -> list[str]:
    selector = obj["spec"]["selector"]["matchLabels"]
    services = [
        s for s in of_kind(objects, "Service") if matches(selector, s["metadata"].get("labels", {}))
    ]
    problems = [] if services else [f"{name_of(obj)}: selects no Service"]
    for endpoint in obj["spec"]["endpoints"]:
        problems += [
            f"{name_of(obj)}: {name_of(svc)} has no port {endpoint['port']}"
            for svc in services
            if endpoint["port"] not in {p.get("name") for p in svc["spec"]["ports"]}
        ]
    return problems


def _pod_references(objects: list[Obj], names: set[tuple[str, str]]) -> list[str]:
    problems = []
    for owner, _obj, pod in pod_specs(objects):
        sa = pod.get("serviceAccountName", "default")
        if sa != "default" and ("ServiceAccount", sa) not in names:
            problems.append(f"{owner}: ServiceAccount {sa} is not rendered")
        refs = [
            e["configMapRef"]["name"]
            for c in pod.get("containers", [])
            for e in c.get("envFrom", [])
            if "configMapRef" in e
        ]
        refs += [v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v]
        problems += [
            f"{owner}: ConfigMap {ref} is not rendered"
            for ref in refs
            if ("ConfigMap", ref) not in names
        ]
    return problems


def check_selectors(objects: list[Obj]) -> list[str]:
    """Selectors select what they are meant to, and references name rendered objects."""
    problems = []
    labelled = pod_templates_labels(objects)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in objects:
        kind, spec = obj.get("kind"), obj.get("spec") or {}
        if kind in LONG_RUNNING:
            problems += _workload_selectors(obj, labelled)
        if kind == "StatefulSet" and ("Service", spec.get("serviceName")) not in names:
            problems.append(
                f"{name_of(obj)}: serviceName {spec.get('serviceName')} is not rendered"
            )
        if kind == "Service" and spec.get("selector"):
            if not selects_any({"matchLabels": spec["selector"]}, labelled):
                problems.append(f"{name_of(obj)}: selector {spec['selector']} selects no pod")
        elif (kind == "PodDisruptionBudget" and not selects_any(spec["selector"], labelled)) or (
            kind == "NetworkPolicy" and not selects_any(spec["podSelector"], labelled)
        ):
            problems.append(f"{name_of(obj)}: selector selects no pod")
        elif kind == "ServiceMonitor":
            problems += _service_monitor(obj, objects)
    return problems + _pod_references(objects, names)


#: Trigger metadata keys KEDA 2.20's scalers read (pkg/scalers/prometheus_scaler.go,
#: cpu_memory_scaler.go); KEDA ignores others silently, so a typo would go unnoticed.
KEDA_TRIGGER_KEYS = {
    "prometheus": {
        "serverAddress", "query", "queryParameters", "threshold", "activationThreshold",
        "namespace", "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout",
        "identityOwner",
    },
    "cpu": {"value", "containerName"},
}  # fmt: skip
_METRIC = re.compile(r"\b(emostream_[a-z0-9_]+)")


def metric_names(promql: str) -> set[str]:
    """The emostream_* series a PromQL expression reads."""
    return set(_METRIC.findall(promql))


def adapter_rules() -> dict[str, str]:
    """prometheus-adapter's served metric name -> the series its rule reads."""
    values = yaml.safe_load((ADDONS / "prometheus-adapter-values.yaml").read_text())
    return {
        rule["name"]["as"]: rule["seriesQuery"].split("{", 1)[0].strip("'\" ")
        for rule in values["rules"]["custom"]
    }


def _cpu_requested(objects: list[Obj], deployment: str) -> bool:
    dep = find(objects, "Deployment", deployment)
    return all(
        "cpu" in (c.get("resources") or {}).get("requests", {})
        for c in dep["spec"]["template"]["spec"]["containers"]
    )


def _keda_triggers(obj: Obj, objects: list[Obj], exported: set[str]) -> list[str]:
    problems = []
    services = {s["metadata"]["name"] for s in of_kind(objects, "Service")}
    target = obj["spec"]["scaleTargetRef"]["name"]
    for trigger in obj["spec"]["triggers"]:
        known = KEDA_TRIGGER_KEYS.get(trigger["type"])
        if known is None:
            problems.append(f"{name_of(obj)}: trigger type {trigger['type']} is not checked")
            continue
        unknown = set(trigger["metadata"]) - known
        if unknown:
            problems.append(f"{name_of(obj)}: unknown {trigger['type']} metadata {unknown}")
        if trigger["type"] == "cpu" and not _cpu_requested(objects, target):
            problems.append(f"{name_of(obj)}: cpu trigger without cpu requests")
        if trigger["type"] != "prometheus":
            continue
        query = trigger["metadata"]["query"]
        read = metric_names(query)
        if not read:
            problems.append(f"{name_of(obj)}: query reads no Emostream metric: {query}")
        problems += [
            f"{name_of(obj)}: query reads {m}, which nothing exports" for m in read - exported
        ]
        problems += [
            f"{name_of(obj)}: query selects Service {svc}, not rendered"
            for svc in re.findall(r'service="([^"]+)"', query)
            if svc not in services
        ]
    return problems


def _hpa_metrics(obj: Obj, objects: list[Obj], exported: set[str]) -> list[str]:
    problems = []
    served = adapter_rules()
    target = obj["spec"]["scaleTargetRef"]["name"]
    for metric in obj["spec"].get("metrics", []):
        if metric["type"] == "Pods":
            name = metric["pods"]["metric"]["name"]
            if name not in served:
                problems.append(
                    f"{name_of(obj)}: custom metric {name} has no prometheus-adapter rule"
                )
            elif served[name] not in exported:
                problems.append(
                    f"{name_of(obj)}: {name} is served from {served[name]}, which nothing exports"
                )
        elif metric["type"] == "Resource":
            if not _cpu_requested(objects, target):
                problems.append(f"{name_of(obj)}: CPU utilisation without cpu requests")
        else:
            problems.append(f"{name_of(obj)}: metric type {metric['type']} is not checked")
    return problems


def check_autoscalers(objects: list[Obj], exported: set[str]) -> list[str]:
    """Each autoscaler scales a rendered Deployment on a signal some component exports."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for obj in of_kind(objects, "ScaledObject") + of_kind(objects, "HorizontalPodAutoscaler"):
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target["name"] not in deployments:
            problems.append(
                f"{name_of(obj)}: targets {target.get('kind')}/{target['name']}, "
                "which is not a rendered Deployment"
            )
            continue
        if "replicas" in deployments[target["name"]]["spec"]:
            problems.append(
                f"{name_of(obj)}: Deployment {target['name']} sets replicas, which every "
                "helm upgrade would reset under the autoscaler"
            )
        low = spec.get("minReplicaCount", spec.get("minReplicas", 1))
        high = spec.get("maxReplicaCount", spec.get("maxReplicas"))
        if high is None or low > high:
            problems.append(f"{name_of(obj)}: replicas range {low}..{high}")
        if obj["kind"] == "ScaledObject":
            problems += _keda_triggers(obj, objects, exported)
        else:
            problems += _hpa_metrics(obj, objects, exported)
    return problems


def promql_problems(expressions: Iterable[str]) -> list[str]:
    """Expressions Prometheus's own parser rejects (tools/promqlcheck), with its error."""
    lines = [" ".join(e.split()) for e in expressions]
    result = run([tool("promqlcheck")], stdin="\n".join(lines) + "\n")
    if result.returncode not in (0, 1):
        raise AssertionError(f"promqlcheck failed: {result.stderr}")
    return [line for line in result.stdout.splitlines() if line.startswith(("line ", "  "))]


def settings_of(objects: list[Obj], component: str) -> dict[str, str]:
    """The EMOSTREAM_* ConfigMap data of a component."""
    data: dict[str, str] = find(objects, "ConfigMap", f"{RELEASE}-{component}")["data"]
    return data


def check_graceful_shutdown(objects: list[Obj]) -> list[str]:
    """Ingest and fanout get SIGKILL only after the preStop pause and gunicorn's graceful stop."""
    problems = []
    for component in ("ingest", "fanout"):
        dep = find(objects, "Deployment", f"{RELEASE}-{component}")
        spec = dep["spec"]["template"]["spec"]
        pause = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        graceful = int(settings_of(objects, component)["EMOSTREAM_GRACEFUL_TIMEOUT_S"])
        if spec["terminationGracePeriodSeconds"] <= pause + graceful:
            problems.append(
                f"{name_of(dep)}: grace {spec['terminationGracePeriodSeconds']} s "
                f"<= preStop {pause} s + graceful timeout {graceful} s"
            )
    return problems


# --- pods by role, metrics ports and Kafka clients ---------------------------------------------

#: The name of every role's Prometheus port (container port and Service port alike).
METRICS = "metrics"
#: The component label of the chart's `helm test` pod.
TEST_COMPONENT = "test"


@dataclass(frozen=True)
class PodView:
    """One pod the release runs, whoever creates it: its labels, containers and volumes."""

    owner: str
    labels: dict[str, str]
    containers: list[Obj]
    volumes: list[Obj]

    @property
    def role(self) -> str:
        """Its app.kubernetes.io/component label."""
        return self.labels.get("app.kubernetes.io/component", "")

    @property
    def metrics_ports(self) -> set[int]:
        """The numbers of its container ports named ``metrics``."""
        return {
            int(p["containerPort"])
            for c in self.containers
            for p in c.get("ports") or []
            if p.get("name") == METRICS
        }


def pod_views(objects: Iterable[Obj]) -> list[PodView]:
    """Every pod of the release: workloads, Pods, the executor template and the pods a
    SparkApplication has the Spark Operator create (its driver and executor fields)."""
    objects = list(objects)
    views = []
    for owner, obj, spec in pod_specs(objects):
        labels = (
            obj["metadata"] if obj.get("kind") == "Pod" else obj["spec"]["template"]["metadata"]
        ).get("labels", {})
        views.append(PodView(owner, labels, spec.get("containers", []), spec.get("volumes") or []))
    for app in of_kind(objects, "SparkApplication"):
        for role in ("driver", "executor"):
            pod = app["spec"][role]
            container = {"name": role} | {
                key: pod[key] for key in ("env", "ports", "volumeMounts") if key in pod
            }
            views.append(
                PodView(
                    f"{name_of(app)}.{role}",
                    pod.get("labels", {}),
                    [container],
                    app["spec"].get("volumes") or [],
                )
            )
    return views


def is_metrics_service(service: Obj) -> bool:
    """Whether a Service carries only ports named ``metrics`` (a scrape target, never public)."""
    ports = service["spec"].get("ports") or []
    return bool(ports) and all(p.get("name") == METRICS for p in ports)


def _public_service(service: Obj, numbers: set[int]) -> list[str]:
    def leads_to_metrics(port: Obj) -> bool:
        return (
            port.get("name") == METRICS
            or port.get("targetPort") == METRICS
            or port.get("port") in numbers
            or port.get("targetPort") in numbers
        )

    return [
        f"{name_of(service)}: public Service exposes a metrics port: {port}"
        for port in service["spec"].get("ports") or []
        if leads_to_metrics(port)
    ]


def _ingress_backends(ingress: Obj) -> list[Obj]:
    spec = ingress["spec"]
    backends = [spec["defaultBackend"]] if "defaultBackend" in spec else []
    for rule in spec.get("rules") or []:
        backends += [path["backend"] for path in (rule.get("http") or {}).get("paths", [])]
    return backends


def _ingress(ingress: Obj, services: dict[str, Obj], numbers: set[int]) -> list[str]:
    problems = []
    for backend in _ingress_backends(ingress):
        target = backend["service"]
        service = services.get(target["name"])
        port = target.get("port") or {}
        if service is None:
            problems.append(f"{name_of(ingress)}: routes to Service {target['name']}, not rendered")
        elif (
            is_metrics_service(service)
            or port.get("name") == METRICS
            or port.get("number") in numbers
        ):
            problems.append(f"{name_of(ingress)}: routes to a metrics port: {target}")
    return problems


def _monitors(objects: list[Obj], services: dict[str, Obj], views: list[PodView]) -> list[str]:
    problems = []
    scraped: list[dict[str, str]] = []
    for monitor in of_kind(objects, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        problems += [
            f"{name_of(monitor)}: scrapes port {e.get('port')!r}, not {METRICS!r}"
            for e in monitor["spec"]["endpoints"]
            if e.get("port") != METRICS
        ]
        for service in services.values():
            if not matches(selector, service["metadata"].get("labels", {})):
                continue
            if is_metrics_service(service):
                scraped.append(service["spec"]["selector"])
            else:
                problems.append(f"{name_of(monitor)}: selects {name_of(service)}, a public Service")
    for monitor in of_kind(objects, "PodMonitor"):
        selector = monitor["spec"]["selector"]
        if not any(selects_any(selector, [(v.owner, v.labels)]) for v in views):
            continue  # pods an operator runs (Strimzi's), with their own port names
        problems += [
            f"{name_of(monitor)}: scrapes port {e.get('port')!r}, not {METRICS!r}"
            for e in monitor["spec"]["podMetricsEndpoints"]
            if e.get("port") != METRICS
        ]
        scraped.append(selector.get("matchLabels") or {})
    if of_kind(objects, "ServiceMonitor") or of_kind(objects, "PodMonitor"):
        problems += [
            f"{v.owner}: no monitor scrapes its metrics port"
            for v in views
            if v.metrics_ports and not any(matches(sel, v.labels) for sel in scraped)
        ]
    return problems


def check_metrics_exposure(objects: list[Obj]) -> list[str]:
    """Metrics ports are reached only through metrics Services: headless, carrying nothing else,
    selected by the monitors (which scrape port ``metrics``); no public Service port and no
    Ingress route leads to one."""
    views = pod_views(objects)
    numbers = set().union(*(v.metrics_ports for v in views))
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    problems = []
    for service in services.values():
        spec = service["spec"]
        if not is_metrics_service(service):
            problems += _public_service(service, numbers)
        elif spec.get("clusterIP") != "None" or spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"{name_of(service)}: a metrics Service that is not headless")
    for ingress in of_kind(objects, "Ingress"):
        problems += _ingress(ingress, services, numbers)
    return problems + _monitors(objects, services, views)


def _peer_key(peer: Obj) -> str:
    return json.dumps(peer, sort_keys=True)


def _test_pod_only(peer: Obj, views: list[PodView]) -> bool:
    """Whether a peer is a pod selector of the `helm test` pod and of no other rendered pod."""
    if set(peer) != {"podSelector"}:
        return False
    chosen = {v.role for v in views if selects_any(peer["podSelector"], [(v.owner, v.labels)])}
    return chosen == {TEST_COMPONENT}


def check_metrics_policies(objects: list[Obj], scrapers: list[Obj]) -> list[str]:
    """Every NetworkPolicy of a pod with a metrics port admits exactly ``scrapers`` and the
    `helm test` pod to that port, and opens no rule to every port."""
    views = pod_views(objects)
    wanted = sorted(_peer_key(p) for p in scrapers)
    problems = []
    for policy in of_kind(objects, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        selected = [v for v in views if selects_any(selector, [(v.owner, v.labels)])]
        numbers = set().union(*(v.metrics_ports for v in selected))
        if not numbers:
            continue
        admitted = False
        for rule in policy["spec"].get("ingress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            peers = rule.get("from") or []
            if not ports:
                problems.append(f"{name_of(policy)}: a rule admits {peers or 'all'} to every port")
            elif ports & ({METRICS} | numbers):
                admitted = True
                tests = [p for p in peers if _test_pod_only(p, views)]
                others = sorted(_peer_key(p) for p in peers if p not in tests)
                if len(tests) != 1 or others != wanted:
                    problems.append(f"{name_of(policy)}: the metrics port admits {peers or 'all'}")
        if not admitted:
            problems.append(f"{name_of(policy)}: nothing may scrape the metrics port")
    return problems


KAFKA_ENV = "EMOSTREAM_KAFKA_"


def kafka_clients(objects: Iterable[Obj]) -> list[tuple[PodView, Obj]]:
    """(pod, container) of every container the chart points at Kafka."""
    return [
        (view, container)
        for view in pod_views(objects)
        for container in view.containers
        if any(e["name"] == f"{KAFKA_ENV}BOOTSTRAP_SERVERS" for e in container.get("env") or [])
    ]


def env_value(container: Obj, name: str) -> str | None:
    """The literal value of an environment variable (None when unset or from a reference)."""
    for entry in container.get("env") or []:
        if entry["name"] == name:
            value: str | None = entry.get("value")
            return value
    return None


def env_secret(container: Obj, name: str) -> tuple[str, str] | None:
    """The (Secret, key) an environment variable is read from, if it is."""
    for entry in container.get("env") or []:
        if entry["name"] == name:
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def mounted_secret_file(view: PodView, container: Obj, path: str) -> tuple[str, str] | None:
    """The (Secret, key) a file in a container comes from, if a Secret volume holds it."""
    volumes = {v["name"]: v for v in view.volumes}
    for mount in container.get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        secret = volumes.get(mount["name"], {}).get("secret")
        if not path.startswith(prefix) or secret is None:
            continue
        relative = path.removeprefix(prefix)
        for item in secret.get("items") or [{"key": relative, "path": relative}]:
            if item["path"] == relative:
                return secret["secretName"], item["key"]
    return None


def _kafka_credentials(where: str, role: str, container: Obj, users: dict[str, Obj]) -> list[str]:
    user = env_value(container, f"{KAFKA_ENV}SASL_USERNAME")
    password = env_secret(container, f"{KAFKA_ENV}SASL_PASSWORD")
    if password is None:
        return [f"{where}: no SASL password from a Secret"]
    if not env_value(container, f"{KAFKA_ENV}SASL_MECHANISM"):
        return [f"{where}: no SASL mechanism"]
    if users:  # Strimzi: the role's own KafkaUser, whose Secret has its name
        own = f"{RELEASE}-{role}"
        problems = [] if own in users else [f"{where}: KafkaUser {own} is not rendered"]
        if user != own:
            problems.append(f"{where}: user name {user!r}, not its own KafkaUser {own}")
        if password != (own, "password"):
            problems.append(f"{where}: password from {password}, not its KafkaUser's Secret")
        return problems
    secret = password[0]
    wanted = ((secret, f"{role}-username"), (secret, f"{role}-password"))
    got = (env_secret(container, f"{KAFKA_ENV}SASL_USERNAME"), password)
    return [] if got == wanted else [f"{where}: credentials from {got}, not {wanted}"]


def _kafka_client(view: PodView, container: Obj, objects: list[Obj]) -> list[str]:
    where = f"{view.owner} container {container['name']}"
    protocol = env_value(container, f"{KAFKA_ENV}SECURITY_PROTOCOL") or ""
    bootstrap = env_value(container, f"{KAFKA_ENV}BOOTSTRAP_SERVERS") or ""
    users = {u["metadata"]["name"]: u for u in of_kind(objects, "KafkaUser")}
    problems = []
    if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        problems.append(f"{where}: security protocol {protocol!r}")
    kafkas = of_kind(objects, "Kafka")
    ca_secret = None
    if kafkas:
        (listener,) = kafkas[0]["spec"]["kafka"]["listeners"]
        secured = (listener.get("authentication") or {}).get("type") == "scram-sha-512"
        if protocol != ("SASL_SSL" if secured else "PLAINTEXT"):
            problems.append(f"{where}: {protocol} to a listener {listener}")
        if not bootstrap.endswith(f":{listener['port']}"):
            problems.append(f"{where}: bootstrap {bootstrap}, listener port {listener['port']}")
        if secured:
            ca_secret = (f"{kafkas[0]['metadata']['name']}-cluster-ca-cert", "ca.crt")
    sasl_env = {f"{KAFKA_ENV}{n}" for n in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD")}
    if protocol.startswith("SASL_"):
        problems += _kafka_credentials(where, view.role, container, users)
    elif sasl_env & {e["name"] for e in container.get("env") or []}:
        problems.append(f"{where}: SASL settings with {protocol}")
    ca = env_value(container, f"{KAFKA_ENV}SSL_CA_LOCATION")
    if ca is not None:
        source = mounted_secret_file(view, container, ca)
        if not protocol.endswith("SSL"):
            problems.append(f"{where}: a CA file with {protocol}")
        if source is None or source[1] != "ca.crt":
            problems.append(f"{where}: CA file {ca} is no Secret's key ca.crt ({source})")
        elif ca_secret and source != ca_secret:
            problems.append(f"{where}: CA from {source}, not Strimzi's {ca_secret}")
    elif ca_secret:
        problems.append(f"{where}: no CA for the TLS listener")
    return problems


def check_kafka_clients(objects: list[Obj]) -> list[str]:
    """Every Kafka client speaks the protocol of the listener it is given, as its own user (its
    KafkaUser's Secret, or its keys of kafka.external.existingSecret), with the CA mounted."""
    problems = []
    for view, container in kafka_clients(objects):
        problems += _kafka_client(view, container, objects)
    return problems


# --- what the code exports ---------------------------------------------------------------------


def _family_series(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total", f"{name}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    return {name}


def exported_metrics() -> set[str]:
    """Every series name ingest, fanout and the aggregation export, from their own code."""
    from prometheus_client import REGISTRY  # noqa: PLC0415 - only this needs them

    import emostream.aggregate._metrics  # noqa: PLC0415 - registers the driver's metrics
    import emostream.aggregate._scaling  # noqa: F401, PLC0415 - and its autoscaler's
    from emostream.fanout._metrics import FanoutMetrics  # noqa: PLC0415
    from emostream.ingest._metrics import IngestMetrics  # noqa: PLC0415

    fanout = FanoutMetrics()
    series: set[str] = set()
    for registry in (IngestMetrics().registry, fanout.registry, REGISTRY):
        for family in registry.collect():
            if family.name.startswith("emostream_"):
                series |= _family_series(family.name, family.type)
    return series
