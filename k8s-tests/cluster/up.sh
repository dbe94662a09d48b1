#!/usr/bin/env bash
# The one way to a running offline cluster: build whatever is missing, create the cluster, install
# the shared storage class, the NetworkPolicy engine, KEDA and the monitoring stack, check it;
# every step timed.
#
# usage: k8s-tests/cluster/up.sh        (as root on a fresh machine: it installs Docker too)
#
#   host         host-packages.sh: Docker engine running, debootstrap, tools
#   build        build.sh: Kubernetes and the rest from the Go module proxy, Debian root file
#                systems, system images, node image (about 5 s when all is built)
#                build-kube-router.sh, build-keda.sh, build-prometheus.sh, build-monitoring.sh,
#                then the Go build cache is removed (the binaries stay)
#   cluster      create-cluster.sh: kind cluster, one control-plane and two worker nodes, each
#                mounting the shared directory
#   install      install-shared-storage.sh (StorageClass shared, ReadWriteMany),
#                install-kube-router.sh, install-keda.sh, install-monitoring.sh, then smoke.sh
# A running cluster on which this same set (versions, manifests, install scripts, images) was
# installed is left as it is: the install steps and the smoke check are skipped. Ends with a
# table of the timings and the kubeconfig's path. Environment: see env.sh and lib.sh;
# EMOSTREAM_UP_TIMINGS=FILE also appends each timing to FILE (name<TAB>seconds s), as
# k8s-tests/e2e/run.sh does for its own table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROWS=()
MARK=emostream-cluster

# record NAME VALUE: a row of the timings table.
record() {
  ROWS+=("$1"$'\t'"$2")
  [[ -z "${EMOSTREAM_UP_TIMINGS:-}" ]] || printf '%s\t%s\n' "$1" "$2" >>"${EMOSTREAM_UP_TIMINGS}"
}

step() {
  local name=$1 started=${SECONDS}
  shift
  printf '\n=== %s\n' "${name}"
  "$@"
  record "${name}" "$((SECONDS - started)) s"
}

# Everything the install steps put into the cluster: when this is what the cluster records
# (ConfigMap kube-system/emostream-cluster), there is nothing to install.
install_inputs() {
  {
    cat "${HERE}/versions.env" "${HERE}"/manifests/*.yaml "${HERE}"/install-*.sh
    docker image inspect -f '{{.Id}}' \
      "docker.io/cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}" \
      "ghcr.io/kedacore/keda:${KEDA_VERSION#v}" \
      "ghcr.io/kedacore/keda-metrics-apiserver:${KEDA_VERSION#v}" \
      "ghcr.io/kedacore/keda-admission-webhooks:${KEDA_VERSION#v}" \
      "quay.io/prometheus-operator/prometheus-operator:${PROMETHEUS_OPERATOR_VERSION}" \
      "quay.io/prometheus-operator/prometheus-config-reloader:${PROMETHEUS_OPERATOR_VERSION}" \
      "registry.k8s.io/kube-state-metrics/kube-state-metrics:${KUBE_STATE_METRICS_VERSION}" \
      "registry.k8s.io/metrics-server/metrics-server:${METRICS_SERVER_VERSION}" \
      "quay.io/prometheus/prometheus:${PROMETHEUS_VERSION}"
  } | sha256sum | cut -c1-16
}

# The digest the cluster records, if the parts it names are still there.
installed_inputs() {
  local part
  for part in shared-storage/deployment/shared-storage-provisioner kube-system/daemonset/kube-router \
    keda/deployment/keda-operator monitoring/deployment/prometheus-operator; do
    cluster_kubectl -n "${part%%/*}" get "${part#*/}" >/dev/null 2>&1 || return 0
  done
  cluster_kubectl -n kube-system get configmap "${MARK}" -o jsonpath='{.data.inputs}' 2>/dev/null || true
}

install_all() {
  step "install: shared storage (StorageClass shared, ReadWriteMany)" "${HERE}/install-shared-storage.sh"
  step "install: kube-router (NetworkPolicy engine)" "${HERE}/install-kube-router.sh"
  step "install: KEDA, with its scaling check" "${HERE}/install-keda.sh"
  step "install: monitoring stack, with its checks" "${HERE}/install-monitoring.sh"
  step "smoke check: pods, Services, DNS, shared volume, NetworkPolicy" "${HERE}/smoke.sh"
  cluster_kubectl -n kube-system create configmap "${MARK}" --from-literal=inputs="$1" \
    --from-literal=installed="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --dry-run=client -o yaml |
    cluster_kubectl apply -f - >/dev/null
}

# Every binary is kept in bin/; the Go build cache (about 15 GB after a cold build) would only
# speed up rebuilding one after a version bump, so it goes. The module cache (about 8 GB) stays.
trim_go_build_cache() {
  if [[ -d "${GOCACHE}" ]]; then
    say "removing the Go build cache: $(du -sh "${GOCACHE}" | cut -f1)"
    go clean -cache
  fi
}

main() {
  local started=${SECONDS}
  step "host: Docker engine, debootstrap, tools" "${HERE}/host-packages.sh"
  step "build: Kubernetes, root file systems, node image" "${HERE}/build.sh"
  step "build: kube-router" "${HERE}/build-kube-router.sh"
  step "build: KEDA" "${HERE}/build-keda.sh"
  step "build: Prometheus" "${HERE}/build-prometheus.sh"
  step "build: Prometheus Operator, kube-state-metrics, metrics-server" "${HERE}/build-monitoring.sh"
  step "build: trim the Go build cache" trim_go_build_cache
  step "cluster: create (${CLUSTER_NAME}, $((${EMOSTREAM_CLUSTER_WORKERS:-2} + 1)) nodes)" "${HERE}/create-cluster.sh"
  local inputs
  inputs="$(install_inputs)"
  if [[ "$(installed_inputs)" == "${inputs}" ]]; then
    say "cluster ${CLUSTER_NAME} has this shared storage, kube-router, KEDA and monitoring stack installed already"
    record "install: storage, kube-router, KEDA, monitoring; smoke check" "installed already"
  else
    install_all "${inputs}"
  fi
  printf '\n=== cluster %s up in %d s\n' "${CLUSTER_NAME}" "$((SECONDS - started))"
  printf '%s\n' "${ROWS[@]}" | awk -F'\t' '{printf "  %-62s %s\n", $1, $2}'
  echo "export KUBECONFIG=${KUBECONFIG_FILE}"
}

main "$@"
