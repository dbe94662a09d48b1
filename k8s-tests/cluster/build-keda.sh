#!/usr/bin/env bash
# KEDA from the Go module proxy: its three images and its install manifest, for install-keda.sh.
#
# usage: k8s-tests/cluster/build-keda.sh      (after build-images.sh, which makes the base)
#
#   ghcr.io/kedacore/keda:<v>                      the operator        (/keda)
#   ghcr.io/kedacore/keda-metrics-apiserver:<v>    the metrics adapter (/keda-adapter)
#   ghcr.io/kedacore/keda-admission-webhooks:<v>   the webhooks        (/keda-admission-webhooks)
#   .emostream/cluster/manifests/keda-<v>.yaml     `kubectl kustomize config/default` of the
#                                                  module, with these tags and IfNotPresent
# KEDA's go.mod pins k8s.io/*, controller-runtime and Prometheus with replace directives, which
# `go install` refuses; the wrapper module repeats them, read from that go.mod at build time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${KEDA_VERSION#v}"
MODULE=github.com/kedacore/keda/v2
OUT="${BIN}/keda-${KEDA_VERSION}"
MANIFEST="${CACHE}/manifests/keda-${KEDA_VERSION}.yaml"
# image name : binary in bin/ : arguments of upstream's ENTRYPOINT
COMPONENTS=(
  "keda:keda:--zap-log-level=info --zap-encoder=console"
  "keda-metrics-apiserver:keda-adapter:--secure-port=6443 --zap-log-level=info --zap-encoder=console"
  "keda-admission-webhooks:keda-admission-webhooks:--zap-log-level=info --zap-encoder=console"
)

module_dir() { go mod download -json "${MODULE}@${KEDA_VERSION}" | jq -r .Dir; }

build_binaries() {
  local source go_version
  source="$(module_dir)"
  go_version="$(sed -n 's/^go //p' "${source}/go.mod")"
  {
    echo "module local/keda"
    echo "go ${go_version}"
    echo "require ${MODULE} ${KEDA_VERSION}"
    sed -n '/^replace (/,/^)/p' "${source}/go.mod"
  } | write_module keda
  cd "${SRC}/keda"
  local ldflags="-s -w -X ${MODULE}/version.Version=${VERSION} -X ${MODULE}/version.GitCommit=${KEDA_VERSION}"
  local name
  for name in operator:keda adapter:keda-adapter webhooks:keda-admission-webhooks; do
    CGO_ENABLED=0 nice_go build -mod=mod -trimpath -ldflags "${ldflags}" \
      -o "${OUT}/${name#*:}" "${MODULE}/cmd/${name%%:*}"
  done
}

build_images() {
  local entry image binary arguments context json argument
  for entry in "${COMPONENTS[@]}"; do
    IFS=: read -r image binary arguments <<<"${entry}"
    context="$(context_dir "${binary}")"
    cp "${OUT}/${binary}" "${context}/"
    json="\"/${binary}\""
    for argument in ${arguments}; do json+=", \"${argument}\""; done
    printf '%s\n' "FROM ${STATIC_BASE}" "COPY ${binary} /${binary}" \
      'USER 65532:65532' "ENTRYPOINT [${json}]" >"${context}/Dockerfile"
    build_image "ghcr.io/kedacore/${image}:${VERSION}" "${context}"
  done
}

render_manifest() {
  local source
  source="$(module_dir)"
  mkdir -p "$(dirname "${MANIFEST}")"
  kubectl kustomize "${source}/config/default" |
    sed -E -e "s#(image: ghcr.io/kedacore/[a-z-]+):[A-Za-z0-9._-]+#\1:${VERSION}#" \
      -e 's#imagePullPolicy: Always#imagePullPolicy: IfNotPresent#' >"${MANIFEST}.part"
  # Container images only: the CRDs' schemas also have properties called "image".
  if grep -E '^\s+image: \S' "${MANIFEST}.part" | grep -v ":${VERSION}\$"; then
    die "the KEDA manifest names an image not built here"
  fi
  mv "${MANIFEST}.part" "${MANIFEST}"
}

main() {
  need_docker
  image_exists "${STATIC_BASE}" || die "run build-images.sh first"
  # Cold, this compiles many cloud SDK modules: about half an hour on two cores.
  build_once "keda-${KEDA_VERSION}" build_binaries
  build_images
  run_logged keda-manifest render_manifest
  say "KEDA ${VERSION}: images built, manifest ${MANIFEST}"
}

main "$@"
