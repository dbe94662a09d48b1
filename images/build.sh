#!/usr/bin/env bash
# Build Emostream's container images; no container registry needs to be reachable.
#
# usage: images/build.sh [ROLE ...]      ROLE: ingest fanout loadgen spark (default: all four)
#
#   1. emostream/debian:bookworm, the base, is made from Debian packages with debootstrap if the
#      image is missing; its root file system is kept as a tarball under .emostream/images/.
#   2. emostream/python-base, emostream/python-build and emostream/python-project
#      (images/python-base/): Python 3.11 and the runtime user, the virtualenv builder, and the
#      project itself, installed once for every role.
#   3. Each ROLE as emostream/ROLE:<version in pyproject.toml> and emostream/ROLE:dev, checked
#      with a quick run, then the sizes are printed.
#
# Environment:
#   EMOSTREAM_IMAGE_BASE  Debian bookworm image to build on (default emostream/debian:bookworm,
#                         made here); e.g. debian:bookworm-slim where a registry is reachable
#   DEBIAN_MIRROR         mirror for debootstrap (default http://deb.debian.org/debian)
#   EMOSTREAM_CA_BUNDLE   CA bundle pip trusts inside the builds (default: $SSL_CERT_FILE, else
#                         /etc/ssl/certs/ca-certificates.crt if present, else pip's own CAs)
#   VERBOSE=1             show docker's output instead of logging it to .emostream/images/logs/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.emostream/images"
LOGS="${CACHE}/logs"
CONTEXT="${CACHE}/context"
ALL_ROLES=(ingest fanout loadgen spark)
LOCAL_BASE="emostream/debian:bookworm"
BASE_IMAGE="${EMOSTREAM_IMAGE_BASE:-${LOCAL_BASE}}"
ROOTFS_TAR="${CACHE}/debian-bookworm-minbase.tar"
# shellcheck source=SCRIPTDIR/../tools/steps.sh
source "${ROOT}/tools/steps.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# Make sure COMMAND exists, installing Debian PACKAGE when running as root with apt-get.
need() {
  local command=$1 package=$2
  command -v "${command}" >/dev/null 2>&1 && return
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${package} (for ${command})"
    run_logged "apt-${package}" bash -c \
      "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${package}"
    return
  fi
  die "${command} is missing: install it (Debian/Ubuntu: sudo apt-get install -y ${package})"
}

