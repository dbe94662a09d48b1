#!/usr/bin/env bash
# Make this machine's Docker engine able to run kind's node containers.
#
# usage: k8s-tests/cluster/prepare-host.sh      (as root; create-cluster.sh runs it)
#
# kind starts each node with `docker run --privileged`, which asks runc for every capability
# the kernel knows. Where the machine itself runs without some of them (here CAP_SYS_RESOURCE
# is missing from every process's bounding set), runc refuses: "unable to apply caps:
# operation not permitted". Then this script installs host/runc-bounded as
# /usr/local/sbin/runc-bounded, a runc that leaves those capabilities out, makes it Docker's
# default runtime in /etc/docker/daemon.json and has dockerd reload its configuration
# (SIGHUP: running containers and builds are not interrupted). On a machine with a full
# bounding set it changes nothing.
# It also raises the inotify limits that a node's systemd, containerd and kubelet need.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WRAPPER=/usr/local/sbin/runc-bounded
DAEMON_JSON=/etc/docker/daemon.json

missing_capabilities() {
  local bounding last all
  bounding=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
  last="$(cat /proc/sys/kernel/cap_last_cap)"
  all=$(((1 << (last + 1)) - 1))
  (( (bounding & all) != all )) || return 0
  capsh --decode="$(printf '%x' $((all & ~bounding)))" | sed 's/^0x[0-9a-f]*=//'
}

# A privileged container starts, and a command can be run in it with docker exec.
privileged_run_works() {
  local container
  container="$(docker run -d --privileged --network none --entrypoint sleep \
    emostream/net-base:bookworm 60 2>/dev/null)" || return 1
  docker exec "${container}" true >/dev/null 2>&1
  local status=$?
  docker rm -f "${container}" >/dev/null 2>&1
  return "${status}"
}

# Install or update the wrapper; make it dockerd's default runtime if it is not yet.
install_wrapper() {
  local real
  real="$(command -v runc || true)"
  [[ -n "${real}" && "${real}" != "${WRAPPER}" ]] || die "no runc found for the wrapper to call"
  command -v capsh >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap2-bin
  command -v jq >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq
  sed "s|^REAL_RUNC=.*|REAL_RUNC=\"\${EMOSTREAM_REAL_RUNC:-${real}}\"|" "${HERE}/host/runc-bounded" \
    >"${WRAPPER}.new"
  chmod 0755 "${WRAPPER}.new"
  mv "${WRAPPER}.new" "${WRAPPER}"
  [[ "$(docker info -f '{{.DefaultRuntime}}')" != runc-bounded ]] || return 0
  mkdir -p "$(dirname "${DAEMON_JSON}")"
  local current='{}'
  [[ ! -s "${DAEMON_JSON}" ]] || current="$(cat "${DAEMON_JSON}")"
  jq --arg path "${WRAPPER}" \
    '.runtimes["runc-bounded"] = {path: $path} | .["default-runtime"] = "runc-bounded"' \
    <<<"${current}" >"${DAEMON_JSON}.new"
  mv "${DAEMON_JSON}.new" "${DAEMON_JSON}"
  local pid
  pid="$(pidof dockerd)" || die "dockerd is not running"
  kill -HUP "${pid}"
  local tries=0
  until [[ "$(docker info -f '{{.DefaultRuntime}}')" == runc-bounded ]]; do
    (( ++tries < 20 )) || die "dockerd did not take runc-bounded as its default runtime"
    sleep 0.5
  done
}

raise_inotify_limits() {
  local setting name wanted value
  for setting in fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288; do
    name="${setting%%=*}" wanted="${setting##*=}"
    value="$(sysctl -n "${name}")"
    (( value >= wanted )) || sysctl -qw "${setting}"
  done
}

main() {
  need_docker
  [[ "$(id -u)" == 0 ]] || die "run as root"
  raise_inotify_limits
  local missing
  missing="$(missing_capabilities)"
  if [[ -z "${missing}" ]]; then
    say "the bounding set has every capability: Docker's own runc is fine"
    return
  fi
  install_wrapper
  privileged_run_works || die "privileged containers still fail with ${WRAPPER}"
  say "this machine lacks ${missing}; privileged containers start with ${WRAPPER}, Docker's default runtime"
}

main "$@"
