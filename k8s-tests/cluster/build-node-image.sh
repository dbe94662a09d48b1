#!/usr/bin/env bash
# Step 3: the kind node image, assembled the way `kind build node-image` does, without a registry.
#
# usage: k8s-tests/cluster/build-node-image.sh [--force]
#
# kind's own builder fetches every image but the four kube-* with `ctr content fetch`, which
# needs a registry. This script does the same assembly by hand: start the node's base image,
# copy kubeadm, kubelet and kubectl in, start its containerd, import every system image
# (build-images.sh) pinned and unpacked later, then `docker commit`. Result: $NODE_IMAGE
# (kindest/node:<kubernetes>-emostream). Skipped if that image exists and was made of the same
# base, system images and binaries (label emostream.inputs), unless --force.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_BIN="${BIN}/kubernetes-${KUBERNETES_VERSION}"
CONTAINER=""

cleanup() {
  [[ -z "${CONTAINER}" ]] || docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
}

# local-path-provisioner's own manifest, with the images built here, as the default class.
render_storage_manifest() {
  local module
  module="$(go mod download -json "github.com/rancher/local-path-provisioner@${LOCAL_PATH_VERSION}" | jq -r .Dir)"
  mkdir -p "${MANIFESTS}"
  sed -e "s|image: rancher/local-path-provisioner:.*|image: emostream/local-path-provisioner:${LOCAL_PATH_VERSION}|" \
    -e 's|image: busybox$|image: emostream/local-path-helper:bookworm|' \
    -e 's|/opt/local-path-provisioner|/var/local-path-provisioner|' \
    -e '/^kind: StorageClass/,/^---/ s|^  name: local-path$|  name: standard\n  annotations:\n    storageclass.kubernetes.io/is-default-class: "true"|' \
    "${module}/deploy/local-path-storage.yaml" >"${MANIFESTS}/default-storage.yaml"
  grep -q 'is-default-class' "${MANIFESTS}/default-storage.yaml" || die "storage manifest: no default class"
  if grep -E '^\s+image:' "${MANIFESTS}/default-storage.yaml" | grep -qv emostream/; then
    die "storage manifest still names an image not built here"
  fi
  # The pod network is the node's own service (images/node/pod-network.sh); kind applies this
  # manifest only when the cluster's config keeps the default CNI, and then it changes nothing.
  cat >"${MANIFESTS}/default-cni.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: node-network
  namespace: kube-system
data:
  cni: ptp and host-local for the node's pod subnet, written by pod-network.service in the node image
YAML
}

assemble() {
  local base="emostream/kind-base:${KIND_VERSION}" images=()
  mapfile -t images <"${CACHE}/system-images.txt"
  trap cleanup EXIT
  CONTAINER="$(docker run -d --privileged --entrypoint=sleep "${base}" infinity)"
  local binary
  for binary in kubeadm kubelet kubectl; do
    docker cp "${K8S_BIN}/${binary}" "${CONTAINER}:/usr/bin/${binary}"
  done
  docker exec "${CONTAINER}" mkdir -p /kind/manifests
  docker cp "${MANIFESTS}/default-storage.yaml" "${CONTAINER}:/kind/manifests/default-storage.yaml"
  docker cp "${MANIFESTS}/default-cni.yaml" "${CONTAINER}:/kind/manifests/default-cni.yaml"
  echo "${KUBERNETES_VERSION}" | docker exec -i "${CONTAINER}" tee /kind/version >/dev/null
  docker exec "${CONTAINER}" kubeadm version -o short

  docker exec -d "${CONTAINER}" containerd
  local tries=0
  until docker exec "${CONTAINER}" ctr version >/dev/null 2>&1; do
    (( ++tries < 30 )) || die "containerd in the build container did not start"
    sleep 1
  done
  # Pinned, so that the kubelet's image garbage collection never removes them.
  docker save "${images[@]}" | docker exec -i "${CONTAINER}" ctr --namespace=k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests -
  docker exec "${CONTAINER}" ctr --namespace=k8s.io images list -q
  docker exec "${CONTAINER}" pkill containerd
  tries=0
  while docker exec "${CONTAINER}" pgrep -x containerd >/dev/null 2>&1; do
    (( ++tries < 30 )) || die "containerd in the build container did not stop"
    sleep 1
  done
  docker exec "${CONTAINER}" rm -rf /tmp/* /var/log/containerd* /run/containerd
  docker commit \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL emostream.inputs=${INPUTS}" \
    "${CONTAINER}" "${NODE_IMAGE}"
}

# The IDs of everything the node image is made of: a new one means a new node image.
inputs_digest() {
  {
    docker image inspect -f '{{.Id}}' "emostream/kind-base:${KIND_VERSION}"
    xargs docker image inspect -f '{{.Id}}' <"${CACHE}/system-images.txt"
    sha256sum "${K8S_BIN}"/{kubeadm,kubelet,kubectl}
  } | sha256sum | cut -c1-16
}

main() {
  need_docker
  [[ -s "${CACHE}/system-images.txt" ]] || die "run build-images.sh first"
  INPUTS="$(inputs_digest)"
  if [[ "${1:-}" != --force ]] && [[ "$(docker image inspect -f \
    '{{index .Config.Labels "emostream.inputs"}}' "${NODE_IMAGE}" 2>/dev/null)" == "${INPUTS}" ]]; then
    say "${NODE_IMAGE}: present"
    return
  fi
  # The assembly runs containerd in a privileged container.
  "${HERE}/prepare-host.sh"
  render_storage_manifest
  say "${NODE_IMAGE}: assembling"
  run_logged node-image assemble
  say "${NODE_IMAGE}: $(($(docker image inspect -f '{{.Size}}' "${NODE_IMAGE}") / 1000000)) MB"
}

main "$@"
