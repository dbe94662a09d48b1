#!/usr/bin/env bash
# Install the NetworkPolicy engine (kube-router, firewall only; build-kube-router.sh) on every
# node of the running cluster, and wait until it runs everywhere.
#
# usage: k8s-tests/cluster/install-kube-router.sh   (after create-cluster.sh)
#
# Loads the image into every node (kind load), applies manifests/kube-router.yaml (a DaemonSet in
# kube-system), waits for one ready pod per node, and then for each node's iptables to hold
# kube-router's chains. smoke.sh proves that policies are enforced.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE="docker.io/cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}"
kubectl() { cluster_kubectl "$@"; }

wait_engine() {
  kubectl -n kube-system rollout status daemonset/kube-router --timeout=180s
  local node tries
  for node in $(kubectl get nodes -o name); do
    node="${node#node/}"
    tries=0
    until docker exec "${node}" iptables -w -S KUBE-ROUTER-FORWARD >/dev/null 2>&1; do
      (( ++tries < 60 )) || { echo "no KUBE-ROUTER-FORWARD chain on ${node}"; return 1; }
      sleep 1
    done
    echo "${node}: $(docker exec "${node}" iptables -w -S KUBE-ROUTER-FORWARD | grep -c -- '^-A') rules in KUBE-ROUTER-FORWARD"
  done
  kubectl -n kube-system get pods -l k8s-app=kube-router -o wide
}

main() {
  need_docker
  need_cluster
  image_exists "${IMAGE}" || die "${IMAGE} is missing: run build-kube-router.sh first"
  load_images "${IMAGE}"
  render_manifest "${HERE}/manifests/kube-router.yaml" >"${CACHE}/kube-router.yaml"
  run_logged kube-router-apply kubectl apply -f "${CACHE}/kube-router.yaml"
  run_logged kube-router-wait wait_engine
  say "kube-router ${KUBE_ROUTER_VERSION} enforces NetworkPolicies on every node"
}

main "$@"
