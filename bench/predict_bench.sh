#!/usr/bin/env bash
# Predict: throughput per batch size (in-process forward vs gRPC), one-caller latency against
# the gRPC echo, 64 concurrent callers with dynamic batching vs batch-1 serving, and latency
# while a training job runs (the thread budget's split vs training on 2 threads). Starts three
# classifier-servers (--threads / --inference_threads BENCH_THREADS, default 1):
#   A  the defaults (dynamic batching);
#   B  --batch_max_images=1: batch-1 serving, the baseline of the concurrency figure;
#   C  --threads=2: the training job on 2 intra-op threads (the old default on 2 cores), the
#      other side of the serving-while-training figure;
# and runs bench's predict_bench against them with the same compute threads in-process.
#
#   bench/predict_bench.sh                 full: 3 rounds per batch size, 2,000 requests
#   bench/predict_bench.sh --quick         2 rounds, 1,000 requests, shorter measurements
#   bench/predict_bench.sh [--quick] -- [predict_bench flags]   e.g. -- --sections=latency
#
# Environment: TRAINING_ROUNDS (default 2) rounds of A C alternation for serving while training
# (0 skips it); the rest as bench/lib.sh. See bench/README.md for each figure and its target.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

flags=()
if [[ ${1:-} == --quick ]]; then
  flags=(--rounds=2 --min_seconds=0.3 --latency_requests=1000 --concurrency_seconds=2)
  shift
fi
[[ ${1:-} == -- ]] && shift
predict_bench=$BUILD_DIR/bench/predict_bench
require_files "$server_bin" "$predict_bench" "$FASHION_DIR"
training_rounds=${TRAINING_ROUNDS:-2}

# No metrics endpoint: three servers, and the bench needs none.
common=(--metrics_listen= --inference_threads="$BENCH_THREADS")
start_server batching "${common[@]}"
port_a=$server_port
start_server batch1 "${common[@]}" --batch_max_images=1
port_b=$server_port
port_c=
if ((training_rounds > 0)); then
  start_server train2 "${common[@]}" --threads=2
  port_c=$server_port
fi

run() {
  "$predict_bench" --threads="$BENCH_THREADS" --dataset=fashion-mnist "${flags[@]}" "$@"
}
run --server="127.0.0.1:$port_a" --baseline_server="127.0.0.1:$port_b" \
  --sections=throughput,latency,concurrency "$@"
echo "(servers: classifier-server --threads $BENCH_THREADS --inference_threads $BENCH_THREADS;" \
  "batch-1 baseline: the same with --batch_max_images=1; client and servers share this" \
  "machine's $(getconf _NPROCESSORS_ONLN) cores)"

if ((training_rounds > 0)); then
  echo
  echo "== 4. serving while training, A B A B: A = training $BENCH_THREADS thread(s) +" \
    "inference $BENCH_THREADS (the split), B = training 2 threads + inference $BENCH_THREADS"
  p99_a=()
  p99_b=()
  for ((round = 1; round <= training_rounds; ++round)); do
    for side in A B; do
      port=$port_a
      [[ $side == B ]] && port=$port_c
      out=$(run --server="127.0.0.1:$port" --sections=training "$@")
      line=$(grep -E '^while training:' <<<"$out")
      echo "round $round $side: ${line#while training:   }"
      p99=$(sed -n 's/^ratio: .*p99 while training \([0-9]*\) us.*/\1/p' <<<"$out")
      if [[ $side == A ]]; then p99_a+=("$p99"); else p99_b+=("$p99"); fi
    done
  done
  a=$(median "${p99_a[@]}")
  b=$(median "${p99_b[@]}")
  echo "Predict p99 while training, median of rounds: A (split) $a us (target < 5000)," \
    "B (training on 2 threads) $b us; B / A = $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
fi
