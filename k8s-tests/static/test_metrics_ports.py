"""/metrics off the public ports: each role's named port `metrics`, scraped through Services
that carry nothing else, admitted only from networkPolicy.metricsFrom."""

import re

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.chart

RELEASE = chartlib.RELEASE
#: role -> (public container port or None, metrics port, the Service carrying the metrics port)
ROLES = {
    "ingest": (8000, 9100, f"{RELEASE}-ingest-metrics"),
    "fanout": (8080, 9101, f"{RELEASE}-fanout-metrics"),
    "aggregate": (None, 9108, f"{RELEASE}-aggregate"),
}
EVERY_POD: list[chartlib.Obj] = [{"namespaceSelector": {}}]
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def profile_scrapers(profile: str | None) -> list[chartlib.Obj]:
    """The scrapers a profile admits: its networkPolicy.metricsFrom, else every pod."""
    if not profile:
        return EVERY_POD
    values = yaml.safe_load((chartlib.CHART / "ci" / profile).read_text())
    return values.get("networkPolicy", {}).get("metricsFrom") or EVERY_POD


def test_no_public_service_or_ingress_reaches_a_metrics_port(objects: list[chartlib.Obj]) -> None:
    """In every profile: metrics ports are only on headless metrics Services, which the monitors
    (scraping port `metrics`) select, and no public Service port or Ingress route leads there."""
    assert chartlib.check_metrics_exposure(objects) == []


@pytest.mark.parametrize("profile", [None, *chartlib.PROFILES], ids=["default", *chartlib.PROFILES])
def test_the_metrics_port_admits_only_the_scrapers(profile: str | None) -> None:
    """The NetworkPolicies of ingest, fanout and the driver admit networkPolicy.metricsFrom (every
    pod when empty) and the `helm test` pod to the metrics port, and nothing to every port."""
    objects = list(chartlib.rendered(profile))
    assert chartlib.check_metrics_policies(objects, profile_scrapers(profile)) == []


@pytest.mark.parametrize("profile", [None, "full-values.yaml"], ids=["native", "operator"])
def test_each_role_serves_metrics_on_its_own_port_on_every_address(profile: str | None) -> None:
    """Each role's pod names its metrics port `metrics` (9100, 9101, 9108), apart from its public
    port, and its settings bind /metrics there on 0.0.0.0."""
    objects = list(chartlib.rendered(profile))
    views = {v.role: v for v in chartlib.pod_views(objects) if v.metrics_ports}
    assert set(views) == set(ROLES)
    for role, (public, port, _service) in ROLES.items():
        assert views[role].metrics_ports == {port}, role
        ports = {p["name"]: p["containerPort"] for p in views[role].containers[0]["ports"]}
        if public:
            assert ports == {"http": public, "metrics": port}, role
        settings = chartlib.settings_of(objects, role)
        assert settings["EMOSTREAM_METRICS_PORT"] == str(port), role
        assert settings["EMOSTREAM_METRICS_HOST"] == "0.0.0.0", role


