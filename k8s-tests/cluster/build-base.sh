#!/usr/bin/env bash
# Step 2a: the Debian root file systems of the node image and of kube-proxy, with debootstrap.
#
# usage: k8s-tests/cluster/build-base.sh        (as root: debootstrap and chroot need it)
#
#   emostream/kind-rootfs:bookworm   Debian bookworm with systemd, iptables, nftables, conntrack,
#                                    the CNI plugins and kind's own files (entrypoint, units,
#                                    containerd config) from the kind Go module, set up the way
#                                    kind's images/base/Dockerfile does
#   emostream/net-base:bookworm      minbase plus iptables, nftables, conntrack and ipset: the
#                                    base of the kube-proxy image
# The trees are kept as tarballs in <cache>/rootfs/ (lib.sh); an image that is missing is
# imported again from its tarball, and debootstrap runs only when the tarball is missing too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOTFS="${CACHE}/rootfs"
NODE_PACKAGES=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,containernetworking-plugins
NET_PACKAGES=iptables,nftables,conntrack,ipset

# What kind's images/base/Dockerfile does to debian:bookworm-slim, minus the downloads: the
# containerd, runc and CNI binaries are added by build-images.sh on top of this tree.
configure_node_tree() {
  local tree=$1 files
  files="$(go mod download -json "sigs.k8s.io/kind@${KIND_VERSION}" | jq -r .Dir)/images/base/files"
  [[ -d "${files}" ]] || die "kind's images/base/files not found in the module cache"
  install -m 0755 -D -t "${tree}/usr/local/bin" "${files}"/usr/local/bin/*
  mkdir -p "${tree}/kind/bin" "${tree}/LICENSES"
  cp -r "${files}/kind/." "${tree}/kind/"
  chmod 0755 "${tree}/kind/bin" "${tree}"/kind/bin/*
  cp -r "${files}/etc/." "${tree}/etc/"
  cp "${files}"/LICENSES/* "${tree}/LICENSES/"
  # The Go module's files are read-only; the image's must not be.
  find "${tree}/etc/containerd" "${tree}/etc/systemd/system" "${tree}/etc/sysctl.d" \
    "${tree}/etc/default" "${tree}/kind" -type f -exec chmod u+w,go-w {} +
  find "${tree}/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "${tree}"/lib/systemd/system/multi-user.target.wants/* \
    "${tree}"/etc/systemd/system/*.wants/* \
    "${tree}"/lib/systemd/system/local-fs.target.wants/* \
    "${tree}"/lib/systemd/system/sockets.target.wants/*udev* \
    "${tree}"/lib/systemd/system/sockets.target.wants/*initctl* \
    "${tree}"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"${tree}/etc/systemd/journald.conf"
  ln -sf /lib/systemd/systemd "${tree}/sbin/init"
  chroot "${tree}" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  chroot "${tree}" systemctl mask systemd-binfmt.service
  mkdir -p "${tree}/etc/kubernetes/manifests" "${tree}/opt/cni/bin" "${tree}/etc/cni/net.d"
  # Debian's CNI plugins (ptp, host-local, loopback, portmap, ...) where kubelet looks for them.
  local plugin
  for plugin in "${tree}"/usr/lib/cni/*; do
    ln -sf "/usr/lib/cni/$(basename "${plugin}")" "${tree}/opt/cni/bin/"
  done
  # This host runs Docker with cgroup v1, where the systemd cgroup driver fails inside a node
  # container; kind's own pre-1.24 setting is cgroupfs.
  sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' "${tree}/etc/containerd/config.toml"
}

# Make TARBALL with debootstrap (packages INCLUDE), then run CONFIGURE on the tree if given.
make_tarball() {
  local tarball=$1 include=$2 configure=${3:-} work
  work="$(mktemp -d "${ROOTFS}/tree.XXXXXX")"
  trap 'remove_tree "'"${work}"'"' EXIT
  debootstrap --variant=minbase --include="${include}" bookworm "${work}/rootfs" "${MIRROR}"
  slim_rootfs "${work}/rootfs"
  [[ -z "${configure}" ]] || "${configure}" "${work}/rootfs"
  tar --numeric-owner -C "${work}/rootfs" -cf "${tarball}.part" .
  mv "${tarball}.part" "${tarball}"
  remove_tree "${work}"
  trap - EXIT
}

# IMAGE from TARBALL (made first if missing); CHANGES are docker import --change arguments.
ensure_rootfs_image() {
  local image=$1 tarball=$2 include=$3 configure=$4
  shift 4
  if image_exists "${image}"; then
    say "${image}: present"
    return
  fi
  if [[ ! -s "${tarball}" ]]; then
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root: run this script as root"
    command -v debootstrap >/dev/null 2>&1 ||
      die "debootstrap is missing (Debian: apt-get install -y debootstrap)"
    say "${image}: debootstrap bookworm from ${MIRROR}"
    run_logged "rootfs-$(basename "${tarball}" .tar)" make_tarball "${tarball}" "${include}" "${configure}"
  fi
  local changes=() change
  for change in "$@"; do changes+=(--change "${change}"); done
  docker import "${changes[@]}" "${tarball}" "${image}" >/dev/null
  say "${image}: imported from ${tarball}"
}

main() {
  need_docker
  mkdir -p "${ROOTFS}"
  ensure_rootfs_image emostream/kind-rootfs:bookworm "${ROOTFS}/kind-node-bookworm.tar" \
    "${NODE_PACKAGES}" configure_node_tree \
    'ENV container=docker' \
    'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]'
  ensure_rootfs_image emostream/net-base:bookworm "${ROOTFS}/net-base-bookworm.tar" \
    "${NET_PACKAGES}" "" 'ENV LANG=C.UTF-8' 'CMD ["bash"]'
}

main "$@"
