#!/usr/bin/env bash
# Build the two images only the end-to-end tests use, and load every image the tests run into
# the kind cluster.
#
# usage: k8s-tests/e2e/images.sh [--no-load]
#
#   emostream/e2e-kafka:<kafka version>  a single-node KRaft broker from the Maven jars the local
#                                        stack caches in .emostream/jars/kafka-<version>/ (fetched
#                                        here if missing)
#   emostream/e2e-redis:bookworm         Debian's redis-server (the chart's Redis, offline)
#
# Then, unless --no-load, `kind load docker-image` of those, emostream/{ingest,fanout,spark,
# loadgen}:<version> into the cluster KIND_CLUSTER (default emostream). Build the project's
# images first with `make images`. Environment: KIND (default: the kind the offline cluster was built
# with, k8s-tests/cluster/env.sh; else kind on PATH), EMOSTREAM_IMAGE_BASE (default
# emostream/debian:bookworm).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="${ROOT}/k8s-tests/e2e"
CONTEXT="${ROOT}/.emostream/e2e/kafka-context"
BASE="${EMOSTREAM_IMAGE_BASE:-emostream/debian:bookworm}"
# shellcheck source=../cluster/env.sh
source "${ROOT}/k8s-tests/cluster/env.sh"
CLUSTER="${CLUSTER_NAME}"
# shellcheck disable=SC2034  # read by tools/steps.sh
LOGS="${ROOT}/.emostream/e2e/logs"
# shellcheck source=SCRIPTDIR/../../tools/steps.sh
source "${ROOT}/tools/steps.sh"

# The broker jars of the local stack's Kafka version, fetched from Maven Central if not cached.
jars="$("${ROOT}/.venv/bin/python" -c '
from emostream.localstack.jars import kafka_broker_jars
from emostream.localstack.settings import StackSettings
s = StackSettings()
print(kafka_broker_jars(s.stack_dir.resolve() / "jars", s.kafka_version))')" ||
  { echo "images.sh: could not get the Kafka jars (run 'make venv' first)" >&2; exit 1; }
kafka_version="${jars##*/kafka-}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "${ROOT}/pyproject.toml" | head -n 1)"

say "building emostream/e2e-kafka:${kafka_version} from ${jars#"${ROOT}"/}"
rm -rf "${CONTEXT}"
mkdir -p "${CONTEXT}/libs"
cp "${jars}"/*.jar "${CONTEXT}/libs/"
cp "${HERE}"/kafka-image/{Dockerfile,kafka-start.sh,log4j2.properties} "${CONTEXT}/"
run_logged e2e-kafka docker build --build-arg "BASE=${BASE}" -t "emostream/e2e-kafka:${kafka_version}" "${CONTEXT}"
say "building emostream/e2e-redis:bookworm"
run_logged e2e-redis docker build --build-arg "BASE=${BASE}" -t emostream/e2e-redis:bookworm "${HERE}/redis-image"

[[ "${1:-}" == --no-load ]] && exit 0
kind="${KIND:-${CLUSTER_KIND}}"
[[ -x "${kind}" ]] || kind=kind
for image in "emostream/e2e-kafka:${kafka_version}" emostream/e2e-redis:bookworm \
  "emostream/ingest:${version}" "emostream/fanout:${version}" "emostream/spark:${version}" \
  "emostream/loadgen:${version}"; do
  run_logged "load-${image//[\/:]/-}" "${kind}" load docker-image "${image}" --name "${CLUSTER}"
done
say "done"