def test_public_services_carry_the_public_port_only() -> None:
    """ingest's and fanout's Services (which the Ingresses use) have one port: http."""
    objects = list(chartlib.rendered("full-values.yaml"))
    for role in ("ingest", "fanout"):
        service = chartlib.find(objects, "Service", f"{RELEASE}-{role}")
        assert [(p["name"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("http", "http")
        ]
    backends = {
        path["backend"]["service"]["name"]
        for ingress in chartlib.of_kind(objects, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {f"{RELEASE}-ingest", f"{RELEASE}-fanout"}


def test_monitors_scrape_each_role_through_its_metrics_service() -> None:
    """One ServiceMonitor per role, on port `metrics` of that role's metrics Service."""
    objects = list(chartlib.rendered(None))
    for role, (_public, port, service_name) in ROLES.items():
        monitor = chartlib.find(objects, "ServiceMonitor", f"{RELEASE}-{role}")
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        service = chartlib.find(objects, "Service", service_name)
        assert chartlib.matches(
            monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]
        )
        assert service["spec"]["ports"] == [
            {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
        ]


def test_autoscalers_alerts_and_dashboard_select_the_metrics_services() -> None:
    """The `service` label the KEDA queries, the alerts and the dashboard select by names the
    Service Prometheus scrapes each role through, so they keep reading the series."""
    objects = list(chartlib.rendered("full-values.yaml"))
    metrics_services = {
        s["metadata"]["name"] for s in chartlib.of_kind(objects, "Service")
        if chartlib.is_metrics_service(s)
    }  # fmt: skip
    assert metrics_services == {service for _, _, service in ROLES.values()}
    queries = [
        t["metadata"]["query"]
        for o in chartlib.of_kind(objects, "ScaledObject")
        for t in o["spec"]["triggers"]
        if t["type"] == "prometheus"
    ]
    (rule,) = chartlib.of_kind(objects, "PrometheusRule")
    queries += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    named = {s for q in queries for s in re.findall(r'service="([^"]+)"', q)}
    assert named == metrics_services
    dashboard = (chartlib.CHART / "dashboards" / "emostream.json").read_text()
    patterns = set(re.findall(r'service=~\\"\$release-([a-z-]+)\\"', dashboard))
    assert {f"{RELEASE}-{p}" for p in patterns} == metrics_services
    assert '"regex": "/(.*)-ingest-metrics$/"' in dashboard


def test_helm_test_reads_metrics_only_on_the_metrics_services() -> None:
    """`helm test` expects 404 for /metrics on the public Services and 200 on each metrics
    Service."""
    (pod,) = [
        p
        for p in chartlib.of_kind(chartlib.rendered(None), "Pod")
        if p["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    checks = pod["spec"]["containers"][0]["command"][3:]
    assert f"404 http://{RELEASE}-ingest:8000/metrics" in checks
    assert f"404 http://{RELEASE}-fanout:8080/metrics" in checks
    for _public, port, service in ROLES.values():
        assert f"200 http://{service}:{port}/metrics" in checks


def test_public_from_still_admits_the_releases_own_test_and_load_pods() -> None:
    """With networkPolicy.publicFrom set, the public port admits those peers plus this release's
    load test and `helm test` pods, and never the metrics port."""
    objects = chartlib.render(
        values=[
            "networkPolicy.publicFrom[0].namespaceSelector.matchLabels.name=ingress",
            "loadtest.enabled=true",
        ]
    )
    policy = chartlib.find(objects, "NetworkPolicy", f"{RELEASE}-ingest")
    (public,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "http"]
    assert [p["port"] for p in public["ports"]] == ["http"]
    assert {"namespaceSelector": {"matchLabels": {"name": "ingress"}}} in public["from"]
    admitted = {
        view.role
        for view in chartlib.pod_views(objects)
        for peer in public["from"]
        if "podSelector" in peer
        and chartlib.selects_any(peer["podSelector"], [(view.owner, view.labels)])
    }
    assert admitted == {"test", "loadtest-master", "loadtest-worker"}
    assert chartlib.check_metrics_policies(objects, EVERY_POD) == []


def test_metrics_from_narrows_the_scrapers() -> None:
    """networkPolicy.metricsFrom replaces the every-pod default on every metrics port."""
    objects = chartlib.render(
        values=["networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring"]
    )
    scrapers = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    assert chartlib.check_metrics_policies(objects, scrapers) == []
    assert chartlib.check_metrics_policies(objects, EVERY_POD) != []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["ingest.metrics.port=8000"], "ingest.metrics.port must differ from ingest's public port"),
        (["fanout.metrics.port=8080"], "fanout.metrics.port must differ from fanout's public port"),
        (["ingest.metrics.port=80"], "at '/ingest/metrics/port': minimum: got 80"),
        (
            ["ingest.config.metrics_host=127.0.0.1"],
            "at '/ingest/config': additional properties 'metrics_host' not allowed",
        ),
        (
            ["aggregate.config.metrics_host=::"],
            "at '/aggregate/config': additional properties 'metrics_host' not allowed",
        ),
        (
            ["fanout.config.metrics_port=9999"],
            "at '/fanout/config': additional properties 'metrics_port' not allowed",
        ),
    ],
)
def test_metrics_address_values_are_refused(values: list[str], message: str) -> None:
    """A metrics port on the public port, or the metrics address set as a setting, fails."""
    result = chartlib.render_text(None, values)
    assert result.returncode != 0, f"{values} rendered"
    assert message in result.stderr
