#!/usr/bin/env bash
# The cluster's NetworkPolicy engine, kube-router, from the Go module proxy.
#
# usage: k8s-tests/cluster/build-kube-router.sh   (after build-base.sh, which makes the net base)
#
#   docker.io/cloudnativelabs/kube-router:<v>   upstream's name, so the same manifest pulls
#                                               upstream's image where a registry is reachable
# kube-router runs with only its firewall (install-kube-router.sh): it turns NetworkPolicies into
# iptables rules and ipsets, which this machine's kernel has, where engines that queue packets
# through nftables (kube-network-policies, recent kindnetd) find no CONFIG_NFT_QUEUE. It calls
# the iptables, ipset and conntrack tools, so the image is the Debian net base (as kube-proxy's)
# with images/iptables-wrapper.sh in front of the binary to pick the node's iptables backend.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODULE=github.com/cloudnativelabs/kube-router/v2
OUT="${BIN}/kube-router-${KUBE_ROUTER_VERSION}"
IMAGE="docker.io/cloudnativelabs/kube-router:${KUBE_ROUTER_VERSION}"

# v2.10.0 requires an untagged commit of github.com/vishvananda/netlink that the module proxy does
# not serve; the wrapper module replaces it with the release v1.3.1. That commit changed only how
# kube-router's router finds default routes for policy-based routing, which the firewall does
# not use.
build_binary() {
  local out=$1 stamp="${MODULE}/pkg/version" go_version source
  source="$(go mod download -json "${MODULE}@${KUBE_ROUTER_VERSION}" | jq -r .Dir)"
  go_version="$(sed -n 's/^go //p' "${source}/go.mod")"
  {
    echo "module local/kube-router"
    echo "go ${go_version}"
    echo "require ${MODULE} ${KUBE_ROUTER_VERSION}"
    echo "replace github.com/vishvananda/netlink => github.com/vishvananda/netlink v1.3.1"
  } | write_module kube-router
  cd "${SRC}/kube-router"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath \
    -ldflags "-s -w -X ${stamp}.Version=${KUBE_ROUTER_VERSION} -X ${stamp}.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -o "${out}/kube-router" "${MODULE}/cmd/kube-router"
  "${out}/kube-router" --version
}

build_kube_router_image() {
  local context
  context="$(context_dir kube-router)"
  cp "${OUT}/kube-router" "${context}/"
  install -m 0755 "${HERE}/images/iptables-wrapper.sh" "${context}/"
  cat >"${context}/Dockerfile" <<DOCKERFILE
FROM ${NET_BASE}
COPY kube-router /usr/local/lib/kube-router/kube-router
COPY iptables-wrapper.sh /usr/local/bin/kube-router
ENTRYPOINT ["/usr/local/bin/kube-router"]
DOCKERFILE
  build_image "${IMAGE}" "${context}"
}

main() {
  need_docker
  build_once "kube-router-${KUBE_ROUTER_VERSION}" build_binary
  image_exists "${NET_BASE}" || die "${NET_BASE} is missing: run build-base.sh first"
  build_kube_router_image
  say "kube-router ${KUBE_ROUTER_VERSION}: image ${IMAGE}"
}

main "$@"
