#!/usr/bin/env bash
# skaffold's custom builder for one Emostream image: builds it with images/build.sh (which makes
# the Debian base, the slim build context and the Spark connector jars) and tags the result as
# the $IMAGE skaffold asked for; pushes it only when skaffold says so ($PUSH_IMAGE).
#
# usage (by skaffold.yaml): tools/skaffold-build.sh ROLE     ROLE: ingest fanout spark loadgen
set -euo pipefail

role=${1:?usage: tools/skaffold-build.sh ROLE}
: "${IMAGE:?skaffold sets IMAGE to the image reference to produce}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

echo "skaffold-build: ${role} -> ${IMAGE}"
"${ROOT}/images/build.sh" "${role}"
docker tag "emostream/${role}:dev" "${IMAGE}"
if [[ "${PUSH_IMAGE:-false}" == true ]]; then
  docker push "${IMAGE}"
fi
