"""Assertions on what the chart renders: resources, probes, security, wiring, scaling."""

import chartlib
import pytest

pytestmark = pytest.mark.chart


def test_containers_have_resources_and_probes(objects: list[chartlib.Obj]) -> None:
    """Every container has requests and a memory limit; every long-running one has probes."""
    assert chartlib.check_resources_and_probes(objects) == []


def test_pods_are_locked_down(objects: list[chartlib.Obj]) -> None:
    """Non-root, read-only root file system with /tmp, no capabilities, RuntimeDefault seccomp."""
    assert chartlib.check_pod_security(objects) == []


def test_selectors_and_references(objects: list[chartlib.Obj]) -> None:
    """Selectors match their pods' labels and references name objects the chart renders."""
    assert chartlib.check_selectors(objects) == []


def test_autoscalers_target_workloads_on_exported_metrics(
    objects: list[chartlib.Obj], exported: set[str]
) -> None:
    """Each autoscaler scales a rendered Deployment on a metric some component exports."""
    assert chartlib.check_autoscalers(objects, exported) == []


def test_graceful_shutdown_fits_the_grace_period(objects: list[chartlib.Obj]) -> None:
    """preStop pause + gunicorn's graceful timeout end before the kubelet's SIGKILL."""
    assert chartlib.check_graceful_shutdown(objects) == []


def test_only_the_spark_driver_gets_an_api_token(objects: list[chartlib.Obj]) -> None:
    """Pods that never call the Kubernetes API have no ServiceAccount token mounted."""
    for owner, _obj, spec in chartlib.pod_specs(objects):
        wants_token = owner == f"StatefulSet/{chartlib.RELEASE}-aggregate"
        assert spec.get("automountServiceAccountToken") is wants_token, owner


def test_exported_metrics_are_found() -> None:
    """The metric inventory really comes from the code (and holds the scaling signals)."""
    exported = chartlib.exported_metrics()
    assert {
        "emostream_ingest_requests_total",
        "emostream_fanout_connections",
        "emostream_aggregate_offsets_behind_latest",
    } <= exported


def test_native_driver_starts_min_executors_and_scales_them_on_the_backlog() -> None:
    """Spark starts min_executors with dynamic allocation off; the job's own autoscaler is on."""
    objects = chartlib.rendered(None)
    conf_text = chartlib.find(objects, "ConfigMap", "emostream-aggregate-spark")["data"][
        "spark-defaults.conf"
    ]
    conf = dict(line.split(" ", 1) for line in conf_text.splitlines() if line.strip())
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert conf["spark.executor.instances"] == "1"
    settings = chartlib.settings_of(objects, "aggregate")
    assert settings["EMOSTREAM_AUTOSCALE_EXECUTORS"] == "true"
    assert (settings["EMOSTREAM_MIN_EXECUTORS"], settings["EMOSTREAM_MAX_EXECUTORS"]) == ("1", "6")
    # The job's session builder sets its master from EMOSTREAM_SPARK_MASTER: both must agree.
    settings = chartlib.settings_of(objects, "aggregate")
    assert settings["EMOSTREAM_SPARK_MASTER"] == conf["spark.master"]
    assert conf["spark.sql.shuffle.partitions"] == settings["EMOSTREAM_SHUFFLE_PARTITIONS"]


