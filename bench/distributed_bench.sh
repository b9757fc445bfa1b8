#!/usr/bin/env bash
# Data-parallel speed: the tutorial's configuration on Fashion-MNIST 60k (batch 60, Adam 1e-3)
# as one rank and as two ranks of classifier-rank (one compute thread each, on loopback Gloo),
# alternating in one run (1, 2, 1, 2, ...). Ranks are started with the torchrun environment
# directly, so launcher start-up is not measured; images per second are rank 0's epoch reports
# (the whole world's images over the epoch's wall time).
#
#   bench/distributed_bench.sh     1 epoch per run, 2 rounds (BENCH_EPOCHS, BENCH_ROUNDS)
#   BENCH_PER_RANK_BATCH=1 ...     N ranks take batch_size 60 x N (60 images per rank per step,
#                                  DDP's convention) instead of the same global 60
#
# Prints each run (images/s, test accuracy, all-reduces per run, seconds per all-reduce and
# their share of the run's training time), then the medians and the ratio two / one.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

epochs=${BENCH_EPOCHS:-1}
rounds=${BENCH_ROUNDS:-2}
rank_bin=$BUILD_DIR/distributed/classifier-rank
require_files "$rank_bin" "$FASHION_DIR"
per_rank_batch=${BENCH_PER_RANK_BATCH:-0}
request_for() {  # request_for WORLD_SIZE
  local batch=60
  ((per_rank_batch)) && batch=$((60 * $1))
  echo "dataset: \"fashion-mnist\" epochs: $epochs batch_size: $batch learning_rate: 0.001 seed: 0"
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run WORLD_SIZE: prints "IMAGES_PER_SECOND ACCURACY ALLREDUCES SECONDS_PER_ALLREDUCE SHARE".
run() {
  local world=$1 port rank pids=() out=$bench_tmp/run-$1-$RANDOM
  port=$(free_port)
  for ((rank = 0; rank < world; rank++)); do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$rank WORLD_SIZE=$world \
      "$rank_bin" --data_dir "$bench_tmp/empty" --fashion_fallback_dir "$FASHION_DIR" \
      --threads "$BENCH_THREADS" --request "$(request_for "$world")" >"$out.$rank.out" \
      2>"$out.$rank.err" &
    pids+=($!)
  done
  for rank in "${!pids[@]}"; do
    wait "${pids[$rank]}" || die "rank $rank of $world failed: $(cat "$out.$rank.err")"
  done
  "$PYTHON" - "$out.0.out" "$out.0.err" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
epochs = [l for l in lines if "epoch" in l]
rate = sum(e["images_per_second"] for e in epochs) / len(epochs)
accuracy = [l["test_accuracy"] for l in lines if "test_accuracy" in l][-1]
sums = [json.loads(l) for l in open(sys.argv[2]) if l.startswith('{"rank"')][-1]
train_seconds = epochs[-1]["elapsed_seconds"]
per_sum = sums["allreduce_seconds"] / sums["allreduces"] if sums["allreduces"] else 0
print(f"{rate:.0f} {accuracy:.4f} {sums['allreduces']} {per_sum * 1e3:.3f} "
      f"{sums['allreduce_seconds'] / train_seconds:.3f}")
PY
}

mkdir -p "$bench_tmp/empty"
echo "tutorial on Fashion-MNIST 60k, $epochs epoch(s) per run, $BENCH_THREADS thread(s) per rank," \
  "$( ((per_rank_batch)) && echo "60 images per rank per step" || echo "global batch 60")"
printf '%-6s %-6s %12s %9s %11s %13s %7s\n' round ranks images/s accuracy allreduces "ms/allreduce" share
one=() two=()
for ((round = 1; round <= rounds; round++)); do
  for world in 1 2; do
    read -r rate accuracy sums per_sum share < <(run "$world")
    printf '%-6s %-6s %12s %9s %11s %13s %7s\n' "$round" "$world" "$rate" "$accuracy" "$sums" \
      "$per_sum" "$share"
    if ((world == 1)); then one+=("$rate"); else two+=("$rate"); fi
  done
done
"$PYTHON" - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = statistics.median(map(float, sys.argv[1].split()))
two = statistics.median(map(float, sys.argv[2].split()))
print(f"median images/s: 1 rank {one:.0f}, 2 ranks {two:.0f}; ratio 2/1 = {two / one:.2f}")
PY
