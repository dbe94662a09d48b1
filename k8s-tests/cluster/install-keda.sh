#!/usr/bin/env bash
# Install KEDA (built by build-keda.sh) on the running cluster and wait until it serves.
#
# usage: k8s-tests/cluster/install-keda.sh      (after create-cluster.sh and build-keda.sh)
#
# Loads the three KEDA images into every node with `kind load docker-image`, applies the rendered
# manifest server-side (the CRDs are too large for client-side apply's annotation), waits for
# the operator, the metrics adapter and the webhooks, and for the external metrics API, then
# checks that a ScaledObject scales a Deployment from zero (namespace keda-check, removed after).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${KEDA_VERSION#v}"
MANIFEST="${CACHE}/manifests/keda-${KEDA_VERSION}.yaml"
kubectl() { cluster_kubectl "$@"; }

wait_keda() {
  local deployments=() deployment
  mapfile -t deployments < <(kubectl -n keda get deployments -o name)
  [[ ${#deployments[@]} -eq 3 ]] || { echo "expected 3 KEDA deployments: ${deployments[*]}"; return 1; }
  for deployment in "${deployments[@]}"; do
    kubectl -n keda rollout status "${deployment}" --timeout=300s
  done
  kubectl wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io --timeout=300s
  kubectl get --raw /apis/external.metrics.k8s.io/v1beta1 >/dev/null
  kubectl -n keda get pods -o wide
}

# KEDA end to end: a ScaledObject with a cron trigger whose window is open now scales a
# Deployment from 0 to 2 replicas. The operator does 0 -> 1, the HPA does 1 -> 2 on the
# external metric the adapter serves; the admission webhook checks the ScaledObject first.
check_scaling() {
  local namespace=keda-check minute
  minute=$((10#$(date -u +%M)))
  kubectl delete namespace "${namespace}" --ignore-not-found --wait=true
  kubectl create namespace "${namespace}"
  # The pause image is in the node already: the replicas start without any pull.
  kubectl -n "${namespace}" create deployment web --replicas=0 \
    --image="registry.k8s.io/pause:$(kubeadm_tag pause)"
  kubectl apply -f - <<YAML
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: ${namespace}}
spec:
  scaleTargetRef: {name: web}
  minReplicaCount: 0
  maxReplicaCount: 2
  pollingInterval: 5
  triggers:
    - type: cron
      metadata:
        timezone: Etc/UTC
        start: "$(((minute + 59) % 60)) * * * *"
        end: "$(((minute + 10) % 60)) * * * *"
        desiredReplicas: "2"
YAML
  kubectl -n "${namespace}" wait --for=jsonpath='{.status.readyReplicas}'=2 deployment/web --timeout=180s
  kubectl -n "${namespace}" get scaledobject,hpa,deployment
  kubectl delete namespace "${namespace}" --wait=false
}

main() {
  need_docker
  need_cluster
  [[ -s "${MANIFEST}" ]] || die "no ${MANIFEST}: run build-keda.sh first"
  local images=() name
  for name in keda keda-metrics-apiserver keda-admission-webhooks; do
    images+=("ghcr.io/kedacore/${name}:${VERSION}")
  done
  load_images "${images[@]}"
  run_logged keda-apply kubectl apply --server-side --force-conflicts -f "${MANIFEST}"
  run_logged keda-wait wait_keda
  run_logged keda-check check_scaling
  say "KEDA ${VERSION} is running in namespace keda"
}

main "$@"