def test_checkpoint_volume_is_shared_by_driver_and_executors() -> None:
    """Driver and executors mount the same claim; with ReadWriteOnce executors follow the driver."""
    objects = chartlib.rendered(None)
    claim = chartlib.find(objects, "PersistentVolumeClaim", "emostream-checkpoints")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    driver = chartlib.find(objects, "StatefulSet", "emostream-aggregate")["spec"]["template"][
        "spec"
    ]
    (executor,) = chartlib.embedded_pods(objects)
    for spec in (driver, executor["spec"]):
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"emostream-checkpoints"}
        assert "/checkpoints" in {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    affinity = executor["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert affinity[0]["topologyKey"] == "kubernetes.io/hostname"
    assert chartlib.settings_of(objects, "aggregate")["EMOSTREAM_CHECKPOINT_LOCATION"].startswith(
        "/checkpoints/"
    )


def test_operator_mode_renders_a_spark_application() -> None:
    """aggregate.mode=operator: a SparkApplication starting min_executors, no StatefulSet."""
    objects = chartlib.rendered("full-values.yaml")
    (app,) = chartlib.of_kind(objects, "SparkApplication")
    assert app["spec"]["dynamicAllocation"]["enabled"] is False
    assert app["spec"]["executor"]["instances"] == 2
    assert app["spec"]["mainApplicationFile"] == "local:///opt/emostream/spark-jobs/aggregate.py"
    assert not [
        s
        for s in chartlib.of_kind(objects, "StatefulSet")
        if s["metadata"]["name"].endswith("-aggregate")
    ]
    # The metrics Service selects the driver the operator creates.
    service = chartlib.find(objects, "Service", "emostream-aggregate")
    assert chartlib.matches(service["spec"]["selector"], app["spec"]["driver"]["labels"])


def test_config_change_rolls_only_its_own_tier() -> None:
    """A changed ingest setting changes the ingest pods' checksum and nothing else's."""

    def checksums(values: list[str]) -> dict[str, str]:
        objs = chartlib.render(values=values)
        return {
            chartlib.name_of(o): o["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for o in objs
            if o["kind"] in ("Deployment", "StatefulSet")
        }

    before = checksums([])
    after = checksums(["ingest.config.rate_limit_per_s=80"])
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"Deployment/emostream-ingest"}


def test_kafka_is_kraft_with_topics_and_exporter() -> None:
    """Strimzi: one dual-role KRaft node pool, both topics, Kafka Exporter on."""
    objects = chartlib.rendered(None)
    (pool,) = chartlib.of_kind(objects, "KafkaNodePool")
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    (kafka,) = chartlib.of_kind(objects, "Kafka")
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert "kafkaExporter" in kafka["spec"]
    topics = {
        t["spec"]["topicName"]: t["spec"]["partitions"]
        for t in chartlib.of_kind(objects, "KafkaTopic")
    }
    assert topics == {"reactions": 6, "swarms": 3}
    bootstrap = chartlib.settings_of(objects, "ingest")
    env = chartlib.find(objects, "Deployment", "emostream-ingest")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert {
        "name": "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS",
        "value": f"{kafka['metadata']['name']}-kafka-bootstrap.{chartlib.NAMESPACE}.svc:9093",
    } in env
    assert "EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS" not in bootstrap


def test_external_profile_uses_the_given_kafka_and_redis_secret() -> None:
    """kafka/redis external: no Strimzi or Redis objects; Redis URL comes from the Secret."""
    objects = chartlib.rendered("external-values.yaml")
    assert not {"Kafka", "KafkaNodePool", "KafkaTopic"} & {o["kind"] for o in objects}
    assert not [o for o in objects if o["metadata"]["name"] == "emostream-redis"]
    env = chartlib.find(objects, "Deployment", "emostream-fanout")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    redis = next(e for e in env if e["name"] == "EMOSTREAM_REDIS_URL")
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "emostream-redis", "key": "redis-url"}


def test_kafka_listener_admits_only_the_kafka_clients() -> None:
    """Strimzi's NetworkPolicy for the listener (networkPolicyPeers) admits the pods that talk to
    Kafka (ingest, fanout, the Spark driver and its executors) and no other pod of the release."""
    objects = chartlib.rendered(None)
    (kafka,) = chartlib.of_kind(objects, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    peers = [peer["podSelector"] for peer in listener["networkPolicyPeers"]]
    admitted = {
        labels["app.kubernetes.io/component"]
        for name, labels in chartlib.pod_templates_labels(objects)
        if any(chartlib.selects_any(peer, [(name, labels)]) for peer in peers)
    }
    assert admitted == {"ingest", "fanout", "aggregate", "aggregate-executor"}
    off = chartlib.render(None, ["networkPolicy.enabled=false"])
    (kafka,) = chartlib.of_kind(off, "Kafka")
    assert "networkPolicyPeers" not in kafka["spec"]["kafka"]["listeners"][0]


@pytest.mark.parametrize("role", ["ingest", "fanout", "aggregate"])
def test_metrics_ports_admit_the_scraper_and_the_helm_test_pod(role: str) -> None:
    """With networkPolicy.metricsFrom naming Prometheus, each role's metrics port admits it and
    the chart's `helm test` pod (which reads that port), and nothing else."""
    monitoring = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    objects = chartlib.render(
        None, ["networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring"]
    )
    policy = chartlib.find(objects, "NetworkPolicy", f"{chartlib.RELEASE}-{role}")
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "metrics"]
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
    peers = rule["from"]
    assert monitoring in peers
    (pod_peer,) = [p["podSelector"] for p in peers if "podSelector" in p]
    admitted = [n for n, labels in chartlib.pod_templates_labels(objects)
                if chartlib.selects_any(pod_peer, [(n, labels)])]  # fmt: skip
    assert admitted == [f"Pod/{chartlib.RELEASE}-test"]
