#!/usr/bin/env bash
# Step 2b: the system images of the cluster, tagged with the names kubeadm and kind ask for.
#
# usage: k8s-tests/cluster/build-images.sh     (after build-binaries.sh and build-base.sh)
#
# Names come from `kubeadm config images list`, so a Kubernetes patch that moves etcd or
# CoreDNS to another tag is caught here rather than as ErrImagePull in the cluster:
#   registry.k8s.io/kube-{apiserver,controller-manager,scheduler}  static binary, no OS
#   registry.k8s.io/kube-proxy        Debian + iptables/nftables/conntrack/ipset and a wrapper
#                                     that picks the node's iptables backend
#                                     (images/iptables-wrapper.sh)
#   registry.k8s.io/etcd, registry.k8s.io/coredns/coredns          static binaries, no OS
#   registry.k8s.io/pause             a tiny static C program; tagged also with the tag of
#                                     the sandbox_image in kind's containerd config
#   emostream/kind-base:<kind>        the node's base: Debian with systemd and kind's files
#                                     (build-base.sh) plus containerd, runc, the pod network
#                                     and egress guard services (images/node/)
# plus local-path-provisioner and its helper. An image is built again only when its base image
# or the files it is built from changed. The list of images is written to
# <cache>/system-images.txt for build-node-image.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_BIN="${BIN}/kubernetes-${KUBERNETES_VERSION}"
LOCAL_PATH_IMAGE="emostream/local-path-provisioner:${LOCAL_PATH_VERSION}"
LOCAL_PATH_HELPER=emostream/local-path-helper:bookworm

# The files a static Go binary may expect of an OS: users, a writable /tmp, nsswitch, and from
# Debian (the node tree) the time zone database and the CA bundle (KEDA's cron trigger, for
# one, loads time zones by name).
ensure_static_base() {
  if image_exists "${STATIC_BASE}"; then return; fi
  local tree
  tree="$(context_dir static-base)/rootfs"
  mkdir -p "${tree}/etc/ssl/certs" "${tree}/usr/share" "${tree}/tmp" "${tree}/home/nonroot"
  chmod 1777 "${tree}/tmp"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"${tree}/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' >"${tree}/etc/group"
  echo 'hosts: files dns' >"${tree}/etc/nsswitch.conf"
  chown 65532:65532 "${tree}/home/nonroot"
  docker run --rm --network none --entrypoint tar emostream/kind-rootfs:bookworm \
    -C / -c usr/share/zoneinfo etc/ssl/certs/ca-certificates.crt | tar -C "${tree}" -x
  tar --numeric-owner -C "${tree}" -c . | docker import \
    --message "users, /tmp, nsswitch.conf, time zones and CA bundle for static binaries" \
    - "${STATIC_BASE}" >/dev/null
  say "${STATIC_BASE}: imported"
}

kubeadm_image() {
  kubeadm_images | grep -E "^registry.k8s.io/($1):" || die "kubeadm lists no image $1"
}

# A binary on the static base. ENTRYPOINT only for images whose pods pass just arguments.
static_image() {
  local image=$1 binary=$2 destination=$3 entrypoint=${4:-} context
  context="$(context_dir "$(basename "${image%%:*}")")"
  cp "${binary}" "${context}/"
  {
    echo "FROM ${STATIC_BASE}"
    echo "COPY $(basename "${binary}") ${destination}"
    echo "ENV PATH=/usr/local/bin:/usr/bin:/bin"
    [[ -z "${entrypoint}" ]] || echo "ENTRYPOINT [\"${entrypoint}\"]"
  } >"${context}/Dockerfile"
  shift 4 || shift $#
  build_image "${image}" "${context}" "$@"
}

build_control_plane() {
  local component image
  for component in kube-apiserver kube-controller-manager kube-scheduler; do
    image="$(kubeadm_image "${component}")"
    static_image "${image}" "${K8S_BIN}/${component}" /usr/local/bin/
  done
}

build_kube_proxy() {
  local image context
  image="$(kubeadm_image kube-proxy)"
  context="$(context_dir kube-proxy)"
  cp "${K8S_BIN}/kube-proxy" "${context}/"
  install -m 0755 "${HERE}/images/iptables-wrapper.sh" "${context}/"
  cat >"${context}/Dockerfile" <<DOCKERFILE
FROM ${NET_BASE}
COPY kube-proxy /usr/local/lib/kube-proxy/kube-proxy
COPY iptables-wrapper.sh /usr/local/bin/kube-proxy
DOCKERFILE
  build_image "${image}" "${context}"
}

