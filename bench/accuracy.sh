#!/usr/bin/env bash
# Issue #4's accuracy targets, through the real server and CLI: each configuration is one Train
# job; prints its test accuracy and seconds per epoch (the epochs' elapsed time / epochs).
#
#   bench/accuracy.sh [NAME...]   (default: every configuration below)
#
# Configurations (seed 0 unless SEED is set):
#   fashion-tutorial  fashion-mnist, the tutorial's configuration, 10 epochs (target >= 89.5%)
#   fashion-wide      fashion-mnist, conv [32, 64] + hidden 128 + dropout 0.3, translation
#                     augmentation, 10% validation split with keep_best, 15 epochs, cosine LR
#                     (target >= 91.5%)
#   mnist-tutorial    ../shared/data/mnist (10,000 training images), the tutorial's
#                     configuration (target >= 97.0%)
#   mnist-wide        the same data, conv [32, 64] + hidden 128 + dropout 0.3, rotation 10 and
#                     translation 0.1, 15 epochs, cosine LR (target >= 98.3%)
# Environment: MNIST_DIR (default ../shared/data/mnist), BENCH_THREADS (default 1), SEED.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
MNIST_DIR=${MNIST_DIR:-$repo_dir/../shared/data/mnist}
SEED=${SEED:-0}
require_files "$server_bin" "$cli_bin" "$MNIST_DIR/train-images-idx3-ubyte.gz"

declare -A flags=(
  [fashion-tutorial]="--dataset fashion-mnist --epochs 10"
  [fashion-wide]="--dataset fashion-mnist --epochs 15 --conv_channels 32,64 --hidden_units 128
    --dropout 0.3 --translation 0.06 --validation_fraction 0.1 --keep_best --lr_schedule cosine"
  [mnist-tutorial]="--dataset mnist --epochs 10"
  [mnist-wide]="--dataset mnist --epochs 15 --conv_channels 32,64 --hidden_units 128
    --dropout 0.3 --rotation_degrees 10 --translation 0.1 --lr_schedule cosine"
)
names=("$@")
((${#names[@]})) || names=(fashion-tutorial fashion-wide mnist-tutorial mnist-wide)

start_server accuracy --metrics_listen=
mkdir -p "$bench_tmp/accuracy-data/mnist"
cp "$MNIST_DIR"/*-ubyte.gz "$bench_tmp/accuracy-data/mnist/"

printf '%-18s %10s %12s %8s  %s\n' configuration accuracy s/epoch epochs model
for name in "${names[@]}"; do
  [[ -n ${flags[$name]:-} ]] || die "unknown configuration $name"
  events=$bench_tmp/$name.jsonl
  # shellcheck disable=SC2086  # the flags are words
  "$cli_bin" --server "127.0.0.1:$server_port" train ${flags[$name]} --seed "$SEED" --json \
    >"$events"
  "$PYTHON" - "$name" "$events" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
events = [json.loads(line) for line in open(path) if line.strip()]
ends = [e["epoch_end"] for e in events if "epoch_end" in e]
finished = events[-1].get("finished", {})
if finished.get("state") != "JOB_STATE_SUCCEEDED":
    sys.exit(f"{name}: the job did not succeed: {finished}")
accuracy = finished["test_metrics"]["accuracy"]
per_epoch = ends[-1]["elapsed_seconds"] / len(ends)
print(f"{name:<18} {100 * accuracy:9.2f}% {per_epoch:12.2f} {len(ends):8d}  {finished['model_id']}")
PY
done
