# shellcheck shell=bash disable=SC2034  # the settings here are used by the scripts sourcing it
# Shared settings and helpers of the offline cluster scripts; sourced, never run.
#
# Everything these scripts make is kept in the cache directory (env.sh: /var/cache/emostream/
# cluster as root), outside the clone, so every clone on the machine shares it:
#   bin/        binaries built from the Go module proxy, one directory per component and version
#   src/        the small wrapper Go modules they are built from
#   go/         GOMODCACHE and GOCACHE, so a second build takes seconds
#   rootfs/     root file system tarballs made with debootstrap
#   images/     build contexts of the images
#   manifests/  manifests rendered from the Go modules (KEDA, the Prometheus Operator's CRDs, ...)
#   logs/       the full output of every step
#   shared/<cluster>/  the cluster's shared file system: mounted into every node at
#               SHARED_NODE_PATH, where the StorageClass `shared` (ReadWriteMany) keeps its
#               volumes; made empty with each new cluster, removed with it
#   kubeconfig-<cluster>
# Environment:
#   EMOSTREAM_CLUSTER_CACHE, KIND_CLUSTER   see env.sh
#   DEBIAN_MIRROR            mirror for debootstrap (default http://deb.debian.org/debian)
#   VERBOSE=1                show each step's output instead of only logging it

# shellcheck source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ROOT="${CLUSTER_ROOT}"
HERE="${ROOT}/k8s-tests/cluster"
CACHE="${CLUSTER_CACHE}"
BIN="${CACHE}/bin"
SRC="${CACHE}/src"
LOGS="${CACHE}/logs"
MANIFESTS="${CACHE}/manifests"
KUBECONFIG_FILE="${CLUSTER_KUBECONFIG}"
NODE_IMAGE="kindest/node:${KUBERNETES_VERSION}-emostream"
# The base of every image holding one static binary (build-images.sh).
STATIC_BASE=emostream/static-base:2
# The base of images that need iptables, ipset and conntrack (build-base.sh).
NET_BASE=emostream/net-base:bookworm
# The shared file system of the StorageClass `shared`: this directory of the machine, mounted
# into every node at the same path (create-cluster.sh, manifests/shared-storage.yaml).
SHARED_DIR="${CACHE}/shared/${CLUSTER_NAME}"
SHARED_NODE_PATH=/mnt/shared

# The Go toolchain installed here builds everything; nothing may download another toolchain.
export GOMODCACHE="${CACHE}/go/mod" GOCACHE="${CACHE}/go/build" GOTOOLCHAIN=local
export GOFLAGS=-buildvcs=false GOPROXY="${GOPROXY:-https://proxy.golang.org}"
export PATH="${BIN}/kind-${KIND_VERSION}:${BIN}/kubernetes-${KUBERNETES_VERSION}:${PATH}"

# Build contexts of the images; IMAGES collects every image build_image made or found.
CONTEXTS="${CACHE}/images"
IMAGES=()

# shellcheck source=SCRIPTDIR/../../tools/steps.sh
source "${ROOT}/tools/steps.sh"

# build_once NAME FUNCTION: run FUNCTION with the directory BIN/NAME (logged as build-NAME),
# unless that directory holds a completed build already.
build_once() {
  local name=$1 function=$2 out="${BIN}/$1"
  if [[ -e "${out}/.complete" ]]; then
    say "${name}: present"
    return
  fi
  rm -rf "${out}"
  mkdir -p "${out}"
  say "${name}: building"
  run_logged "build-${name}" "${function}" "${out}"
  touch "${out}/.complete"
}

# Builds share two cores with everything else on the machine.
nice_go() { nice -n 15 go "$@"; }

# Write a wrapper module in SRC/NAME: go.mod from stdin; go.sum is filled by the build.
write_module() {
  local name=$1
  mkdir -p "${SRC}/${name}"
  cat >"${SRC}/${name}/go.mod.new"
  if ! cmp -s "${SRC}/${name}/go.mod.new" "${SRC}/${name}/go.mod.in" 2>/dev/null; then
    cp "${SRC}/${name}/go.mod.new" "${SRC}/${name}/go.mod.in"
    cp "${SRC}/${name}/go.mod.new" "${SRC}/${name}/go.mod"
    rm -f "${SRC}/${name}/go.sum"
  fi
  rm -f "${SRC}/${name}/go.mod.new"
}

