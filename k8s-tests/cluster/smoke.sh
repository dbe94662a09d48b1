#!/usr/bin/env bash
# Step 5: check the running cluster end to end with a tiny image built and loaded here.
#
# usage: k8s-tests/cluster/smoke.sh       (after create-cluster.sh)
#
#   1. build emostream/cluster-smoke:1 (smoke/main.go, static, on the static base of build-images.sh) and
#      `kind load docker-image` it: no registry is involved
#   2. run it as a pod behind a Service (imagePullPolicy Never, so a load that did not happen
#      fails as ErrImageNeverPull rather than as a pull attempt)
#   3. a second pod fetches http://cluster-smoke.<namespace>.svc.cluster.local:8080/: pod
#      networking, kube-proxy and CoreDNS
#   4. `kubectl port-forward` from this machine to the pod, and a GET on 127.0.0.1
# The namespace cluster-smoke is deleted at the end, also after a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=emostream/cluster-smoke:1
NAMESPACE=cluster-smoke
FORWARD_PID=""
kubectl() { command kubectl --kubeconfig "${KUBECONFIG_FILE}" "$@"; }

cleanup() {
  [[ -z "${FORWARD_PID}" ]] || kill "${FORWARD_PID}" 2>/dev/null || true
  kubectl delete namespace "${NAMESPACE}" --wait=false >/dev/null 2>&1 || true
}

build_smoke_image() {
  local context="${CACHE}/images/cluster-smoke"
  rm -rf "${context}"
  mkdir -p "${context}"
  (cd "${HERE}/smoke" && CGO_ENABLED=0 nice_go build -trimpath -ldflags "-s -w" -o "${context}/smoke" .)
  printf '%s\n' "FROM ${STATIC_BASE}" 'COPY smoke /smoke' 'USER 65532:65532' \
    'ENTRYPOINT ["/smoke"]' 'CMD ["serve", ":8080"]' >"${context}/Dockerfile"
  docker build --network none -t "${IMAGE}" "${context}"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

main() {
  need_docker
  [[ -s "${KUBECONFIG_FILE}" ]] || die "no kubeconfig: run create-cluster.sh first"
  trap cleanup EXIT
  run_logged smoke-image build_smoke_image
  run_logged smoke-load kind load docker-image "${IMAGE}" --name "${CLUSTER_NAME}"

  kubectl delete namespace "${NAMESPACE}" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "${NAMESPACE}" >/dev/null
  kubectl -n "${NAMESPACE}" run cluster-smoke --image="${IMAGE}" --image-pull-policy=Never \
    --port=8080 --expose >/dev/null
  run_logged smoke-pod kubectl -n "${NAMESPACE}" wait --for=condition=Ready pod/cluster-smoke --timeout=120s

  local url="http://cluster-smoke.${NAMESPACE}.svc.cluster.local:8080/" body
  # A new Service works once kube-proxy has written its rules; until then the node rejects
  # the connection (images/node/egress-guard.sh) and the client runs again.
  kubectl -n "${NAMESPACE}" run cluster-smoke-client --image="${IMAGE}" --image-pull-policy=Never \
    --restart=OnFailure -- get "${url}" >/dev/null
  run_logged smoke-client kubectl -n "${NAMESPACE}" wait \
    --for=jsonpath='{.status.phase}'=Succeeded pod/cluster-smoke-client --timeout=120s
  body="$(kubectl -n "${NAMESPACE}" logs cluster-smoke-client)"
  [[ "${body}" == "smoke cluster-smoke" ]] || die "in-cluster GET ${url} returned '${body}'"
  say "in-cluster: GET ${url} -> ${body}"

  local port
  port="$(free_port)"
  kubectl -n "${NAMESPACE}" port-forward pod/cluster-smoke "${port}:8080" \
    >"${LOGS}/smoke-port-forward.log" 2>&1 &
  FORWARD_PID=$!
  local tries=0
  until body="$(curl -fsS --max-time 5 "http://127.0.0.1:${port}/" 2>/dev/null)"; do
    (( ++tries < 30 )) || die "port-forward to 127.0.0.1:${port} never answered (log: ${LOGS}/smoke-port-forward.log)"
    sleep 1
  done
  [[ "${body}" == "smoke cluster-smoke" ]] || die "port-forward GET returned '${body}'"
  say "port-forward: GET http://127.0.0.1:${port}/ -> ${body}"
  say "smoke check passed"
}

main "$@"
