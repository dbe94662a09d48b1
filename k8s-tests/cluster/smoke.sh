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
#   5. shared volume: a ReadWriteMany claim of the StorageClass `shared`
#      (install-shared-storage.sh), mounted by a pod on the first worker and one on the last; a
#      file written by each must be read back by the other, and be in the cluster's shared
#      directory on this machine (lib.sh's SHARED_DIR)
#   6. NetworkPolicy: a default-deny ingress policy in the namespace must refuse both pods
#      within 30 s; then a policy allowing ingress from role=client must let the client in
#      again, by pod address and through the Service, while the bystander stays refused.
#      Without an enforcing engine (install-kube-router.sh) step 6 fails.
# The namespace cluster-smoke is deleted at the end, also after a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=emostream/cluster-smoke:1
NAMESPACE=cluster-smoke
FORWARD_PID=""
POLICY_WAIT_S=30
CLAIM=shared
SHARED_WAIT_S=60
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

# start_shared_pod NAME NODE: the smoke server as pod NAME on NODE, with the claim CLAIM at
# /shared.
start_shared_pod() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: ${NAMESPACE}, labels: {role: shared}}
spec:
  nodeName: $2
  containers:
    - name: smoke
      image: ${IMAGE}
      imagePullPolicy: Never
      volumeMounts: [{name: shared, mountPath: /shared}]
  volumes:
    - name: shared
      persistentVolumeClaim: {claimName: ${CLAIM}}
YAML
}

start_shared_volume() {
  shared_claim "${CLAIM}" "${NAMESPACE}" >/dev/null
  start_shared_pod shared-writer "$1"
  start_shared_pod shared-reader "$2"
}

# pass_file FROM TO FILE: FROM writes FILE on the shared volume, TO must read the same text.
pass_file() {
  local from=$1 to=$2 file=/shared/$3 text got
  text="written by $1 on $(node_of "$1") at $(date -u +%H:%M:%S.%N)"
  kubectl -n "${NAMESPACE}" exec "${from}" -- /smoke write "${file}" "${text}" ||
    die "shared volume: ${from} could not write ${file}"
  say "${from} on $(node_of "${from}") wrote ${file}: ${text}"
  got="$(kubectl -n "${NAMESPACE}" exec "${to}" -- /smoke read "${file}" 2>&1)" || true
  [[ "${got}" == "${text}" ]] || die "shared volume NOT shared: ${to} on $(node_of "${to}") reads \
${file} as '${got//$'\n'/; }', not '${text}' written by ${from} on $(node_of "${from}")"
  say "${to} on $(node_of "${to}") read ${file}: ${got}"
}

node_of() { kubectl -n "${NAMESPACE}" get pod "$1" -o jsonpath='{.spec.nodeName}'; }

# The claim is bound to a volume on the shared path with no node affinity, and what the pods on
# two nodes write there is one file system: each reads the other's file.
check_shared_volume() {
  local pv path affinity dir
  pv="$(kubectl -n "${NAMESPACE}" get pvc "${CLAIM}" -o jsonpath='{.spec.volumeName}')"
  path="$(kubectl get pv "${pv}" -o jsonpath='{.spec.hostPath.path}')"
  affinity="$(kubectl get pv "${pv}" -o jsonpath='{.spec.nodeAffinity}')"
  [[ -z "${affinity}" ]] || die "shared volume ${pv} is tied to a node: ${affinity}"
  say "claim ${CLAIM} (ReadWriteMany, class shared) bound to ${pv}: ${path}, no node affinity"
  pass_file shared-writer shared-reader handoff
  pass_file shared-reader shared-writer reply
  dir="${SHARED_DIR}/${path#"${SHARED_NODE_PATH}/"}"
  [[ -s "${dir}/handoff" && -s "${dir}/reply" ]] ||
    die "shared volume: handoff and reply are not in ${dir} on this machine"
  say "on this machine: ${dir}/{handoff,reply}"
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
  start_shared_volume "${server_node}" "${client_node}"
  kubectl -n "${NAMESPACE}" wait --for=jsonpath='{.status.phase}'=Bound "pvc/${CLAIM}" \
    --timeout="${SHARED_WAIT_S}s" >/dev/null 2>&1 || die "claim ${CLAIM} of the StorageClass shared \
not bound within ${SHARED_WAIT_S}s (is it installed? install-shared-storage.sh): $(kubectl -n \
"${NAMESPACE}" describe pvc "${CLAIM}" | tail -n 3 | tr -s ' \n' ' ')"
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

  check_shared_volume
  check_network_policies "${pod_url}" "${service_url}"
  say "smoke check passed"
}

main "$@"
