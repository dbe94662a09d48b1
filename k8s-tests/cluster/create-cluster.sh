#!/usr/bin/env bash
# Step 4: create the kind cluster "emostream" from the offline node image, and wait for it.
#
# usage: k8s-tests/cluster/create-cluster.sh
#
# Needs the node image of build.sh ($NODE_IMAGE); kind pulls nothing when it exists. Runs
# prepare-host.sh first (privileged containers on a machine without every capability). The
# cluster has no kindnetd: the node image carries a ptp CNI config (disableDefaultCNI), and the
# kubelet uses the cgroupfs driver, like the node's containerd, because this host's Docker runs
# cgroup v1. Waits until the node is Ready and CoreDNS answers, then writes the kubeconfig to
# .emostream/cluster/kubeconfig:
#   export KUBECONFIG=$PWD/.emostream/cluster/kubeconfig
# A cluster that already runs is kept; its kubeconfig is written again.
# Environment: EMOSTREAM_CLUSTER_NAME (default emostream), EMOSTREAM_CLUSTER_RETAIN=1 keeps the
# node container of a failed creation for `docker exec` and `kind export logs`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="${CACHE}/kind-config.yaml"

write_config() {
  cat >"${CONFIG}" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: ${CLUSTER_NAME}
networking:
  disableDefaultCNI: true
kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    cgroupDriver: cgroupfs
nodes:
  - role: control-plane
    image: ${NODE_IMAGE}
YAML
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }

wait_ready() {
  local kubectl=(kubectl --kubeconfig "${KUBECONFIG_FILE}")
  "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=300s
  "${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=300s
  "${kubectl[@]}" -n local-path-storage rollout status deployment/local-path-provisioner --timeout=300s
  "${kubectl[@]}" get nodes -o wide
  "${kubectl[@]}" get pods -A -o wide
}

main() {
  need_docker
  command -v kind >/dev/null 2>&1 || die "kind is missing: run build.sh first"
  image_exists "${NODE_IMAGE}" || die "${NODE_IMAGE} is missing: run build.sh first"
  if [[ "$(id -u)" == 0 ]]; then
    "${HERE}/prepare-host.sh"
  else
    say "not root: skipping prepare-host.sh (Docker must start privileged containers)"
  fi
  write_config
  if cluster_exists; then
    say "cluster ${CLUSTER_NAME} exists; keeping it"
  else
    local retain=()
    [[ "${EMOSTREAM_CLUSTER_RETAIN:-0}" != 1 ]] || retain=(--retain)
    say "creating cluster ${CLUSTER_NAME} from ${NODE_IMAGE}"
    run_logged kind-create kind create cluster --config "${CONFIG}" --kubeconfig "${KUBECONFIG_FILE}" \
      --wait 0s "${retain[@]}"
  fi
  kind export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_FILE}" 2>/dev/null
  run_logged wait-ready wait_ready
  say "cluster ${CLUSTER_NAME} is ready: export KUBECONFIG=${KUBECONFIG_FILE}"
}

main "$@"
