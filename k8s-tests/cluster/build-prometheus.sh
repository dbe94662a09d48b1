#!/usr/bin/env bash
# Prometheus from the Go module proxy, as the image the end-to-end tests deploy for KEDA to query.
#
# usage: k8s-tests/cluster/build-prometheus.sh   (after build-images.sh, which makes the base)
#
#   quay.io/prometheus/prometheus:<v>   /bin/prometheus on the static base; upstream's name, so
#                                       the same manifest pulls upstream's image where a
#                                       registry is reachable
# Prometheus v3.X.Y is published as Go module github.com/prometheus/prometheus v0.30X.Y. Its
# go.mod has exclude directives, which `go install` refuses; a wrapper module repeats them, read
# from that go.mod at build time. The web UI's assets are left out (no `builtinassets` tag): the
# tests use the HTTP API only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${PROMETHEUS_VERSION#v}"
MODULE_VERSION="v0.$((10#${VERSION%%.*} * 100 + 10#$(cut -d. -f2 <<<"${VERSION}"))).${VERSION##*.}"
OUT="${BIN}/prometheus-${PROMETHEUS_VERSION}"
IMAGE="quay.io/prometheus/prometheus:${PROMETHEUS_VERSION}"
MODULE=github.com/prometheus/prometheus

build_binary() {
  local source go_version stamp=github.com/prometheus/common/version
  source="$(go mod download -json "${MODULE}@${MODULE_VERSION}" | jq -r .Dir)"
  go_version="$(sed -n 's/^go //p' "${source}/go.mod")"
  {
    echo "module local/prometheus"
    echo "go ${go_version}"
    echo "require ${MODULE} ${MODULE_VERSION}"
    sed -n -e '/^exclude (/,/^)/p' -e '/^exclude [^(]/p' "${source}/go.mod"
  } | write_module prometheus
  cd "${SRC}/prometheus"
  CGO_ENABLED=0 nice_go build -mod=mod -trimpath -tags netgo \
    -ldflags "-s -w -X ${stamp}.Version=${VERSION} -X ${stamp}.Branch=release-${VERSION%.*} \
-X ${stamp}.Revision=${MODULE_VERSION} -X ${stamp}.BuildUser=emostream" \
    -o "${OUT}/prometheus" "${MODULE}/cmd/prometheus"
}

build_prometheus_image() {
  local context
  context="$(context_dir prometheus)"
  cp "${OUT}/prometheus" "${context}/"
  # Upstream's layout: the binary in /bin, data in /prometheus, running as nobody.
  printf '%s\n' "FROM ${STATIC_BASE}" "COPY prometheus /bin/prometheus" 'USER 65534:65534' \
    'ENTRYPOINT ["/bin/prometheus"]' \
    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]' \
    >"${context}/Dockerfile"
  build_image "${IMAGE}" "${context}"
}

main() {
  need_docker
  image_exists "${STATIC_BASE}" || die "run build-images.sh first"
  # Cold, this compiles every service discovery's SDK (minutes when KEDA's modules are cached).
  build_once "prometheus-${PROMETHEUS_VERSION}" build_binary
  build_prometheus_image
  say "Prometheus ${VERSION}: image ${IMAGE}"
}

main "$@"
