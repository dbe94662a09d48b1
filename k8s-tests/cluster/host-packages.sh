#!/usr/bin/env bash
# Make sure this machine has what building and running the offline cluster needs: the Docker
# engine (running), debootstrap, and the tools the scripts call. Go (1.26, GOTOOLCHAIN=local) must
# be installed already: Debian's is older.
#
# usage: k8s-tests/cluster/host-packages.sh      (up.sh runs it first)
#
# As root, missing Debian packages are installed (apt-get install -y docker.io debootstrap ...)
# and dockerd is started in the background when nothing answers on its socket (log:
# /var/log/emostream-dockerd.log). Otherwise every missing piece is named at once, with the
# command that installs it. (Building the root file systems needs root too: build-base.sh says so
# when it has to.)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# command:Debian package (dockerd, not docker: a machine may have the client alone)
NEEDED=(dockerd:docker.io debootstrap:debootstrap jq:jq curl:curl gcc:gcc python3:python3
  capsh:libcap2-bin shellcheck:shellcheck)
# Static linking (pause) and runc's seccomp support need headers and static libraries.
LIBRARIES=(libc6-dev libseccomp-dev)

missing_packages() {
  local entry
  for entry in "${NEEDED[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || echo "${entry##*:}"
  done
  for entry in "${LIBRARIES[@]}"; do
    dpkg -s "${entry}" >/dev/null 2>&1 || echo "${entry}"
  done
}

docker_answers() { docker info >/dev/null 2>&1; }

start_dockerd() {
  say "starting dockerd in the background (log /var/log/emostream-dockerd.log)"
  setsid dockerd >/var/log/emostream-dockerd.log 2>&1 </dev/null &
  local tries=0
  until docker_answers; do
    (( ++tries < 60 )) || die "dockerd did not answer within 60 s: see /var/log/emostream-dockerd.log"
    sleep 1
  done
}

main() {
  local missing=() problems=()
  mapfile -t missing < <(missing_packages)
  command -v go >/dev/null 2>&1 || problems+=("go 1.26 is missing (not from Debian: bookworm's is older)")
  if [[ "$(id -u)" == 0 ]]; then
    if [[ ${#missing[@]} -gt 0 ]]; then
      say "installing ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    docker_answers || start_dockerd
  else
    [[ ${#missing[@]} -eq 0 ]] || problems+=("missing: ${missing[*]} (as root: apt-get install -y ${missing[*]})")
    if command -v docker >/dev/null 2>&1 && ! docker_answers; then
      problems+=("the Docker daemon does not answer: start it (as root: setsid dockerd >/var/log/emostream-dockerd.log 2>&1 &), and let this user use it")
    fi
  fi
  if [[ ${#problems[@]} -gt 0 ]]; then
    printf '%s: %s\n' "$(basename "$0")" "${problems[@]}" >&2
    exit 1
  fi
  say "host ready: docker $(docker version -f '{{.Server.Version}}'), $(go env GOVERSION), debootstrap"
}

main "$@"
