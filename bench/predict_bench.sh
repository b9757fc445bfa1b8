#!/usr/bin/env bash
# Predict: throughput per batch size (in-process forward vs gRPC), one-caller latency against
# the gRPC echo, 64 concurrent callers, and latency while a training job runs. Starts a
# classifier-server (--threads BENCH_THREADS, default 1, and its default 2 inference threads)
# and runs bench's predict_bench against it with the same compute threads in-process.
#
#   bench/predict_bench.sh                 full: 3 rounds per batch size, 2,000 requests
#   bench/predict_bench.sh --quick         2 rounds, 1,000 requests, shorter measurements
#   bench/predict_bench.sh [--quick] -- [predict_bench flags]   e.g. -- --sections=latency
#
# See bench/README.md for what each figure means and its target.
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

start_server predict
"$predict_bench" --server="127.0.0.1:$server_port" --threads="$BENCH_THREADS" \
  --dataset=fashion-mnist "${flags[@]}" "$@"
echo "(server: classifier-server --threads $BENCH_THREADS, default --inference_threads;" \
  "client and server share this machine's $(getconf _NPROCESSORS_ONLN) cores)"
