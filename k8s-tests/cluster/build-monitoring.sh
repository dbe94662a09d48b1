#!/usr/bin/env bash
# The monitoring stack users install beside the chart, from the Go module proxy: the Prometheus
# Operator, kube-state-metrics and metrics-server, for install-monitoring.sh.
#
# usage: k8s-tests/cluster/build-monitoring.sh   (after build-images.sh, which makes the base)
#
#   quay.io/prometheus-operator/prometheus-operator:<v>        /bin/operator
#   quay.io/prometheus-operator/prometheus-config-reloader:<v> /bin/prometheus-config-reloader,
#                                                              which the operator puts beside
#                                                              every Prometheus it runs
#   registry.k8s.io/kube-state-metrics/kube-state-metrics:<v>  /kube-state-metrics
#   registry.k8s.io/metrics-server/metrics-server:<v>          /metrics-server
#   <cache>/manifests/prometheus-operator-crds-<v>.yaml        the operator's CRDs, from its module
#                                                              (example/prometheus-operator-crd)
# Each binary is static, on the static base (build-images.sh), running as nobody like upstream's
# images, under upstream's image names: the same manifests pull upstream's images where a
# registry is reachable. The Prometheus Operator's go.mod replaces its two API modules with
# local directories, which `go install` refuses; a wrapper module requires it instead and takes
# the published API modules of the same version.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
KSM_MODULE=k8s.io/kube-state-metrics/v2
METRICS_SERVER_MODULE=sigs.k8s.io/metrics-server
OPERATOR_BIN="${BIN}/prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}"
KSM_BIN="${BIN}/kube-state-metrics-${KUBE_STATE_METRICS_VERSION}"
METRICS_SERVER_BIN="${BIN}/metrics-server-${METRICS_SERVER_VERSION}"
CRDS="${MANIFESTS}/prometheus-operator-crds-${PROMETHEUS_OPERATOR_VERSION}.yaml"

module_dir() { go mod download -json "$1@$2" | jq -r .Dir; }
build_date() { date -u +%Y-%m-%dT%H:%M:%SZ; }

build_operator() {
  local out=$1 source go_version stamp=github.com/prometheus/common/version
  local version="${PROMETHEUS_OPERATOR_VERSION}"
  source="$(module_dir "${OPERATOR_MODULE}" "${version}")"
  go_version="$(sed -n 's/^go //p' "${source}/go.mod")"
  printf 'module local/prometheus-operator\ngo %s\nrequire %s %s\n' \
    "${go_version}" "${OPERATOR_MODULE}" "${version}" | write_module prometheus-operator
  cd "${SRC}/prometheus-operator"
  # Upstream's release build stamps the version the same way (Makefile, GO_BUILD_LDFLAGS).
  local ldflags="-s -w -X ${stamp}.Version=${version#v} -X ${stamp}.Revision=${version}"
  ldflags+=" -X ${stamp}.Branch=release-${version#v} -X ${stamp}.BuildUser=emostream -X ${stamp}.BuildDate=$(build_date)"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath -ldflags "${ldflags}" -o "${out}/" \
    "${OPERATOR_MODULE}/cmd/operator" "${OPERATOR_MODULE}/cmd/prometheus-config-reloader"
  "${out}/operator" --version
}

build_kube_state_metrics() {
  local stamp=github.com/prometheus/common/version
  CGO_ENABLED=0 GOBIN="$1" nice_go install -trimpath -ldflags "-s -w \
-X ${stamp}.Version=${KUBE_STATE_METRICS_VERSION} -X ${stamp}.Revision=${KUBE_STATE_METRICS_VERSION} \
-X ${stamp}.BuildUser=emostream -X ${stamp}.BuildDate=$(build_date)" \
    "${KSM_MODULE}@${KUBE_STATE_METRICS_VERSION}"
  "$1/kube-state-metrics" version
}

build_metrics_server() {
  local stamp=k8s.io/client-go/pkg/version
  CGO_ENABLED=0 GOBIN="$1" nice_go install -trimpath -ldflags "-s -w \
-X ${stamp}.gitVersion=${METRICS_SERVER_VERSION} -X ${stamp}.buildDate=$(build_date)" \
    "${METRICS_SERVER_MODULE}/cmd/metrics-server@${METRICS_SERVER_VERSION}"
  [[ -x "$1/metrics-server" ]]
}

# static_binary_image IMAGE BINARY DESTINATION ENTRYPOINT_JSON: BINARY at DESTINATION on the
# static base, running as nobody (65534), as upstream's images do.
static_binary_image() {
  local image=$1 binary=$2 destination=$3 entrypoint=$4 context
  context="$(context_dir "$(basename "${image%%:*}")")"
  cp "${binary}" "${context}/"
  printf '%s\n' "FROM ${STATIC_BASE}" "COPY $(basename "${binary}") ${destination}" \
    'USER 65534:65534' "ENTRYPOINT ${entrypoint}" >"${context}/Dockerfile"
  build_image "${image}" "${context}"
}

render_crds() {
  local source file
  source="$(module_dir "${OPERATOR_MODULE}" "${PROMETHEUS_OPERATOR_VERSION}")"
  mkdir -p "${MANIFESTS}"
  for file in "${source}"/example/prometheus-operator-crd/*.yaml; do
    echo "---"
    cat "${file}"
  done >"${CRDS}.part"
  [[ "$(grep -c '^kind: CustomResourceDefinition' "${CRDS}.part")" -ge 10 ]] ||
    die "expected the operator's 10 CRDs in ${source}/example/prometheus-operator-crd"
  mv "${CRDS}.part" "${CRDS}"
}

main() {
  need_docker
  # Cold, the three builds take about 20 minutes on two cores; the Kubernetes modules they share
  # with KEDA's build are compiled once.
  build_once "prometheus-operator-${PROMETHEUS_OPERATOR_VERSION}" build_operator
  build_once "kube-state-metrics-${KUBE_STATE_METRICS_VERSION}" build_kube_state_metrics
  build_once "metrics-server-${METRICS_SERVER_VERSION}" build_metrics_server
  image_exists "${STATIC_BASE}" || die "${STATIC_BASE} is missing: run build-images.sh first"
  local v="${PROMETHEUS_OPERATOR_VERSION}"
  static_binary_image "quay.io/prometheus-operator/prometheus-operator:${v}" \
    "${OPERATOR_BIN}/operator" /bin/operator '["/bin/operator"]'
  static_binary_image "quay.io/prometheus-operator/prometheus-config-reloader:${v}" \
    "${OPERATOR_BIN}/prometheus-config-reloader" /bin/prometheus-config-reloader \
    '["/bin/prometheus-config-reloader"]'
  static_binary_image "registry.k8s.io/kube-state-metrics/kube-state-metrics:${KUBE_STATE_METRICS_VERSION}" \
    "${KSM_BIN}/kube-state-metrics" /kube-state-metrics \
    '["/kube-state-metrics", "--port=8080", "--telemetry-port=8081"]'
  static_binary_image "registry.k8s.io/metrics-server/metrics-server:${METRICS_SERVER_VERSION}" \
    "${METRICS_SERVER_BIN}/metrics-server" /metrics-server '["/metrics-server"]'
  run_logged prometheus-operator-crds render_crds
  say "monitoring images: ${IMAGES[*]}"
  say "Prometheus Operator CRDs: ${CRDS}"
}

main "$@"
