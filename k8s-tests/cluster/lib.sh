# shellcheck shell=bash disable=SC2034  # the settings here are used by the scripts sourcing it
# Shared settings and helpers of the offline cluster scripts; sourced, never run.
#
# Everything these scripts make is kept under .emostream/cluster/ (git-ignored):
#   bin/      binaries built from the Go module proxy, one directory per component and version
#   src/      the small wrapper Go modules they are built from
#   go/       GOMODCACHE and GOCACHE, so a second build takes seconds
#   rootfs/   root file system tarballs made with debootstrap
#   images/   build contexts of the images
#   logs/     the full output of every step
# Environment:
#   EMOSTREAM_CLUSTER_CACHE  cache directory (default <repo>/.emostream/cluster)
#   DEBIAN_MIRROR            mirror for debootstrap (default http://deb.debian.org/debian)
#   VERBOSE=1                show each step's output instead of only logging it

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${ROOT}/k8s-tests/cluster"
CACHE="${EMOSTREAM_CLUSTER_CACHE:-${ROOT}/.emostream/cluster}"
BIN="${CACHE}/bin"
SRC="${CACHE}/src"
LOGS="${CACHE}/logs"
CLUSTER_NAME="${EMOSTREAM_CLUSTER_NAME:-emostream}"
KUBECONFIG_FILE="${CACHE}/kubeconfig"
# shellcheck source=versions.env
source "${HERE}/versions.env"
NODE_IMAGE="kindest/node:${KUBERNETES_VERSION}-emostream"
# The base of every image holding one static binary (build-images.sh).
STATIC_BASE=emostream/static-base:2

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
