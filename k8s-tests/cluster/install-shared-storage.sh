#!/usr/bin/env bash
# Install the StorageClass `shared`: ReadWriteMany volumes on the file system every node mounts,
# as NFS, EFS or CephFS provide on a real cluster.
#
# usage: k8s-tests/cluster/install-shared-storage.sh   (after create-cluster.sh)
#
# create-cluster.sh mounts SHARED_DIR (lib.sh: shared/<cluster> in the cache) into every node at
# SHARED_NODE_PATH (/mnt/shared). This applies manifests/shared-storage.yaml: a second
# local-path-provisioner (namespace shared-storage, provisioner emostream.io/shared-path, the
# image already in every node) configured with `sharedFileSystemPath`, and the class `shared`
# (volumeBindingMode Immediate). Waits for the provisioner, then for a ReadWriteMany claim to be
# bound to a volume with no node affinity whose directory appears in SHARED_DIR; the claim is
# deleted again. smoke.sh proves that pods on two nodes share its files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMESPACE=shared-storage
PROBE=shared-storage-probe
kubectl() { cluster_kubectl "$@"; }

render() {
  render_manifest "${HERE}/manifests/shared-storage.yaml" |
    sed "s|@SHARED_NODE_PATH@|${SHARED_NODE_PATH}|g" >"${CACHE}/shared-storage.yaml"
  ! grep -n '@[A-Z_]*@' "${CACHE}/shared-storage.yaml" || die "shared-storage.yaml: a placeholder left"
}

wait_provisioner() {
  kubectl -n "${NAMESPACE}" rollout status deployment/shared-storage-provisioner --timeout=180s
  kubectl get storageclass
}

# A claim of the class is bound at once (Immediate), to a volume on the shared path that every
# node may mount; its directory is made in SHARED_DIR on this machine.
probe_claim() {
  kubectl -n "${NAMESPACE}" delete pvc "${PROBE}" --ignore-not-found --wait=true
  shared_claim "${PROBE}" "${NAMESPACE}"
  kubectl -n "${NAMESPACE}" wait --for=jsonpath='{.status.phase}'=Bound "pvc/${PROBE}" --timeout=120s
  local pv path affinity
  pv="$(kubectl -n "${NAMESPACE}" get pvc "${PROBE}" -o jsonpath='{.spec.volumeName}')"
  path="$(kubectl get pv "${pv}" -o jsonpath='{.spec.hostPath.path}')"
  affinity="$(kubectl get pv "${pv}" -o jsonpath='{.spec.nodeAffinity}')"
  echo "${pv}: ${path}, node affinity: ${affinity:-none}"
  [[ "${path}" == "${SHARED_NODE_PATH}/"* ]] || { echo "${pv} is not on ${SHARED_NODE_PATH}"; return 1; }
  [[ -z "${affinity}" ]] || { echo "${pv} is tied to a node"; return 1; }
  [[ -d "${SHARED_DIR}/${path#"${SHARED_NODE_PATH}/"}" ]] || { echo "no ${path#"${SHARED_NODE_PATH}/"} in ${SHARED_DIR}"; return 1; }
  kubectl -n "${NAMESPACE}" delete pvc "${PROBE}" --wait=true
}

main() {
  need_docker
  need_cluster
  render
  run_logged shared-storage-apply kubectl apply -f "${CACHE}/shared-storage.yaml"
  run_logged shared-storage-wait wait_provisioner
  run_logged shared-storage-probe probe_claim
  say "StorageClass shared (ReadWriteMany, emostream.io/shared-path): volumes in ${SHARED_DIR}, \
at ${SHARED_NODE_PATH} on every node"
}

main "$@"
