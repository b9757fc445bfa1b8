#!/usr/bin/env bash
# Training speed: the service's epoch time for the tutorial's configuration (Fashion-MNIST 60k,
# batch 60, Adam 1e-3) against the tutorial's own Python loop (../shared/bench/seed_train.py),
# at the same thread count, alternating in one run (Python, service, in-process, Python, ...).
#
#   bench/train_bench.sh          quick: 1 epoch each, 2 rounds (BENCH_EPOCHS, BENCH_ROUNDS)
#   bench/train_bench.sh --full   10 epochs each, 1 round: also test accuracy after 10 epochs
#
# Three sides:
#   python      OMP_NUM_THREADS=N /usr/bin/python3 seed_train.py ROOT fashion EPOCHS
#   service     the real classifier-server (--threads N), trained through
#               `classifier-cli train --dataset fashion-mnist --json`; seconds per epoch are
#               the epoch_end events' train_images / images_per_second
#   in-process  bench's trainer_bench: model/'s Trainer without gRPC, jobs or events
# Prints each run, then the medians, the ratios python / service and python / in-process, and
# each side's test accuracy after its last run. See bench/README.md. Needs python3-torchvision.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

epochs=${BENCH_EPOCHS:-1}
rounds=${BENCH_ROUNDS:-2}
if [[ ${1:-} == --full ]]; then
  epochs=${BENCH_EPOCHS:-10}
  rounds=${BENCH_ROUNDS:-1}
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--full]" >&2
  exit 2
fi
trainer_bench=$BUILD_DIR/bench/trainer_bench
require_files "$server_bin" "$cli_bin" "$trainer_bench" "$SEED_TRAIN" "$FASHION_DIR"
"$PYTHON" -c 'import torchvision' 2>/dev/null ||
  die "$PYTHON lacks torchvision: apt-get install python3-torchvision"

fashion_for_python "$bench_tmp/py"
start_server service
cli=("$cli_bin" --server "127.0.0.1:$server_port")

# Each run_* prints "SECONDS_PER_EPOCH ACCURACY" (means over the run's epochs; accuracy on the
# 10,000 test images after the run) and keeps its full output in $bench_tmp.
run_python() {
  local out=$bench_tmp/python-$1.log
  "$PYTHON" "$SEED_TRAIN" "$bench_tmp/py" fashion "$epochs" >"$out" 2>&1 ||
    { cat "$out" >&2; die "seed_train.py failed"; }
  grep -q "threads $BENCH_THREADS\$" "$out" || die "seed_train.py did not run on $BENCH_THREADS threads: $(tail -1 "$out")"
  awk '/^epoch / {sub(/s$/, "", $3); s += $3; n++}
       /^eval / {acc = $4}
       END {printf "%.3f %.4f\n", s / n, acc}' "$out"
}

run_service() {
  local out=$bench_tmp/service-$1.jsonl
  "${cli[@]}" train --dataset fashion-mnist --epochs "$epochs" --batch_size 60 \
    --learning_rate 0.001 --seed 0 --json >"$out" || { cat "$out" >&2; die "service training failed"; }
  "$PYTHON" - "$out" <<'PY'
import json, sys
seconds, images, accuracy = [], 0, None
for line in open(sys.argv[1]):
    event = json.loads(line)
    if "started" in event:
        images = int(event["started"]["train_images"])
    if "epoch_end" in event:
        seconds.append(images / event["epoch_end"]["images_per_second"])
    if "finished" in event:
        assert event["finished"]["state"] == "JOB_STATE_SUCCEEDED", event
        accuracy = event["finished"]["test_metrics"]["accuracy"]
print(f"{sum(seconds) / len(seconds):.3f} {accuracy:.4f}")
PY
}

run_inprocess() {
  local out=$bench_tmp/inprocess-$1.log
  "$trainer_bench" --data_dir="$FASHION_DIR" --epochs="$epochs" --threads="$BENCH_THREADS" \
    >"$out" 2>&1 || { cat "$out" >&2; die "trainer_bench failed"; }
  awk '/^epoch / {sub(/s$/, "", $3); s += $3; n++}
       /^test accuracy / {acc = $3}
       END {printf "%.3f %.4f\n", s / n, acc}' "$out"
}

echo "== training: Fashion-MNIST 60k, batch 60, Adam 1e-3, $BENCH_THREADS thread(s)," \
  "$epochs epoch(s) per run, $rounds round(s), alternating python / service / in-process"
py_s=() sv_s=() ip_s=()
for ((round = 1; round <= rounds; ++round)); do
  read -r s py_acc < <(run_python "$round")
  py_s+=("$s")
  printf 'round %d  python      %7.2f s/epoch  test accuracy %s\n' "$round" "$s" "$py_acc"
  read -r s sv_acc < <(run_service "$round")
  sv_s+=("$s")
  printf 'round %d  service     %7.2f s/epoch  test accuracy %s\n' "$round" "$s" "$sv_acc"
  read -r s ip_acc < <(run_inprocess "$round")
  ip_s+=("$s")
  printf 'round %d  in-process  %7.2f s/epoch  test accuracy %s\n' "$round" "$s" "$ip_acc"
done
py=$(median "${py_s[@]}")
sv=$(median "${sv_s[@]}")
ip=$(median "${ip_s[@]}")
echo "-- medians over $rounds round(s), seconds per epoch (test accuracy after the last run," \
  "$epochs epoch(s))"
printf 'python seed_train.py     %7.2f s/epoch  %8.0f img/s  accuracy %s\n' "$py" \
  "$(awk -v s="$py" 'BEGIN {print 60000 / s}')" "$py_acc"
printf 'service (gRPC job)       %7.2f s/epoch  %8.0f img/s  accuracy %s\n' "$sv" \
  "$(awk -v s="$sv" 'BEGIN {print 60000 / s}')" "$sv_acc"
printf 'in-process Trainer       %7.2f s/epoch  %8.0f img/s  accuracy %s\n' "$ip" \
  "$(awk -v s="$ip" 'BEGIN {print 60000 / s}')" "$ip_acc"
awk -v py="$py" -v sv="$sv" -v ip="$ip" -v pa="$py_acc" -v sa="$sv_acc" -v e="$epochs" 'BEGIN {
  printf "ratio python / service:    %.2fx (target >= 3x)\n", py / sv
  printf "ratio python / in-process: %.2fx\n", py / ip
  printf "accuracy service - python: %+.2f points after %d epoch(s) (target: within 0.3 after 10)\n",
    100 * (sa - pa), e }'
