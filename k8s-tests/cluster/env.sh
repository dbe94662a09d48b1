# shellcheck shell=bash disable=SC2034  # the settings here are used by the scripts sourcing it
# Which offline cluster this is and where its caches live: sourced by lib.sh, and by the scripts
# outside k8s-tests/cluster that use the cluster (k8s-tests/e2e/run.sh, k8s-tests/e2e/images.sh).
# Sourced, never run; defines settings only.
#
# The caches are the machine's, not the clone's: a fresh clone on the same machine finds the
# Go module and build caches, binaries, root file systems and images built before.
# Environment:
#   EMOSTREAM_CLUSTER_CACHE  cache directory (default /var/cache/emostream/cluster as root,
#                            else ${XDG_CACHE_HOME:-$HOME/.cache}/emostream/cluster)
#   KIND_CLUSTER             the kind cluster's name (default emostream)

CLUSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=versions.env
source "${CLUSTER_ROOT}/k8s-tests/cluster/versions.env"
if [[ "$(id -u)" == 0 ]]; then
  CLUSTER_CACHE="${EMOSTREAM_CLUSTER_CACHE:-/var/cache/emostream/cluster}"
else
  CLUSTER_CACHE="${EMOSTREAM_CLUSTER_CACHE:-${XDG_CACHE_HOME:-${HOME}/.cache}/emostream/cluster}"
fi
CLUSTER_NAME="${KIND_CLUSTER:-emostream}"
# kind names the node containers <cluster>-control-plane, <cluster>-worker, <cluster>-worker2.
CLUSTER_CONTROL_PLANE="${CLUSTER_NAME}-control-plane"
CLUSTER_KUBECONFIG="${CLUSTER_CACHE}/kubeconfig-${CLUSTER_NAME}"
CLUSTER_KIND="${CLUSTER_CACHE}/bin/kind-${KIND_VERSION}/kind"
CLUSTER_SKAFFOLD="${CLUSTER_CACHE}/bin/skaffold-${SKAFFOLD_VERSION}/skaffold"