project_field() {
  # A top-level string of pyproject.toml's [project] table, e.g. version.
  awk -v key="$1" '
    /^\[/ { in_project = ($0 == "[project]") }
    in_project && $1 == key && $2 == "=" { gsub(/"/, "", $3); print $3; exit }
  ' "${ROOT}/pyproject.toml"
}

pyspark_pin() {
  sed -n 's/^ *"pyspark==\([^"]*\)".*/\1/p' "${ROOT}/pyproject.toml" | head -n 1
}

# --- 1. the Debian base image --------------------------------------------------------------

make_rootfs_tarball() {
  need debootstrap debootstrap
  [[ "$(id -u)" == 0 ]] || die "debootstrap needs root to make ${LOCAL_BASE}: run as root once"
  mkdir -p "${CACHE}"
  BUILD_TREE="$(mktemp -d "${CACHE}/rootfs.XXXXXX")"
  trap 'remove_tree "${BUILD_TREE}"' EXIT
  say "debootstrap --variant=minbase bookworm from ${MIRROR}"
  run_logged debootstrap debootstrap --variant=minbase bookworm "${BUILD_TREE}/rootfs" "${MIRROR}"
  say "applying updates and trimming the root file system"
  run_logged slim-rootfs slim_rootfs "${BUILD_TREE}/rootfs"
  tar --numeric-owner -C "${BUILD_TREE}/rootfs" -cf "${ROOTFS_TAR}.part" .
  mv "${ROOTFS_TAR}.part" "${ROOTFS_TAR}"
  remove_tree "${BUILD_TREE}"
  trap - EXIT
}

ensure_base() {
  if docker image inspect "${BASE_IMAGE}" >/dev/null 2>&1; then
    say "base ${BASE_IMAGE} is present"
    return
  fi
  if [[ "${BASE_IMAGE}" != "${LOCAL_BASE}" ]]; then
    say "base ${BASE_IMAGE} will be pulled by the first build"
    return
  fi
  if [[ -s "${ROOTFS_TAR}" ]]; then
    say "base ${LOCAL_BASE}: importing the cached root file system"
  else
    make_rootfs_tarball
  fi
  docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
    --message "Debian bookworm minbase made with debootstrap" \
    "${ROOTFS_TAR}" "${LOCAL_BASE}" >/dev/null
  say "base ${LOCAL_BASE} imported"
}

# --- 2. the build context ------------------------------------------------------------------

# A slim copy of the repository (no virtualenv, caches or local stack data) plus .build/: the
# CA bundle for pip and, for the Spark image, the Kafka connector jars.
make_context() {
  remove_tree "${CONTEXT}"
  mkdir -p "${CONTEXT}/.build/spark-jars"
  local paths=(pyproject.toml README.md src spark-jobs images) path
  for path in LICENSE NOTICE; do [[ -e "${ROOT}/${path}" ]] && paths+=("${path}"); done
  tar -C "${ROOT}" --exclude=__pycache__ --exclude='*.py[co]' --exclude='*.egg-info' \
    -cf - "${paths[@]}" | tar -C "${CONTEXT}" -xf -

  local ca="${EMOSTREAM_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
  if [[ -f "${ca}" ]]; then
    cp "${ca}" "${CONTEXT}/.build/ca-certificates.crt"
  else
    : >"${CONTEXT}/.build/ca-certificates.crt"
  fi
}

# The connector jars, shared with the local stack's cache (.emostream/jars/), fetched from Maven
# Central by the project's own code the first time.
add_spark_jars() {
  local version dir python
  version="$(pyspark_pin)"
  [[ -n "${version}" ]] || die "no pyspark==VERSION pin in pyproject.toml"
  dir="${ROOT}/.emostream/jars/spark-kafka-${version}"
  if [[ ! -e "${dir}/.complete" ]]; then
    need mvn maven
    python="${ROOT}/.venv/bin/python"
    [[ -x "${python}" ]] || python=python3
    say "fetching the Spark Kafka connector ${version} from Maven Central"
    run_logged spark-jars env PYTHONPATH="${ROOT}/src" "${python}" -c '
import sys
from pathlib import Path
from emostream.localstack.jars import spark_kafka_jars
spark_kafka_jars(Path(sys.argv[1]), sys.argv[2])
' "${ROOT}/.emostream/jars" "${version}"
  fi
  cp "${dir}"/*.jar "${CONTEXT}/.build/spark-jars/"
}

# --- 3. images -----------------------------------------------------------------------------

build() {
  local name=$1
  shift
  say "building ${name}"
  run_logged "build-${name}" docker build "$@" "${CONTEXT}"
}

check() {
  # A quick run of each image: its modules import, its tools start, it runs as uid 10001.
  local role=$1 image="emostream/$1:dev" user
  user="$(docker image inspect -f '{{.Config.User}}' "${image}")"
  [[ "${user}" == 10001 ]] || { echo "${image} runs as '${user}', not 10001"; return 1; }
  case "${role}" in
    ingest)
      docker run --rm --entrypoint python "${image}" -c \
        'import gunicorn.workers.gthread, emostream.ingest.app, emostream.ingest.gunicorn_conf'
      docker run --rm --entrypoint gunicorn "${image}" --version ;;
    fanout)
      docker run --rm --entrypoint python "${image}" -c \
        'import gunicorn.workers.ggevent, emostream.fanout.app, emostream.fanout.gunicorn_conf'
      docker run --rm --entrypoint gunicorn "${image}" --version ;;
    loadgen)
      docker run --rm --entrypoint python "${image}" -c 'import emostream.loadgen.generator'
      docker run --rm --entrypoint emostream "${image}" generate --help >/dev/null
      docker run --rm "${image}" --version ;;
    spark)
      local got
      got="$(docker run --rm "${image}" python -c \
        'import pyspark, emostream.aggregate.job; print(pyspark.__version__)')"
      [[ "${got}" == "$(pyspark_pin)" ]] || { echo "pyspark ${got} != pin"; return 1; }
      docker run --rm "${image}" bash -c \
        'ls "$SPARK_HOME"/jars/spark-sql-kafka-0-10_2.13-*.jar "$SPARK_HOME"/jars/kafka-clients-*.jar'
      docker run --rm "${image}" java -version ;;
  esac
}

# Role and project images whose tags moved to a newer build only take disk space; builder-stage
# images stay, they are the cache that keeps rebuilds fast.
remove_superseded() {
  local id title
  for id in $(docker image ls -q --filter dangling=true --filter label=org.opencontainers.image.title); do
    title="$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.title"}}' "${id}")"
    if [[ "${title}" == emostream-* ]]; then
      docker image rm "${id}" >/dev/null 2>&1 || true
    fi
  done
}

main() {
  local roles=() role
  for role in "$@"; do
    case "${role}" in
      -h | --help) usage; exit 0 ;;
      ingest | fanout | loadgen | spark) roles+=("${role}") ;;
      *) die "unknown role '${role}' (roles: ${ALL_ROLES[*]})" ;;
    esac
  done
  [[ ${#roles[@]} -gt 0 ]] || roles=("${ALL_ROLES[@]}")

  need docker docker.io
  docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon: start it (as root: \
setsid dockerd >/tmp/dockerd.log 2>&1 &) or join the docker group"

  local version revision
  version="$(project_field version)"
  [[ -n "${version}" ]] || die "no version in pyproject.toml's [project] table"
  revision="$(git -C "${ROOT}" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  say "Emostream ${version} (${revision}): ${roles[*]}"

  ensure_base
  make_context
  if [[ " ${roles[*]} " == *" spark "* ]]; then
    add_spark_jars
  fi

  local python_base="emostream/python-base:${version}" python_build="emostream/python-build:${version}"
  local python_project="emostream/python-project:${version}"
  build python-base --file "${CONTEXT}/images/python-base/Dockerfile" --target runtime \
    --build-arg BASE="${BASE_IMAGE}" --tag "${python_base}" --tag emostream/python-base:dev
  build python-build --file "${CONTEXT}/images/python-base/Dockerfile" --target build \
    --build-arg BASE="${BASE_IMAGE}" --tag "${python_build}" --tag emostream/python-build:dev
  # Rebuilt by every code change; the label lets remove_superseded drop the versions it replaced.
  build python-project --file "${CONTEXT}/images/python-base/Dockerfile" --target project \
    --build-arg BASE="${BASE_IMAGE}" --label org.opencontainers.image.title=emostream-python-project \
    --tag "${python_project}" --tag emostream/python-project:dev

  for role in "${roles[@]}"; do
    build "${role}" --file "${CONTEXT}/images/${role}/Dockerfile" \
      --build-arg BASE="${python_base}" --build-arg BUILDER="${python_build}" \
      --build-arg PROJECT="${python_project}" \
      --label org.opencontainers.image.title="emostream-${role}" \
      --label org.opencontainers.image.version="${version}" \
      --label org.opencontainers.image.revision="${revision}" \
      --tag "emostream/${role}:${version}" --tag "emostream/${role}:dev"
  done

  remove_superseded

  local failed=()
  for role in "${roles[@]}"; do
    logged "check-${role}" check "${role}"
    if [[ "${STATUS}" == 0 ]]; then
      say "checked ${role}"
    else
      failed+=("${role}")
      tail -n 20 "${LOGS}/check-${role}.log" >&2 || true
      say "CHECK FAILED: ${role} (log: ${LOGS}/check-${role}.log)"
    fi
  done

  echo
  printf '  %-34s %9s\n' IMAGE SIZE
  for role in "${roles[@]}"; do
    printf '  %-34s %6d MB\n' "emostream/${role}:${version}" \
      "$(($(docker image inspect -f '{{.Size}}' "emostream/${role}:dev") / 1000000))"
  done
  echo
  say "done"
  [[ ${#failed[@]} -eq 0 ]] || die "the quick check failed for: ${failed[*]}"
}

main "$@"