build_etcd() {
  local image version
  image="$(kubeadm_image etcd)"
  version="v$(sed 's/.*://; s/-[0-9]*$//' <<<"${image}")"
  [[ -x "${BIN}/etcd-${version}/etcd" ]] ||
    die "kubeadm wants ${image}: build etcd ${version} (build-binaries.sh reads it from kubeadm)"
  static_image "${image}" "${BIN}/etcd-${version}/etcd" /usr/local/bin/
}

build_coredns() {
  local image version
  image="$(kubeadm_image coredns/coredns)"
  version="${image##*:}"
  [[ -x "${BIN}/coredns-${version}/coredns" ]] ||
    die "kubeadm wants ${image}: build coredns ${version} (build-binaries.sh reads it from kubeadm)"
  static_image "${image}" "${BIN}/coredns-${version}/coredns" / /coredns
}

# kubeadm names one pause tag, kind's containerd config another (its sandbox_image): both.
build_pause() {
  local image sandbox context
  image="$(kubeadm_image pause)"
  sandbox="$(docker run --rm --entrypoint cat "emostream/kind-base:${KIND_VERSION}" \
    /etc/containerd/config.toml | sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p')"
  context="$(context_dir pause)"
  cp "${BIN}/pause/pause" "${context}/"
  printf '%s\n' 'FROM scratch' 'COPY pause /pause' 'USER 65535:65535' \
    'ENTRYPOINT ["/pause"]' >"${context}/Dockerfile"
  if [[ -n "${sandbox}" && "${sandbox}" != "${image}" ]]; then
    build_image "${image}" "${context}" "${sandbox}"
  else
    build_image "${image}" "${context}"
  fi
}

build_local_path() {
  static_image "${LOCAL_PATH_IMAGE}" \
    "${BIN}/local-path-provisioner-${LOCAL_PATH_VERSION}/local-path-provisioner" /usr/local/bin/
  # The helper pod only runs sh, mkdir, chmod and rm on the node's volume directory.
  local context
  context="$(context_dir local-path-helper)"
  echo "FROM ${NET_BASE}" >"${context}/Dockerfile"
  build_image "${LOCAL_PATH_HELPER}" "${context}"
}

# The node's base: containerd, runc and crictl, the runtime spec kind derives from
# `ctr oci spec`, and two services of this cluster that start before the kubelet: the pod
# network (images/node/pod-network.sh: the CNI config for the node's pod subnet, routes to the
# other nodes' pods, as kindnetd does) and the egress guard (images/node/egress-guard.sh) that
# keeps cluster traffic on this machine.
build_kind_base() {
  local context
  context="$(context_dir kind-base)"
  cp "${BIN}/containerd-${CONTAINERD_VERSION}"/{containerd,ctr,containerd-shim-runc-v2} "${context}/"
  cp "${BIN}/runc-${RUNC_VERSION}/runc" "${BIN}/crictl-${CRICTL_VERSION}/crictl" "${context}/"
  cp "${HERE}"/images/node/{egress-guard.sh,egress-guard.service,pod-network.sh,pod-network.service,10-ptp.conflist.in} \
    "${context}/"
  cat >"${context}/Dockerfile" <<'DOCKERFILE'
FROM emostream/kind-rootfs:bookworm
# systemd stops on SIGRTMIN+3; `docker import` cannot set a stop signal.
STOPSIGNAL SIGRTMIN+3
COPY containerd ctr containerd-shim-runc-v2 crictl /usr/local/bin/
COPY runc /usr/local/sbin/runc
COPY 10-ptp.conflist.in /kind/cni/10-ptp.conflist.in
COPY egress-guard.sh pod-network.sh /kind/bin/
COPY egress-guard.service pod-network.service /etc/systemd/system/
# A node may lack CAP_SYS_RESOURCE (as on machines whose bounding set has no such capability):
# then no container may get a lower oom_score_adj than containerd's own, as in rootless kind.
RUN sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \
  && ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \
  && systemctl enable egress-guard.service pod-network.service \
  && containerd --version && runc --version && crictl --version
DOCKERFILE
  build_image "emostream/kind-base:${KIND_VERSION}" "${context}"
  # Only the node image needs this one, not the cluster's containerd.
  IMAGES=("${IMAGES[@]:0:${#IMAGES[@]}-1}")
}

main() {
  need_docker
  [[ -e "${K8S_BIN}/.complete" ]] || die "run build-binaries.sh first"
  image_exists emostream/kind-rootfs:bookworm || die "run build-base.sh first"
  say "kubeadm wants: $(kubeadm_images | tr '\n' ' ')"
  ensure_static_base
  build_kind_base
  build_control_plane
  build_kube_proxy
  build_etcd
  build_coredns
  build_pause
  build_local_path
  printf '%s\n' "${IMAGES[@]}" >"${CACHE}/system-images.txt"
  say "system images: ${IMAGES[*]}"
}

main "$@"
