#!/usr/bin/env bash
# Remove the kind cluster (KIND_CLUSTER, default emostream: its node containers), its
# kubeconfig and its shared file system (the volumes of the StorageClass `shared`, lib.sh's
# SHARED_DIR). The images and caches stay, so up.sh makes a new cluster in a few minutes.
#
# usage: k8s-tests/cluster/delete-cluster.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_docker
command -v kind >/dev/null 2>&1 || die "kind is missing: run build.sh first"
if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  kind delete cluster --name "${CLUSTER_NAME}" --kubeconfig "${KUBECONFIG_FILE}"
  say "cluster ${CLUSTER_NAME} deleted"
else
  say "no cluster ${CLUSTER_NAME}"
fi
rm -f "${KUBECONFIG_FILE}"
if [[ -d "${SHARED_DIR}" ]]; then
  rm -rf "${SHARED_DIR}" || die "cannot remove ${SHARED_DIR} (files the cluster's pods wrote)"
  say "removed the shared file system ${SHARED_DIR}"
fi
