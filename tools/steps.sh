# shellcheck shell=bash disable=SC2034  # STATUS and MIRROR are read by the scripts sourcing this
# Helpers shared by every build script (images/build.sh, k8s-tests/cluster/*.sh,
# k8s-tests/e2e/images.sh, tools/*.sh): progress lines with the seconds since the script started, steps whose
# output goes to a log, and the trimming and removal of a debootstrap tree. Sourced, never run;
# the script sets LOGS, the directory for the steps' logs, before calling them.
# Environment: DEBIAN_MIRROR, the mirror for debootstrap (default http://deb.debian.org/debian).

STARTED=${SECONDS}
STATUS=0
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { printf '[%5ds] %s\n' "$((SECONDS - STARTED))" "$*"; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# logged NAME COMMAND...: run a command or function with its output in LOGS/NAME.log (on the
# terminal too with VERBOSE=1) and leave its exit status in STATUS. Call it as a plain
# statement, never in a condition: bash would then disable `set -e` inside the functions it runs.
logged() {
  local name=$1
  shift
  mkdir -p "${LOGS}"
  set +e
  if [[ "${VERBOSE:-0}" == 1 ]]; then
    (set -e; "$@") 2>&1 | tee "${LOGS}/${name}.log"
    STATUS=${PIPESTATUS[0]}
  else
    (set -e; "$@") >"${LOGS}/${name}.log" 2>&1
    STATUS=$?
  fi
  set -e
}

# run_logged NAME COMMAND...: as logged, but a failure shows the end of the log and stops the
# script; a success prints how long the step took.
run_logged() {
  local name=$1 started=${SECONDS}
  logged "$@"
  if [[ "${STATUS}" != 0 ]]; then
    [[ "${VERBOSE:-0}" == 1 ]] || tail -n 40 "${LOGS}/${name}.log" >&2
    die "${name} failed after $((SECONDS - started))s; full log: ${LOGS}/${name}.log"
  fi
  say "${name}: done in $((SECONDS - started))s"
}

# remove_tree DIR: delete a root file system tree that debootstrap may have mounted /proc and
# /sys inside; never delete through a mount.
remove_tree() {
  local dir=$1 mount
  [[ -d "${dir}" ]] || return 0
  while read -r mount; do umount -l "${mount}" 2>/dev/null || true; done \
    < <(awk -v d="${dir}/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "${dir}"
}

# slim_rootfs TREE: trim a fresh debootstrap tree to what an image needs, with security updates
# applied.
slim_rootfs() {
  local rootfs=$1
  cat >"${rootfs}/etc/apt/sources.list" <<EOF
deb ${MIRROR} bookworm main
deb ${MIRROR} bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  chroot "${rootfs}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive chroot "${rootfs}" apt-get -y -qq upgrade
  # Later installs in images skip documentation, manuals and translations (copyrights stay).
  cat >"${rootfs}/etc/dpkg/dpkg.cfg.d/01-emostream-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  # No package caches or translated descriptions in image layers.
  cat >"${rootfs}/etc/apt/apt.conf.d/01-emostream-slim" <<'EOF'
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Keep-Downloaded-Packages "false";
EOF
  chroot "${rootfs}" apt-get clean
  find "${rootfs}/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "${rootfs}/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
  rm -rf "${rootfs}"/usr/share/{man,info,locale,lintian}/* \
    "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/* \
    "${rootfs}"/var/log/*.log "${rootfs}"/var/log/apt/* "${rootfs}"/var/cache/debconf/*-old \
    "${rootfs}/etc/resolv.conf"
  : >"${rootfs}/etc/hostname"
}