need_docker() {
  command -v docker >/dev/null 2>&1 || die "docker is missing (Debian: apt-get install -y docker.io)"
  docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon: start it (as root: \
setsid dockerd >/tmp/dockerd.log 2>&1 &)"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# build_image IMAGE CONTEXT [EXTRA_TAG ...]: build IMAGE from CONTEXT, a directory holding a
# Dockerfile (written by the caller), unless IMAGE exists and was built from the same FROM image
# and the same context (label emostream.inputs); the extra tags are added either way.
build_image() {
  local image=$1 context=$2 from inputs built
  shift 2
  IMAGES+=("${image}" "$@")
  from="$(awk '/^FROM / { print $2; exit }' "${context}/Dockerfile")"
  inputs="$(
    [[ "${from}" == scratch ]] || docker image inspect -f '{{.Id}}' "${from}"
    cd "${context}" && find . -type f -print0 | sort -z | xargs -0 sha256sum
  )"
  inputs="$(sha256sum <<<"${inputs}" | cut -c1-16)"
  built="$(docker image inspect -f '{{index .Config.Labels "emostream.inputs"}}' "${image}" 2>/dev/null || true)"
  if [[ "${built}" != "${inputs}" ]]; then
    run_logged "image-$(basename "${context}")" docker build --network none \
      --label "emostream.inputs=${inputs}" -t "${image}" "${context}"
  else
    say "${image}: present"
  fi
  local tag
  for tag in "$@"; do docker tag "${image}" "${tag}"; done
}

# A fresh, empty build context CONTEXTS/NAME; prints its path.
context_dir() {
  rm -rf "${CONTEXTS:?}/$1"
  mkdir -p "${CONTEXTS}/$1"
  echo "${CONTEXTS}/$1"
}

# The images `kubeadm init` will run, as `kubeadm config images list` (offline) names them.
kubeadm_images() {
  local list="${CACHE}/kubeadm-images-${KUBERNETES_VERSION}.txt"
  if [[ ! -s "${list}" ]]; then
    "${BIN}/kubernetes-${KUBERNETES_VERSION}/kubeadm" config images list \
      --kubernetes-version "${KUBERNETES_VERSION}" >"${list}.part" 2>/dev/null
    mv "${list}.part" "${list}"
  fi
  cat "${list}"
}

# The tag of the image kubeadm wants for NAME (etcd, coredns/coredns, pause, ...).
kubeadm_tag() {
  kubeadm_images | sed -n "s|^registry.k8s.io/$1:||p"
}

# kubectl on this cluster (the scripts that install into it define `kubectl` as this).
cluster_kubectl() { command kubectl --kubeconfig "${KUBECONFIG_FILE}" "$@"; }

need_cluster() {
  [[ -s "${KUBECONFIG_FILE}" ]] || die "no kubeconfig ${KUBECONFIG_FILE}: run create-cluster.sh first"
}

# render_manifest FILE: FILE with each @<NAME>_VERSION@ replaced by that version (versions.env).
render_manifest() {
  local file=$1 name script=(-e "")
  for name in $(grep -oE '@[A-Z_]+_VERSION@' "${file}" | tr -d @ | sort -u); do
    [[ -n "${!name:-}" ]] || die "${file} names @${name}@, which versions.env does not set"
    script+=(-e "s|@${name}@|${!name}|g")
  done
  sed "${script[@]}" "${file}"
}

# load_images IMAGE...: `kind load docker-image` into every node of the cluster; an image a node
# has already is not sent again.
load_images() {
  run_logged "load-$(basename "$0" .sh)" kind load docker-image --name "${CLUSTER_NAME}" "$@"
}

# shared_claim NAME NAMESPACE: create a 1 MiB ReadWriteMany claim of the class `shared`.
shared_claim() {
  cluster_kubectl apply -f - <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $1, namespace: $2}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: shared
  resources: {requests: {storage: 1Mi}}
YAML
}
