#!/usr/bin/env bash
# Regenerate k8s-tests/schemas/: the JSON schemas the static chart tests validate rendered
# objects against, for exactly the kinds the chart renders, at the versions pinned below.
#
# usage: tools/vendor-schemas.sh
#
# Run it after bumping a version here or making the chart render a new kind, then commit the
# result; the tests themselves never download anything. Sources, all through package registries:
#   Kubernetes   api/openapi-spec/v3/ of the Go module k8s.io/kubernetes (the API server's own
#                OpenAPI documents, as published with each release)
#   Strimzi      the CRDs generated from Maven Central's io.strimzi:api by io.strimzi:crd-generator,
#                the same generator and arguments Strimzi's build uses for its released CRDs
#                (needs Java 21+: JAVA_HOME, else /usr/lib/jvm/temurin-25-jdk-amd64)
#   KEDA         config/crd/bases/ of the Go module github.com/kedacore/keda/v2
#   Prometheus   example/prometheus-operator-crd/ of github.com/prometheus-operator/prometheus-operator
#   Spark        config/crd/bases/ of github.com/kubeflow/spark-operator/v2
# Needs go, mvn and the project's virtualenv (.venv, for PyYAML).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The schema target, named once for the cluster scripts and the static tests too.
KUBERNETES_VERSION="$(sed -n 's/^SCHEMA_KUBERNETES_VERSION=//p' "${ROOT}/k8s-tests/cluster/versions.env")"
STRIMZI_VERSION="1.2.0"
KEDA_VERSION="v2.20.2"
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
SPARK_OPERATOR_VERSION="v2.5.2"

OUT="${ROOT}/k8s-tests/schemas"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
# shellcheck source=steps.sh
source "${ROOT}/tools/steps.sh"

command -v go >/dev/null || die "go is needed"
command -v mvn >/dev/null || die "mvn is needed (apt-get install maven)"
PYTHON="${ROOT}/.venv/bin/python"
[[ -x "${PYTHON}" ]] || die "the project's virtualenv is missing: run make venv"

module_dir() {
  # Download a Go module (a no-op when cached) and print where its files are.
  (cd "${WORK}" && go mod download -json "$1@$2") | "${PYTHON}" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
}

say "Kubernetes ${KUBERNETES_VERSION} OpenAPI (k8s.io/kubernetes module)"
k8s_dir="$(module_dir k8s.io/kubernetes "${KUBERNETES_VERSION}")"
say "KEDA ${KEDA_VERSION}"
keda_dir="$(module_dir github.com/kedacore/keda/v2 "${KEDA_VERSION}")"
say "Prometheus Operator ${PROMETHEUS_OPERATOR_VERSION}"
prom_dir="$(module_dir github.com/prometheus-operator/prometheus-operator "${PROMETHEUS_OPERATOR_VERSION}")"
say "Spark Operator ${SPARK_OPERATOR_VERSION}"
spark_dir="$(module_dir github.com/kubeflow/spark-operator/v2 "${SPARK_OPERATOR_VERSION}")"

say "Strimzi ${STRIMZI_VERSION} CRDs (io.strimzi:api + io.strimzi:crd-generator from Maven Central)"
java="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/java"
[[ -x "${java}" ]] || die "Strimzi's crd-generator needs Java 21+: set JAVA_HOME"
cat >"${WORK}/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId><artifactId>strimzi-crds</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.strimzi</groupId><artifactId>api</artifactId><version>${STRIMZI_VERSION}</version></dependency>
    <dependency><groupId>io.strimzi</groupId><artifactId>crd-generator</artifactId><version>${STRIMZI_VERSION}</version></dependency>
  </dependencies>
</project>
POM
(cd "${WORK}" && mvn -q dependency:build-classpath -Dmdep.outputFile=classpath.txt)
mkdir -p "${WORK}/strimzi"
# The arguments of api/pom.xml's generate-crd-co-install-v1 execution in Strimzi's build.
"${java}" -cp "$(cat "${WORK}/classpath.txt")" io.strimzi.crdgenerator.CrdGenerator \
  --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
  "io.strimzi.api.kafka.model.kafka.Kafka=${WORK}/strimzi/040-Crd-kafka.yaml" \
  "io.strimzi.api.kafka.model.topic.KafkaTopic=${WORK}/strimzi/043-Crd-kafkatopic.yaml" \
  "io.strimzi.api.kafka.model.user.KafkaUser=${WORK}/strimzi/044-Crd-kafkauser.yaml" \
  "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=${WORK}/strimzi/045-Crd-kafkanodepool.yaml"

