#!/usr/bin/env bash
# Training and in-process Predict on both LibTorch lines, each with and without the hand-written
# CPU kernels (model/cnn.cc, CMake option CLASSIFIER_CPU_KERNELS), alternated in one run
# (1.13 on, 1.13 off, 2.6 on, 2.6 off, 1.13 on, ...):
#
#   1.13   this machine: Debian 12's LibTorch 1.13 (BUILD_DIR's trainer_bench, kernels on, and a
#          model-only build-kernels-off/ beside it)
#   2.6    Debian 13's LibTorch 2.6 in scripts/trixie.sh's root file system (build-trixie/'s
#          trainer_bench, and build-trixie-kernels-off/), entered with `trixie.sh --exec`
#
# Each run is bench's trainer_bench: one epoch of Fashion-MNIST 60k at the tutorial's settings
# on BENCH_THREADS threads (default 1), the test set's evaluation, then the trained model's
# PredictProbabilities at batch 1 and 64. The gRPC, protobuf and Abseil around a Predict are the
# same gRPC 1.51 on both lines, so the in-process figure is where the lines differ.
#
#   sudo bench/libtorch_lines.sh          2 rounds (BENCH_ROUNDS), 1 epoch (BENCH_EPOCHS)
#
# Needs root (chroot) and a prepared root: `sudo scripts/trixie.sh` once (it builds build-trixie/
# and runs the suite there). Builds the two kernels-off folders on first use. Prints each run,
# then the medians and the ratios; see bench/README.md ("LibTorch 1.13 and 2.6").
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-2}
epochs=${BENCH_EPOCHS:-1}
trixie=$repo_dir/scripts/trixie.sh
[[ $(id -u) -eq 0 ]] || die "needs root (the 2.6 side runs in a chroot): run it with sudo"
require_files "$BUILD_DIR/bench/trainer_bench"
[[ -x $repo_dir/build-trixie/bench/trainer_bench ]] ||
  die "build-trixie/bench/trainer_bench is missing: run sudo scripts/trixie.sh first"

# The kernels-off builds: model/ and trainer_bench only, the kernels left out at compile time.
off_flags=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCLASSIFIER_MODEL_ONLY=ON
  -DCLASSIFIER_BUILD_TESTS=OFF -DCLASSIFIER_CPU_KERNELS=OFF)
build_off() {  # build_off DIR [RUN_PREFIX...]: configures and builds DIR there
  local dir=$1
  shift
  "$@" cmake -S . -B "$dir" "${off_flags[@]}" >"$bench_tmp/configure.log" 2>&1 ||
    { cat "$bench_tmp/configure.log" >&2; die "configuring $dir failed"; }
  "$@" cmake --build "$dir" --target trainer_bench >"$bench_tmp/build.log" 2>&1 ||
    { tail -30 "$bench_tmp/build.log" >&2; die "building $dir failed"; }
}
echo "libtorch_lines: building the kernels-off trainer_bench on both lines (first run: minutes)"
cd "$repo_dir"
build_off build-kernels-off env
build_off build-trixie-kernels-off "$trixie" --exec

run_side() {  # run_side SIDE: trainer_bench of that side, its output on stdout
  local flags=(--data_dir=/usr/share/datasets/fashion-mnist --epochs="$epochs"
    --threads="$BENCH_THREADS" --predict_seconds=2)
  local env=(env OMP_NUM_THREADS="$BENCH_THREADS")
  case $1 in
    1.13-on) "${env[@]}" "$BUILD_DIR/bench/trainer_bench" "${flags[@]}" ;;
    1.13-off) "${env[@]}" build-kernels-off/bench/trainer_bench "${flags[@]}" ;;
    2.6-on) "$trixie" --exec "${env[@]}" build-trixie/bench/trainer_bench "${flags[@]}" ;;
    2.6-off) "$trixie" --exec "${env[@]}" build-trixie-kernels-off/bench/trainer_bench "${flags[@]}" ;;
  esac
}
sides=(1.13-on 1.13-off 2.6-on 2.6-off)
for ((round = 1; round <= rounds; round++)); do
  for side in "${sides[@]}"; do
    log=$bench_tmp/$side.$round.log
    run_side "$side" >"$log" 2>&1 || { cat "$log" >&2; die "$side failed"; }
    # Seconds per epoch (mean of the run's epochs), accuracy, predict at batch 1 and 64.
    awk -v side="$side" -v round="$round" '
      / img\/s loss / { sub(/s$/, "", $3); sum += $3; n++ }
      /^test accuracy/ { acc = $3 }
      /^predict batch 1:/ { p1 = $6 }
      /^predict batch 64:/ { p64 = $4 }
      END { printf "%-9s round %d: %.3f s/epoch, test accuracy %.4f, predict batch 1 %s us, batch 64 %s img/s\n",
            side, round, sum / n, acc, p1, p64 }' "$log" | tee -a "$bench_tmp/runs"
  done
done

echo
echo "medians over $rounds rounds (threads $BENCH_THREADS):"
for side in "${sides[@]}"; do
  for column in 4 12 16; do  # s/epoch, batch-1 us, batch-64 img/s
    awk -v side="$side" -v c="$column" '$1 == side { gsub(/,/, "", $c); print $c }' \
      "$bench_tmp/runs" | sort -g | awk '{ v[NR] = $1 } END {
        print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }' \
      >"$bench_tmp/median.$side.$column"
  done
  printf '%-9s %.3f s/epoch  predict batch 1 %.1f us  batch 64 %.0f img/s\n' "$side" \
    "$(cat "$bench_tmp/median.$side.4")" "$(cat "$bench_tmp/median.$side.12")" \
    "$(cat "$bench_tmp/median.$side.16")"
done
ratio() {  # ratio SIDE_A SIDE_B COLUMN: A's median over B's
  awk -v a="$(cat "$bench_tmp/median.$1.$3")" -v b="$(cat "$bench_tmp/median.$2.$3")" \
    'BEGIN { printf "%.2f", a / b }'
}
echo
for line in 1.13 2.6; do
  echo "$line: kernels off / on: epoch time $(ratio "$line-off" "$line-on" 4)x," \
    "batch-1 latency $(ratio "$line-off" "$line-on" 12)x," \
    "batch-64 throughput $(ratio "$line-on" "$line-off" 16)x in favour of the kernels (> 1: they win)"
done
echo "2.6 / 1.13, kernels on: epoch time $(ratio 2.6-on 1.13-on 4)x," \
  "batch-1 latency $(ratio 2.6-on 1.13-on 12)x, batch-64 throughput $(ratio 2.6-on 1.13-on 16)x"
echo "2.6 / 1.13, kernels off: epoch time $(ratio 2.6-off 1.13-off 4)x," \
  "batch-1 latency $(ratio 2.6-off 1.13-off 12)x, batch-64 throughput $(ratio 2.6-off 1.13-off 16)x"
