#!/usr/bin/env bash
# Install the Kubernetes tools the project uses, at pinned versions, into .emostream/bin/:
#   helm          renders and lints the chart
#   kubeconform   validates rendered objects against k8s-tests/schemas/
#   promqlcheck   parses PromQL with Prometheus's own parser (tools/promqlcheck, its go.mod pins it)
#
# usage: tools/install-tools.sh [--print-bin]
#
# Each tool is built from its Go module with `go install` (the Go module proxy is the only
# source needed), so a fresh machine with Go gets exactly the versions below. The script is
# idempotent: a tool already built at its pinned version is left alone, and every step prints
# one line. --print-bin prints the directory and exits.
#
# Environment:
#   EMOSTREAM_TOOLS_BIN   where the binaries go (default: <repo>/.emostream/bin)
#   GO                    the go command (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

# Pinned versions: bump here, then run `make test-chart` (the static chart tests use both).
HELM_MODULE="helm.sh/helm/v4"
HELM_VERSION="v4.3.1"
KUBECONFORM_MODULE="github.com/yannh/kubeconform"
KUBECONFORM_VERSION="v0.8.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${EMOSTREAM_TOOLS_BIN:-${ROOT}/.emostream/bin}"

if [[ "${1:-}" == "--print-bin" ]]; then
  echo "${BIN}"
  exit 0
fi

# shellcheck source=steps.sh
source "${ROOT}/tools/steps.sh"

go_cmd="${GO:-}"
if [[ -z "${go_cmd}" ]]; then
  go_cmd="$(command -v go || true)"
  [[ -n "${go_cmd}" ]] || go_cmd=/usr/local/go/bin/go
fi
[[ -x "${go_cmd}" ]] || die "Go is needed to build helm and kubeconform (https://go.dev/doc/install); set GO=/path/to/go"

# The module version a binary was built from, as recorded by the Go toolchain in the binary.
built_version() {
  local binary=$1 module=$2
  [[ -x "${binary}" ]] || return 0
  "${go_cmd}" version -m "${binary}" 2>/dev/null | awk -v m="${module}" '$1 == "mod" && $2 == m { print $3 }'
}

install_tool() {
  local name=$1 module=$2 version=$3 package=$4 ldflags=$5 started=${SECONDS} have
  have="$(built_version "${BIN}/${name}" "${module}")"
  if [[ "${have}" == "${version}" ]]; then
    say "${name} ${version} is present (${BIN}/${name})"
    return
  fi
  say "building ${name} ${version} from ${package} (${have:-not installed}; takes a few minutes the first time)"
  mkdir -p "${BIN}"
  # CGO off: static binaries that need no C toolchain; -trimpath: reproducible builds.
  CGO_ENABLED=0 GOBIN="${BIN}" GOFLAGS="-trimpath" \
    "${go_cmd}" install -ldflags "${ldflags}" "${package}@${version}"
  have="$(built_version "${BIN}/${name}" "${module}")"
  [[ "${have}" == "${version}" ]] || die "${name}: built ${have:-nothing}, expected ${version}"
  say "built ${name} ${version} in $((SECONDS - started))s"
}

# The release builds stamp their version with -X; go install would leave "v4.3" / "development".
install_tool helm "${HELM_MODULE}" "${HELM_VERSION}" "${HELM_MODULE}/cmd/helm" \
  "-X ${HELM_MODULE}/internal/version.version=${HELM_VERSION}"
install_tool kubeconform "${KUBECONFORM_MODULE}" "${KUBECONFORM_VERSION}" "${KUBECONFORM_MODULE}/cmd/kubeconform" \
  "-X main.version=${KUBECONFORM_VERSION}"
# promqlcheck is the project's own small program; rebuilt whenever its sources change.
promqlcheck_sum="$(cat "${ROOT}"/tools/promqlcheck/{go.mod,go.sum,main.go} | sha256sum | cut -d' ' -f1)"
if [[ -x "${BIN}/promqlcheck" && "$(cat "${BIN}/.promqlcheck.sum" 2>/dev/null)" == "${promqlcheck_sum}" ]]; then
  say "promqlcheck is present (${BIN}/promqlcheck)"
else
  say "building promqlcheck from tools/promqlcheck (Prometheus's PromQL parser)"
  started=${SECONDS}
  mkdir -p "${BIN}"
  CGO_ENABLED=0 "${go_cmd}" build -C "${ROOT}/tools/promqlcheck" -trimpath -o "${BIN}/promqlcheck" .
  echo "${promqlcheck_sum}" >"${BIN}/.promqlcheck.sum"
  say "built promqlcheck in $((SECONDS - started))s"
fi
say "ready: ${BIN}/helm, ${BIN}/kubeconform, ${BIN}/promqlcheck"
