#!/usr/bin/env bash
# Create the kind cluster (one control-plane and two worker nodes) from the offline node image,
# and wait for it.
#
# usage: k8s-tests/cluster/create-cluster.sh     (up.sh runs it, then installs the rest)
#
# Needs the node image of build.sh ($NODE_IMAGE); kind pulls nothing when it exists. Runs
# prepare-host.sh first (privileged containers on a machine without every capability). The
# cluster has no kindnetd (disableDefaultCNI): each node's pod-network service
# (images/node/pod-network.sh) writes the ptp CNI config for the pod subnet the controller
# manager gave the node and routes the other nodes' subnets, and a node is Ready from then on
# (manifests/pod-network.yaml lets the nodes read each other's Node objects for that).
# Every node mounts one directory of this machine, SHARED_DIR (lib.sh: shared/<cluster> in the
# cache, emptied for a new cluster), at SHARED_NODE_PATH (/mnt/shared): the shared file system
# of the StorageClass `shared` (install-shared-storage.sh), as NFS or EFS is on a real cluster.
# NetworkPolicies are enforced once install-kube-router.sh has run. The kubelet uses the cgroupfs
# driver, like the node's containerd, because this host's Docker runs cgroup v1. Waits until
# every node is Ready and CoreDNS and the storage provisioner run, then writes the kubeconfig
# (its path is printed; env.sh names it). A cluster that already runs with the same nodes is
# kept; one with other nodes (an older single-node cluster), or whose nodes lack the shared
# directory, is named, to be deleted first.
# Environment: KIND_CLUSTER (default emostream), EMOSTREAM_CLUSTER_WORKERS (default 2),
# EMOSTREAM_CLUSTER_RETAIN=1 keeps the node containers of a failed creation for `docker exec`
# and `kind export logs`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="${CACHE}/kind-config-${CLUSTER_NAME}.yaml"
WORKERS="${EMOSTREAM_CLUSTER_WORKERS:-2}"

write_config() {
  {
    cat <<YAML
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
YAML
    local roles=(control-plane) role worker
    for ((worker = 1; worker <= WORKERS; worker++)); do roles+=(worker); done
    for role in "${roles[@]}"; do
      cat <<YAML
  - role: ${role}
    image: ${NODE_IMAGE}
    extraMounts:
      - hostPath: ${SHARED_DIR}
        containerPath: ${SHARED_NODE_PATH}
YAML
    done
  } >"${CONFIG}"
}

# The node containers that do not mount SHARED_DIR at SHARED_NODE_PATH, one a line.
nodes_without_shared_dir() {
  local node
  for node in $(kind get nodes --name "${CLUSTER_NAME}"); do
    [[ "$(docker inspect -f "{{range .Mounts}}{{if eq .Destination \"${SHARED_NODE_PATH}\"}}{{.Source}}{{end}}{{end}}" \
      "${node}")" == "${SHARED_DIR}" ]] || echo "${node}"
  done
}

# Each node sees the file this machine writes into SHARED_DIR.
check_shared_dir() {
  local mark node
  mark="${CLUSTER_NAME} $(date +%s%N)"
  echo "${mark}" >"${SHARED_DIR}/.emostream-shared"
  for node in $(kind get nodes --name "${CLUSTER_NAME}"); do
    [[ "$(docker exec "${node}" cat "${SHARED_NODE_PATH}/.emostream-shared")" == "${mark}" ]] ||
      { echo "${node} does not see ${SHARED_DIR} at ${SHARED_NODE_PATH}"; return 1; }
    echo "${node}: ${SHARED_NODE_PATH} is ${SHARED_DIR}"
  done
}

cluster_exists() { kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; }

wait_ready() {
  local kubectl=(kubectl --kubeconfig "${KUBECONFIG_FILE}")
  local tries=0
  until [[ "$("${kubectl[@]}" get nodes -o name | grep -c .)" -eq $((WORKERS + 1)) ]]; do
    (( ++tries < 150 )) || { echo "expected $((WORKERS + 1)) nodes"; return 1; }
    sleep 2
  done
  "${kubectl[@]}" wait --for=condition=Ready node --all --timeout=300s
  "${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=300s
  "${kubectl[@]}" -n local-path-storage rollout status deployment/local-path-provisioner --timeout=300s
  "${kubectl[@]}" get nodes -o wide
  "${kubectl[@]}" get nodes -o custom-columns=NAME:.metadata.name,POD-SUBNET:.spec.podCIDR
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
  mkdir -p "${SHARED_DIR}"
  SHARED_DIR="$(cd "${SHARED_DIR}" && pwd -P)"
  write_config
  if cluster_exists; then
    local nodes unshared
    nodes="$(kind get nodes --name "${CLUSTER_NAME}" | grep -c .)"
    [[ "${nodes}" -eq $((WORKERS + 1)) ]] || die "cluster ${CLUSTER_NAME} runs ${nodes} node(s), \
not $((WORKERS + 1)): delete it first (delete-cluster.sh)"
    unshared="$(nodes_without_shared_dir | paste -sd ' ')"
    [[ -z "${unshared}" ]] || die "cluster ${CLUSTER_NAME}: ${unshared} do not mount ${SHARED_DIR} at \
${SHARED_NODE_PATH} (made before the StorageClass shared): delete it first (delete-cluster.sh)"
    say "cluster ${CLUSTER_NAME} exists; keeping it"
  else
    # A new cluster starts with an empty shared file system.
    find "${SHARED_DIR}" -mindepth 1 -delete ||
      die "cannot empty ${SHARED_DIR} (files an earlier cluster's pods left)"
    local retain=()
    [[ "${EMOSTREAM_CLUSTER_RETAIN:-0}" != 1 ]] || retain=(--retain)
    say "creating cluster ${CLUSTER_NAME}: 1 control-plane and ${WORKERS} worker nodes from ${NODE_IMAGE}"
    run_logged kind-create kind create cluster --config "${CONFIG}" --kubeconfig "${KUBECONFIG_FILE}" \
      --wait 0s "${retain[@]}"
  fi
  kind export kubeconfig --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_FILE}" 2>/dev/null
  run_logged pod-network-rbac kubectl --kubeconfig "${KUBECONFIG_FILE}" apply -f "${HERE}/manifests/pod-network.yaml"
  run_logged wait-ready wait_ready
  run_logged shared-dir check_shared_dir
  say "cluster ${CLUSTER_NAME} is ready: export KUBECONFIG=${KUBECONFIG_FILE}"
}

main "$@"
