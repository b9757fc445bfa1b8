#!/usr/bin/env bash
# Training speed: the service's epoch time for the tutorial's configuration (Fashion-MNIST 60k,
# batch 60, Adam 1e-3) against the tutorial's own Python loop (../shared/bench/seed_train.py),
# at the same thread count, alternating in one run (Python, service, in-process, Python, ...).
#
#   bench/train_bench.sh          quick: 1 epoch each, 2 rounds (BENCH_EPOCHS, BENCH_ROUNDS)
#   bench/train_bench.sh --full   10 epochs each, 1 round: also test accuracy after 10 epochs
#   BENCH_SEEDS="0 1 2" bench/train_bench.sh --full
#                                 every side once per seed and round (Python's torch.manual_seed
#                                 and the service's --seed): accuracy mean and spread per side
#   BENCH_INPROCESS=0             skips the in-process side (halves a seeds run's time)
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
read -r -a seeds <<<"${BENCH_SEEDS:-0}"
inprocess=${BENCH_INPROCESS:-1}
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
# seed_train.py seeds torch with 0; this runs it unchanged with torch.manual_seed(0) turned
# into torch.manual_seed(SEED) (its only source of randomness: weights and shuffling).
seeded_python=$bench_tmp/seeded_train.py
cat >"$seeded_python" <<'PY'
import runpy, sys, torch
seed, script = int(sys.argv[1]), sys.argv[2]
manual_seed = torch.manual_seed
torch.manual_seed = lambda _ignored: manual_seed(seed)
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
PY

# run_* TAG SEED
run_python() {
  local out=$bench_tmp/python-$1.log
  "$PYTHON" "$seeded_python" "$2" "$SEED_TRAIN" "$bench_tmp/py" fashion "$epochs" >"$out" 2>&1 ||
    { cat "$out" >&2; die "seed_train.py failed"; }
  grep -q "threads $BENCH_THREADS\$" "$out" || die "seed_train.py did not run on $BENCH_THREADS threads: $(tail -1 "$out")"
  awk '/^epoch / {sub(/s$/, "", $3); s += $3; n++}
       /^eval / {acc = $4}
       END {printf "%.3f %.4f\n", s / n, acc}' "$out"
}

run_service() {
  local out=$bench_tmp/service-$1.jsonl
  "${cli[@]}" train --dataset fashion-mnist --epochs "$epochs" --batch_size 60 \
    --learning_rate 0.001 --seed "$2" --json >"$out" || { cat "$out" >&2; die "service training failed"; }
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
    --seed="$2" >"$out" 2>&1 || { cat "$out" >&2; die "trainer_bench failed"; }
  awk '/^epoch / {sub(/s$/, "", $3); s += $3; n++}
       /^test accuracy / {acc = $3}
       END {printf "%.3f %.4f\n", s / n, acc}' "$out"
}

echo "== training: Fashion-MNIST 60k, batch 60, Adam 1e-3, $BENCH_THREADS thread(s)," \
  "$epochs epoch(s) per run, $rounds round(s) x seed(s) ${seeds[*]}, alternating python /" \
  "service$( ((inprocess)) && echo ' / in-process')"
py_s=() sv_s=() ip_s=() py_a=() sv_a=() ip_a=()
for ((round = 1; round <= rounds; ++round)); do
  for seed in "${seeds[@]}"; do
    tag=$round-$seed
    read -r s a < <(run_python "$tag" "$seed")
    py_s+=("$s") py_a+=("$a")
    printf 'round %d seed %s  python      %7.2f s/epoch  test accuracy %s\n' "$round" "$seed" "$s" "$a"
    read -r s a < <(run_service "$tag" "$seed")
    sv_s+=("$s") sv_a+=("$a")
    printf 'round %d seed %s  service     %7.2f s/epoch  test accuracy %s\n' "$round" "$seed" "$s" "$a"
    if ((inprocess)); then
      read -r s a < <(run_inprocess "$tag" "$seed")
      ip_s+=("$s") ip_a+=("$a")
      printf 'round %d seed %s  in-process  %7.2f s/epoch  test accuracy %s\n' "$round" "$seed" "$s" "$a"
    fi
  done
done

# stats NUMBER...: "mean sample-standard-deviation min max" of the numbers, in percent points.
stats() {
  printf '%s\n' "$@" | awk '{v[NR] = 100 * $1; s += v[NR]} END {
    m = s / NR; for (i = 1; i <= NR; ++i) { d += (v[i] - m) ^ 2; if (i == 1 || v[i] < lo) lo = v[i]
      if (i == 1 || v[i] > hi) hi = v[i] }
    printf "%.2f %.2f %.2f %.2f\n", m, (NR > 1 ? sqrt(d / (NR - 1)) : 0), lo, hi }'
}
runs=${#py_s[@]}
py=$(median "${py_s[@]}")
sv=$(median "${sv_s[@]}")
echo "-- medians over $runs run(s) per side, seconds per epoch; test accuracy (%) after $epochs" \
  "epoch(s): mean, standard deviation, min, max over the runs"
line() { # NAME SECONDS ACCURACY...
  local name=$1 sec=$2
  shift 2
  read -r mean sd lo hi < <(stats "$@")
  printf '%-24s %7.2f s/epoch  %8.0f img/s  accuracy %s +- %s (%s..%s)\n' "$name" "$sec" \
    "$(awk -v s="$sec" 'BEGIN {print 60000 / s}')" "$mean" "$sd" "$lo" "$hi"
}
line "python seed_train.py" "$py" "${py_a[@]}"
line "service (gRPC job)" "$sv" "${sv_a[@]}"
if ((inprocess)); then
  ip=$(median "${ip_s[@]}")
  line "in-process Trainer" "$ip" "${ip_a[@]}"
fi
# Per-run ratios (python / service in the same round and seed), then the ratio of medians.
ratios=()
for ((i = 0; i < runs; ++i)); do ratios+=("$(awk -v p="${py_s[i]}" -v s="${sv_s[i]}" 'BEGIN {printf "%.2f", p / s}')"); done
echo "ratio python / service per run: ${ratios[*]}"
read -r pm _ < <(stats "${py_a[@]}")
read -r sm _ < <(stats "${sv_a[@]}")
awk -v py="$py" -v sv="$sv" -v ip="${ip:-0}" -v pm="$pm" -v sm="$sm" -v e="$epochs" 'BEGIN {
  printf "ratio python / service:    %.2fx (medians; target >= 3x)\n", py / sv
  if (ip > 0) printf "ratio python / in-process: %.2fx\n", py / ip
  printf "accuracy service - python: %+.2f points (means) after %d epoch(s) (target: within 0.3 after 10)\n",
    sm - pm, e }'
