#!/usr/bin/env bash
# Build everything the offline kind cluster needs, skipping what exists:
#
# usage: k8s-tests/cluster/build.sh          (as root; then create-cluster.sh, smoke.sh)
#
#   1. build-binaries.sh    kind, Kubernetes, etcd, CoreDNS, containerd, runc, ... from Go modules
#   2. build-base.sh        Debian root file systems with debootstrap
#   3. build-images.sh      the system images, named as kubeadm asks
#   4. build-node-image.sh  kindest/node:<kubernetes>-emostream
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=${SECONDS}
for step in build-binaries build-base build-images build-node-image; do
  step_started=${SECONDS}
  echo "=== ${step}"
  "${HERE}/${step}.sh"
  echo "=== ${step}: $((SECONDS - step_started))s"
done
echo "=== all built in $((SECONDS - started))s"