cat >"${WORK}/manifest.json" <<JSON
{
  "out": "${OUT}",
  "kubernetes": {
    "source": "Go module k8s.io/kubernetes ${KUBERNETES_VERSION}",
    "file_prefix": "api/openapi-spec/v3",
    "spec_dir": "${k8s_dir}/api/openapi-spec/v3",
    "kinds": [
      ["v1", "ConfigMap"], ["v1", "Secret"], ["v1", "Service"], ["v1", "ServiceAccount"],
      ["v1", "PersistentVolumeClaim"], ["v1", "Pod"],
      ["apps/v1", "Deployment"], ["apps/v1", "StatefulSet"], ["batch/v1", "Job"],
      ["policy/v1", "PodDisruptionBudget"],
      ["networking.k8s.io/v1", "Ingress"], ["networking.k8s.io/v1", "NetworkPolicy"],
      ["rbac.authorization.k8s.io/v1", "Role"], ["rbac.authorization.k8s.io/v1", "RoleBinding"],
      ["autoscaling/v2", "HorizontalPodAutoscaler"]
    ]
  },
  "crds": [
    {"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka", "path": "${WORK}/strimzi/040-Crd-kafka.yaml",
     "source": "Strimzi ${STRIMZI_VERSION}: io.strimzi:api and io.strimzi:crd-generator (Maven Central)",
     "file": "packaging/install/cluster-operator/040-Crd-kafka.yaml (regenerated)"},
    {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool", "path": "${WORK}/strimzi/045-Crd-kafkanodepool.yaml",
     "source": "Strimzi ${STRIMZI_VERSION}: io.strimzi:api and io.strimzi:crd-generator (Maven Central)",
     "file": "packaging/install/cluster-operator/045-Crd-kafkanodepool.yaml (regenerated)"},
    {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic", "path": "${WORK}/strimzi/043-Crd-kafkatopic.yaml",
     "source": "Strimzi ${STRIMZI_VERSION}: io.strimzi:api and io.strimzi:crd-generator (Maven Central)",
     "file": "packaging/install/cluster-operator/043-Crd-kafkatopic.yaml (regenerated)"},
    {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser", "path": "${WORK}/strimzi/044-Crd-kafkauser.yaml",
     "source": "Strimzi ${STRIMZI_VERSION}: io.strimzi:api and io.strimzi:crd-generator (Maven Central)",
     "file": "packaging/install/cluster-operator/044-Crd-kafkauser.yaml (regenerated)"},
    {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "path": "${keda_dir}/config/crd/bases/keda.sh_scaledobjects.yaml",
     "source": "Go module github.com/kedacore/keda/v2 ${KEDA_VERSION}", "file": "config/crd/bases/keda.sh_scaledobjects.yaml"},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "path": "${prom_dir}/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
     "source": "Go module github.com/prometheus-operator/prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}", "file": "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "path": "${prom_dir}/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
     "source": "Go module github.com/prometheus-operator/prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}", "file": "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "path": "${prom_dir}/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
     "source": "Go module github.com/prometheus-operator/prometheus-operator ${PROMETHEUS_OPERATOR_VERSION}", "file": "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"},
    {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "path": "${spark_dir}/config/crd/bases/sparkoperator.k8s.io_sparkapplications.yaml",
     "source": "Go module github.com/kubeflow/spark-operator/v2 ${SPARK_OPERATOR_VERSION}", "file": "config/crd/bases/sparkoperator.k8s.io_sparkapplications.yaml"}
  ]
}
JSON

rm -rf "${OUT:?}"/*/ "${OUT:?}/SOURCES.json"
mkdir -p "${OUT}"
"${PYTHON}" "${ROOT}/tools/vendor_schemas.py" --manifest "${WORK}/manifest.json"
say "wrote $(find "${OUT}" -name '*.json' | wc -l) files, $(du -sh "${OUT}" | cut -f1) in ${OUT#"${ROOT}"/}"
