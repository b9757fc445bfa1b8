#!/usr/bin/env bash
# The soak's 60 s version (issue 13, item 5): bench/soak.sh against the real server with the
# built binaries: 64 Predict callers (h2load), training jobs, WatchJob clients that drop and
# resume their streams, a DeployModel every 2 s, imports, exports and deletes in a loop. Passes
# when the soak does: no unexpected error, RSS, file descriptors and threads flat after the
# warm-up, every watcher saw every event once. `bench/soak.sh 30` is the half-hour run.
set -euo pipefail
: "${CLASSIFIER_SOURCE_DIR:?set by ctest}" "${CLASSIFIER_BINARY_DIR:?set by ctest}"
fashion=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
for tool in h2load protoc; do
  command -v "$tool" >/dev/null || { echo "skipped: $tool is missing (scripts/install-deps.sh all)"; exit 77; }
done
[[ -f $fashion/train-images-idx3-ubyte.gz ]] ||
  { echo "skipped: no Fashion-MNIST in $fashion (apt-get install dataset-fashion-mnist)"; exit 77; }
SOAK_SECONDS=${SOAK_SECONDS:-60} BUILD_DIR=$CLASSIFIER_BINARY_DIR \
  exec bash "$CLASSIFIER_SOURCE_DIR/bench/soak.sh"
