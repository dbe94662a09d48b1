#!/usr/bin/env bash
# Install the monitoring stack (build-monitoring.sh, build-prometheus.sh) on the running cluster,
# and check that each part serves.
#
# usage: k8s-tests/cluster/install-monitoring.sh   (after create-cluster.sh)
#
#   1. kind load of the five images into every node
#   2. the Prometheus Operator's CRDs, applied server-side (too large for client-side apply's
#      annotation), until established
#   3. manifests/monitoring.yaml (namespace monitoring: the operator, kube-state-metrics, a
#      Prometheus) and manifests/metrics-server.yaml (kube-system)
#   4. checks: the resource metrics API answers `kubectl top nodes`; kube-state-metrics serves
#      kube_deployment_status_replicas; the Prometheus the operator runs (with its config
#      reloader) scrapes kube-state-metrics and every kubelet's cAdvisor through ServiceMonitors
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CRDS="${MANIFESTS}/prometheus-operator-crds-${PROMETHEUS_OPERATOR_VERSION}.yaml"
IMAGES_NEEDED=(
  "quay.io/prometheus-operator/prometheus-operator:${PROMETHEUS_OPERATOR_VERSION}"
  "quay.io/prometheus-operator/prometheus-config-reloader:${PROMETHEUS_OPERATOR_VERSION}"
  "registry.k8s.io/kube-state-metrics/kube-state-metrics:${KUBE_STATE_METRICS_VERSION}"
  "registry.k8s.io/metrics-server/metrics-server:${METRICS_SERVER_VERSION}"
  "quay.io/prometheus/prometheus:${PROMETHEUS_VERSION}"
)
kubectl() { cluster_kubectl "$@"; }

# retry SECONDS COMMAND...: run COMMAND every 2 s until it succeeds or SECONDS have passed.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 2
  done
}

apply_crds() {
  kubectl apply --server-side --force-conflicts -f "${CRDS}"
  local crds=()
  mapfile -t crds < <(kubectl get crd -o name | grep 'monitoring.coreos.com$')
  kubectl wait --for=condition=Established --timeout=120s "${crds[@]}"
}

apply_stack() {
  local manifest
  for manifest in monitoring metrics-server; do
    render_manifest "${HERE}/manifests/${manifest}.yaml" >"${CACHE}/${manifest}.yaml"
    kubectl apply --server-side --force-conflicts -f "${CACHE}/${manifest}.yaml"
  done
}

wait_stack() {
  kubectl -n monitoring rollout status deployment/prometheus-operator --timeout=300s
  kubectl -n monitoring rollout status deployment/kube-state-metrics --timeout=300s
  kubectl -n kube-system rollout status deployment/metrics-server --timeout=300s
  kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=300s
  # The operator makes the StatefulSet of the Prometheus resource.
  retry 120 kubectl -n monitoring get statefulset/prometheus-k8s >/dev/null
  kubectl -n monitoring rollout status statefulset/prometheus-k8s --timeout=300s
  kubectl -n monitoring get pods -o wide
}

# metrics-server has scraped every kubelet once.
top_nodes() {
  local out
  out="$(kubectl top nodes 2>/dev/null)" || return 1
  [[ "$(grep -c . <<<"${out}")" -gt "$(kubectl get nodes -o name | grep -c .)" ]] || return 1
  echo "${out}"
}

ksm_series() {
  kubectl get --raw "/api/v1/namespaces/monitoring/services/kube-state-metrics:http-metrics/proxy/metrics" |
    grep '^kube_deployment_status_replicas{' | grep 'deployment="coredns"'
}

# prometheus_has QUERY: the operator's Prometheus answers QUERY (PromQL) with a series.
prometheus_has() {
  local answer
  answer="$(kubectl get --raw "/api/v1/namespaces/monitoring/services/prometheus-operated:web/proxy/api/v1/query?query=$(jq -rn --arg q "$1" '$q|@uri')")" ||
    return 1
  jq -e '.data.result | length > 0' <<<"${answer}" >/dev/null || return 1
  jq -c '.data.result[0] | {metric: .metric.__name__, namespace: .metric.namespace, value: .value[1]}' <<<"${answer}"
}

check_stack() {
  echo "kubectl top nodes:"
  retry 180 top_nodes || { echo "kubectl top nodes never listed every node"; return 1; }
  echo "kube-state-metrics:"
  retry 60 ksm_series || { echo "kube-state-metrics serves no kube_deployment_status_replicas"; return 1; }
  echo "the operator's Prometheus, scraping kube-state-metrics and cAdvisor through ServiceMonitors:"
  local query
  for query in 'kube_deployment_status_replicas{deployment="coredns"}' \
    'container_cpu_usage_seconds_total{namespace="kube-system",container!=""}'; do
    retry 180 prometheus_has "${query}" || { echo "Prometheus has no ${query}"; return 1; }
  done
}

main() {
  need_docker
  need_cluster
  [[ -s "${CRDS}" ]] || die "no ${CRDS}: run build-monitoring.sh first"
  local image
  for image in "${IMAGES_NEEDED[@]}"; do
    image_exists "${image}" || die "${image} is missing: run build-monitoring.sh and build-prometheus.sh first"
  done
  load_images "${IMAGES_NEEDED[@]}"
  run_logged monitoring-crds apply_crds
  run_logged monitoring-apply apply_stack
  run_logged monitoring-wait wait_stack
  run_logged monitoring-check check_stack
  sed 's/^/    /' "${LOGS}/monitoring-check.log"
  say "monitoring: Prometheus Operator ${PROMETHEUS_OPERATOR_VERSION}, kube-state-metrics ${KUBE_STATE_METRICS_VERSION}, metrics-server ${METRICS_SERVER_VERSION}"
}

main "$@"
