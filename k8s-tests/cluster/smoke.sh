#!/usr/bin/env bash
# Check the running cluster end to end with a tiny image built and loaded here.
#
# usage: k8s-tests/cluster/smoke.sh       (after up.sh, or create-cluster.sh and install-*.sh)
#
#   1. build emostream/cluster-smoke:1 (smoke/main.go, static, on the static base of
#      build-images.sh) and `kind load docker-image` it into every node: no registry
#   2. a server pod (app=cluster-smoke, behind a Service) on the first worker node, a client pod
#      (role=client) and a bystander pod (role=other) on the last one; imagePullPolicy Never, so
#      a load that did not reach a node fails as ErrImageNeverPull rather than as a pull attempt
#   3. from the client: the server's pod address (pod to pod across nodes), then
#      http://cluster-smoke.<namespace>.svc.cluster.local:8080/ (CoreDNS and kube-proxy)
#   4. `kubectl port-forward` from this machine to the server, and a GET on 127.0.0.1
#   5. NetworkPolicy: a default-deny ingress policy in the namespace must refuse both pods
#      within 30 s; then a policy allowing ingress from role=client must let the client in
#      again, by pod address and through the Service, while the bystander stays refused.
#      Without an enforcing engine (install-kube-router.sh) step 5 fails.
# The namespace cluster-smoke is deleted at the end, also after a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=emostream/cluster-smoke:1
NAMESPACE=cluster-smoke
FORWARD_PID=""
POLICY_WAIT_S=30
kubectl() { cluster_kubectl "$@"; }

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

# start_pod NAME NODE LABEL: the smoke server as pod NAME on NODE. Every pod serves, so that
# the client and the bystander stay up for `kubectl exec`.
start_pod() {
  kubectl -n "${NAMESPACE}" run "$1" --image="${IMAGE}" --image-pull-policy=Never --port=8080 \
    --labels="$3" --overrides="{\"spec\": {\"nodeName\": \"$2\"}}" >/dev/null
}

# fetch POD URL: GET URL from inside POD; prints the body, or the error.
fetch() { kubectl -n "${NAMESPACE}" exec "$1" -- /smoke get "$2" 2>&1; }

# expect_answer POD URL: within POLICY_WAIT_S, POD gets the server's answer from URL.
expect_answer() {
  local deadline=$((SECONDS + POLICY_WAIT_S)) body
  until body="$(fetch "$1" "$2")" && [[ "${body}" == "smoke cluster-smoke" ]]; do
    (( SECONDS < deadline )) || die "$1: GET $2 never answered within ${POLICY_WAIT_S}s; last: ${body}"
    sleep 1
  done
  say "$1 -> $2: ${body}"
}

# expect_refused POD URL: within POLICY_WAIT_S, POD's GET on URL fails, and fails again 3 times.
expect_refused() {
  local deadline=$((SECONDS + POLICY_WAIT_S)) body
  while body="$(fetch "$1" "$2")"; do
    (( SECONDS < deadline )) || die "NetworkPolicy not enforced: $1 still reaches $2 ${POLICY_WAIT_S}s \
after the policy (is a policy engine installed? install-kube-router.sh)"
    sleep 1
  done
  for _ in 1 2 3; do
    ! fetch "$1" "$2" >/dev/null || die "NetworkPolicy enforced only now and then: $1 reached $2"
  done
  say "$1 -> $2: refused ($(grep -m 1 '^smoke:' <<<"${body}" | sed 's/.*: //'))"
}

policy() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: $1, namespace: ${NAMESPACE}}
spec:
$(cat)
YAML
}

check_network_policies() {
  local pod_url=$1 service_url=$2
  say "NetworkPolicy default-deny-ingress: every pod of the namespace refuses connections"
  policy default-deny-ingress <<'YAML'
  podSelector: {}
  policyTypes: [Ingress]
YAML
  expect_refused client "${pod_url}"
  expect_refused other "${pod_url}"
  say "NetworkPolicy allow-client: the server accepts pods labelled role=client on 8080"
  policy allow-client <<'YAML'
  podSelector: {matchLabels: {app: cluster-smoke}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{port: 8080, protocol: TCP}]
YAML
  expect_answer client "${pod_url}"
  expect_answer client "${service_url}"
  expect_refused other "${pod_url}"
  expect_refused other "${service_url}"
}

main() {
  need_docker
  need_cluster
  trap cleanup EXIT
  run_logged smoke-image build_smoke_image
  load_images "${IMAGE}"

  local workers=()
  mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  [[ ${#workers[@]} -gt 0 ]] || die "the cluster has no worker node"
  local server_node="${workers[0]}" client_node="${workers[${#workers[@]} - 1]}"
  [[ "${server_node}" != "${client_node}" ]] || say "one worker only: pods share ${server_node}"

  kubectl delete namespace "${NAMESPACE}" --ignore-not-found --wait=true >/dev/null
  kubectl create namespace "${NAMESPACE}" >/dev/null
  start_pod cluster-smoke "${server_node}" app=cluster-smoke
  kubectl -n "${NAMESPACE}" expose pod cluster-smoke --port=8080 >/dev/null
  start_pod client "${client_node}" role=client
  start_pod other "${client_node}" role=other
  run_logged smoke-pods kubectl -n "${NAMESPACE}" wait --for=condition=Ready pod --all --timeout=120s
  say "server on ${server_node}, client and bystander on ${client_node}"

  local server_ip pod_url service_url
  server_ip="$(kubectl -n "${NAMESPACE}" get pod cluster-smoke -o jsonpath='{.status.podIP}')"
  pod_url="http://${server_ip}:8080/"
  service_url="http://cluster-smoke.${NAMESPACE}.svc.cluster.local:8080/"
  expect_answer client "${pod_url}"
  # A new Service works once kube-proxy has written its rules; until then the node rejects
  # the connection (images/node/egress-guard.sh) and expect_answer tries again.
  expect_answer client "${service_url}"

  local port body
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

  check_network_policies "${pod_url}" "${service_url}"
  say "smoke check passed"
}

main "$@"
