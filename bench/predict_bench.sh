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
quick=0
if [[ ${1:-} == --quick ]]; then
  flags=(--rounds=2 --min_seconds=0.3 --latency_requests=1000 --concurrency_seconds=2)
  quick=1
  shift
fi
[[ ${1:-} == -- ]] && shift
# The sections predict_bench runs (its --sections, if given among the flags).
sections=throughput,latency,concurrency
for flag in "$@"; do
  [[ $flag == --sections=* ]] && sections=${flag#--sections=}
done
predict_bench=$BUILD_DIR/bench/predict_bench
require_files "$server_bin" "$predict_bench" "$FASHION_DIR"
training_rounds=${TRAINING_ROUNDS:-2}

# Metrics on a port of the kernel's choosing (three servers): the h2load figure counts the OK
# calls there.
common=(--metrics_listen=127.0.0.1:0 --inference_threads="$BENCH_THREADS")
start_server batching "${common[@]}"
port_a=$server_port
metrics_a=$(metrics_port batching)
start_server batch1 "${common[@]}" --batch_max_images=1
port_b=$server_port
metrics_b=$(metrics_port batch1)
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

# The concurrency figure again with h2load (Debian's nghttp2-client) as the 64 callers: 64
# connections with one call in flight each, as 64 separate clients would, from a load generator
# written in C that leaves more of the 2 cores to the server than predict_bench's gRPC client
# (one channel, 64 streams). Run after predict_bench, which imported and deployed a model on
# both servers; the frame names none, so the deployed one serves.
if [[ $sections == *concurrency* ]] && command -v h2load >/dev/null; then
  h2_rounds=3 h2_requests=20000 h2_callers=64
  ((quick)) && h2_rounds=2 h2_requests=10000
  # One 28x28 raw_pixels image (pixel values 0..255 cycling), serialized by protoc.
  pixels=$(for ((i = 0; i < 784; ++i)); do printf '\\%03o' $((i % 256)); done)
  printf 'images { raw_pixels: "%s" }\n' "$pixels" |
    protoc -I "$repo_dir/proto" --encode=classifier.v1.PredictRequest \
      classifier/v1/classifier.proto | grpc_frame "$bench_tmp/one-image.bin"
  ok_sample='classifier_rpcs_total{code="OK",method="Predict"}'
  echo
  echo "== 3b. concurrency with h2load: $h2_callers connections x 1 call in flight, one image per" \
    "call, $h2_requests calls per round, A B A B: A = batching, B = batch-1 serving"
  rps_a=() rps_b=()
  for ((round = 1; round <= h2_rounds; ++round)); do
    for side in A B; do
      port=$port_a metrics=$metrics_a
      [[ $side == B ]] && port=$port_b metrics=$metrics_b
      before=$(metrics_sample "$metrics" "$ok_sample")
      read -r rps ms _ < <(h2load_grpc "$bench_tmp/one-image.bin" "$h2_callers" "$h2_requests" \
        "http://127.0.0.1:$port/classifier.v1.Classifier/Predict")
      ok=$(($(metrics_sample "$metrics" "$ok_sample") - before))
      ((ok == h2_requests)) || die "h2load round $round $side: $ok of $h2_requests calls OK"
      echo "round $round $side: $rps requests/s, mean $ms ms, $ok calls OK"
      if [[ $side == A ]]; then rps_a+=("$rps"); else rps_b+=("$rps"); fi
    done
  done
  a=$(median "${rps_a[@]}")
  b=$(median "${rps_b[@]}")
  echo "ratio: $h2_callers callers batching / batch-1 serving (h2load) = $a / $b =" \
    "$(ratio "$a" "$b") requests/s, medians (target >= 2.5)"
fi

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
    "B (training on 2 threads) $b us; B / A = $(ratio "$b" "$a")"
fi
