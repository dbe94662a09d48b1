#!/usr/bin/env bash
# Step 1: build every binary of the offline cluster from the Go module proxy.
#
# usage: k8s-tests/cluster/build-binaries.sh [NAME ...]   NAME: only these components, e.g. runc
#
#   kind                     go install sigs.k8s.io/kind
#   kubernetes (7 binaries)  a wrapper module requiring k8s.io/kubernetes with every staging
#                            module (k8s.io/api, ...) replaced by its published v0.X.Y
#   etcd, coredns            the versions `kubeadm config images list` names
#   local-path-provisioner, containerd, runc, crictl   the node's and the system pods'
#   pause                    a static C program (images/pause.c here), built with gcc
#   skaffold                 the dev loop's tool, for the end-to-end run of skaffold.yaml
# Each component lands in <cache>/bin/<name>-<version>/ (lib.sh) and is skipped when that
# directory is complete. Versions: versions.env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ONLY=()

# Build a component (build_once), unless ONLY names others.
component() {
  if [[ ${#ONLY[@]} -gt 0 && " ${ONLY[*]} " != *" ${1%-*} "* ]]; then
    return
  fi
  build_once "$@"
}

build_kind() {
  GOBIN="$1" nice_go install "sigs.k8s.io/kind@${KIND_VERSION}"
}

# k8s.io/kubernetes is not meant to be a dependency: its go.mod replaces the staging modules
# with ./staging/src/..., which a module outside it cannot see. The wrapper replaces each one
# with the published copy of the same release (v1.34.N -> v0.34.N).
build_kubernetes() {
  local out=$1 staging_version="v0${KUBERNETES_VERSION#v1}" minor
  minor="$(cut -d. -f2 <<<"${KUBERNETES_VERSION}")"
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver
    sample-cli-plugin sample-controller)
  {
    echo "module local/kubernetes"
    echo "go 1.24.0"
    echo "godebug default=go1.24"
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo "replace ("
    local module
    for module in "${staging[@]}"; do
      echo "  k8s.io/${module} => k8s.io/${module} ${staging_version}"
    done
    echo ")"
  } | write_module kubernetes
  # kubeadm compares its own version with the cluster's: without these it is a placeholder.
  local ldflags="-s -w" package date
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${package}.gitVersion=${KUBERNETES_VERSION} -X ${package}.gitMajor=1"
    ldflags+=" -X ${package}.gitMinor=${minor} -X ${package}.gitTreeState=clean"
    ldflags+=" -X ${package}.buildDate=${date}"
  done
  cd "${SRC}/kubernetes"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath -ldflags "${ldflags}" -o "${out}/" \
    k8s.io/kubernetes/cmd/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,kubelet,kubeadm,kubectl}
  "${out}/kubeadm" version -o short
}

# etcd's server module has replace directives, so `go install` refuses it; a wrapper does not.
build_etcd() {
  local out=$1
  printf 'module local/etcd\ngo 1.24\nrequire go.etcd.io/etcd/server/v3 %s\n' "${ETCD_VERSION}" |
    write_module etcd
  cd "${SRC}/etcd"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath -ldflags "-s -w" -o "${out}/etcd" \
    go.etcd.io/etcd/server/v3
  "${out}/etcd" --version
}

build_coredns() {
  CGO_ENABLED=0 GOBIN="$1" nice_go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@${COREDNS_VERSION}"
}

build_crictl() {
  CGO_ENABLED=0 GOBIN="$1" nice_go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
}

build_local_path() {
  CGO_ENABLED=0 GOBIN="$1" nice_go install -trimpath -ldflags "-s -w" \
    "github.com/rancher/local-path-provisioner@${LOCAL_PATH_VERSION}"
}

# containerd and runc use `exclude` directives, which `go install pkg@version` also refuses.
build_containerd() {
  local out=$1 package=github.com/containerd/containerd/v2
  printf 'module local/containerd\ngo 1.24\nrequire %s %s\n' "${package}" "${CONTAINERD_VERSION}" |
    write_module containerd
  cd "${SRC}/containerd"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath \
    -tags "no_aufs no_zfs no_btrfs no_devmapper urfave_cli_no_docs" \
    -ldflags "-s -w -X ${package}/version.Version=${CONTAINERD_VERSION}" -o "${out}/" \
    "${package}/cmd/containerd" "${package}/cmd/ctr" "${package}/cmd/containerd-shim-runc-v2"
  "${out}/containerd" --version
}

# runc with seccomp (the system pods and KEDA ask for the RuntimeDefault profile), linked
# against Debian bookworm's libseccomp2, which the node image has too.
build_runc() {
  local out=$1
  if ! dpkg -s libseccomp-dev >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libseccomp-dev
  fi
  printf 'module local/runc\ngo 1.24\nrequire github.com/opencontainers/runc %s\n' "${RUNC_VERSION}" |
    write_module runc
  cd "${SRC}/runc"
  CGO_ENABLED=1 nice_go build -mod=mod -trimpath -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" -o "${out}/runc" \
    github.com/opencontainers/runc
  "${out}/runc" --version
}

# skaffold's go.mod has replace directives too, and a wrapper would lose them (its k8s.io pins):
# it is built inside a copy of its own module.
build_skaffold() {
  local out=$1 module=github.com/GoogleContainerTools/skaffold/v2 dir
  dir="$(cd / && go mod download -json "${module}@${SKAFFOLD_VERSION}" | jq -r .Dir)"
  rm -rf "${SRC}/skaffold"
  cp -r "${dir}" "${SRC}/skaffold"
  chmod -R u+w "${SRC}/skaffold"
  cd "${SRC}/skaffold"
  CGO_ENABLED=0 nice_go build -trimpath \
    -ldflags "-s -w -X ${module}/pkg/skaffold/version.version=${SKAFFOLD_VERSION}" \
    -o "${out}/skaffold" ./cmd/skaffold
  "${out}/skaffold" version
}

build_pause() {
  nice -n 15 gcc -Os -static -Wall -Werror -o "$1/pause" "${HERE}/images/pause.c"
  strip "$1/pause"
}

main() {
  ONLY=("$@")
  command -v go >/dev/null 2>&1 || die "go is missing"
  say "go $(go env GOVERSION), module cache ${GOMODCACHE}"
  component "kubernetes-${KUBERNETES_VERSION}" build_kubernetes
  component "kind-${KIND_VERSION}" build_kind
  # etcd and CoreDNS: the releases kubeadm of this Kubernetes asks for.
  if [[ -e "${BIN}/kubernetes-${KUBERNETES_VERSION}/.complete" ]]; then
    ETCD_VERSION="v$(kubeadm_tag etcd | sed 's/-[0-9]*$//')"
    COREDNS_VERSION="$(kubeadm_tag coredns/coredns)"
    [[ "${ETCD_VERSION}" != v && -n "${COREDNS_VERSION}" ]] || die "kubeadm names no etcd or coredns"
    component "etcd-${ETCD_VERSION}" build_etcd
    component "coredns-${COREDNS_VERSION}" build_coredns
  fi
  component "local-path-provisioner-${LOCAL_PATH_VERSION}" build_local_path
  component "containerd-${CONTAINERD_VERSION}" build_containerd
  component "runc-${RUNC_VERSION}" build_runc
  component "crictl-${CRICTL_VERSION}" build_crictl
  component "pause" build_pause
  component "skaffold-${SKAFFOLD_VERSION}" build_skaffold
  say "binaries ready in ${BIN}"
}

main "$@"
