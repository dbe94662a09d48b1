#!/usr/bin/env bash
# `make e2e`: the end-to-end tests, every step timed, and a table of the timings at the end.
#
# usage: k8s-tests/e2e/run.sh [pytest arguments]
#
# With KUBECONFIG unset, k8s-tests/cluster/up.sh brings up the offline kind cluster KIND_CLUSTER
# (default emostream): built (cached), created if it is not running, with its NetworkPolicy
# engine, KEDA and monitoring stack. Then the project's images (images/build.sh) and the tests'
# own (images.sh, which `kind load`s them all into KIND_CLUSTER), then pytest on k8s-tests/e2e.
# Environment: PYTEST (default .venv/bin/pytest); the rest as for the scripts it calls
# (docs/e2e.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${ROOT}/k8s-tests/cluster"
PYTEST="${PYTEST:-${ROOT}/.venv/bin/pytest}"
RESULTS="${ROOT}/.emostream/e2e"
TIMINGS="${RESULTS}/timings.tsv"
LOG="${RESULTS}/pytest.log"
START=${SECONDS}
ROWS=()

# Run a step and keep its time for the table.
step() {
  local name=$1 started=${SECONDS}
  shift
  printf '\n=== %s\n' "${name}"
  "$@"
  ROWS+=("${name}"$'\t'"$((SECONDS - started)) s")
}

mkdir -p "${RESULTS}"
if [[ -z "${KUBECONFIG:-}" ]]; then
  # The cluster's own steps, each timed by up.sh, go into the table too.
  rm -f "${RESULTS}/cluster-timings.tsv"
  step "cluster (k8s-tests/cluster/up.sh)" \
    env EMOSTREAM_UP_TIMINGS="${RESULTS}/cluster-timings.tsv" "${CLUSTER}/up.sh"
  mapfile -t -O "${#ROWS[@]}" ROWS < <(sed 's/^/  /' "${RESULTS}/cluster-timings.tsv")
  # shellcheck source=../cluster/env.sh
  source "${CLUSTER}/env.sh"
  export KUBECONFIG="${CLUSTER_KUBECONFIG}"
fi
step "project images (images/build.sh)" "${ROOT}/images/build.sh"
step "test images, kind load" "${ROOT}/k8s-tests/e2e/images.sh"

printf '\n=== pytest k8s-tests/e2e on %s\n' "${KUBECONFIG}"
rm -f "${TIMINGS}"
status=0
EMOSTREAM_E2E_TIMINGS="${TIMINGS}" "${PYTEST}" "${ROOT}/k8s-tests/e2e" -m cluster -v "$@" \
  2>&1 | tee "${LOG}" || status=$?
[[ -s "${TIMINGS}" ]] && mapfile -t -O "${#ROWS[@]}" ROWS <"${TIMINGS}"
ROWS+=("whole run"$'\t'"$((SECONDS - START)) s")

printf '\n=== timings\n'
printf '%s\n' "${ROWS[@]}" | awk -F'\t' '{printf "  %-58s %s\n", $1, $2}'
printf '\n=== result: %s\n' "$(tail -n 1 "${LOG}" | tr -d '=' | sed 's/^ *//')"
exit "${status}"
