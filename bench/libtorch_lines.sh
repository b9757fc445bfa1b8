#!/usr/bin/env bash
# Training and in-process Predict on both LibTorch lines, with each set of hand-written CPU
# kernels (model/cnn.cc; the CMake cache variable CLASSIFIER_CPU_KERNELS: all, conv, pool,
# none), alternated in one run (1.13-all, 1.13-conv, ..., 2.6-none, 1.13-all, ...):
#
#   1.13   this machine: Debian 12's LibTorch 1.13
#   2.6    Debian 13's LibTorch 2.6 in scripts/trixie.sh's root file system, entered with
#          `trixie.sh --exec`
#
# A side runs its line's main build (BUILD_DIR, build-trixie/) when that build's kernels (its
# `auto`) are the side's, else a model-only build-kernels-SET/ or build-trixie-kernels-SET/ this
# script makes. Each run is bench's trainer_bench: one epoch of Fashion-MNIST 60k at the
# tutorial's settings on BENCH_THREADS threads (default 1), the test set's evaluation, then the
# trained model's PredictProbabilities at batch 1 and 64. The gRPC, protobuf and Abseil around a
# Predict are the same gRPC 1.51 on both lines, so the in-process figure is where they differ.
#
#   sudo bench/libtorch_lines.sh          every side, 2 rounds (BENCH_ROUNDS), 1 epoch
#                                         (BENCH_EPOCHS)
#   sudo BENCH_SIDES="2.6-all 2.6-none" bench/libtorch_lines.sh    some sides
#
# Needs root (chroot) and a prepared root: `sudo scripts/trixie.sh` once (it builds build-trixie/
# and runs the suite there). Builds the model-only folders on first use. Prints each run, then
# the medians and the ratios; see bench/README.md ("LibTorch 1.13 and 2.6").
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-2}
epochs=${BENCH_EPOCHS:-1}
read -r -a sides <<<"${BENCH_SIDES:-1.13-all 1.13-conv 1.13-pool 1.13-none 2.6-all 2.6-conv 2.6-pool 2.6-none}"
trixie=$repo_dir/scripts/trixie.sh
[[ $(id -u) -eq 0 ]] || die "needs root (the 2.6 side runs in a chroot): run it with sudo"
for side in "${sides[@]}"; do
  [[ $side =~ ^(1\.13|2\.6)-(all|conv|pool|none)$ ]] ||
    die "BENCH_SIDES: '$side' is not LINE-KERNELS (LINE 1.13 or 2.6; KERNELS all, conv, pool, none)"
done
require_files "$BUILD_DIR/bench/trainer_bench"
[[ -x $repo_dir/build-trixie/bench/trainer_bench ]] ||
  die "build-trixie/bench/trainer_bench is missing: run sudo scripts/trixie.sh first"

chosen() {  # chosen BUILD_DIR: the kernel set that build's configuration took
  sed -n 's/^CLASSIFIER_CPU_KERNELS_CHOSEN:INTERNAL=//p' "$1/CMakeCache.txt" 2>/dev/null
}
# The model-only builds: model/ and trainer_bench, the side's kernels chosen at compile time.
build_kernels() {  # build_kernels DIR SET [RUN_PREFIX...]: configures and builds DIR
  local dir=$1 set=$2
  shift 2
  "$@" cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLASSIFIER_MODEL_ONLY=ON \
    -DCLASSIFIER_BUILD_TESTS=OFF -DCLASSIFIER_CPU_KERNELS="$set" >"$bench_tmp/configure.log" 2>&1 ||
    { cat "$bench_tmp/configure.log" >&2; die "configuring $dir failed"; }
  "$@" cmake --build "$dir" --target trainer_bench >"$bench_tmp/build.log" 2>&1 ||
    { tail -30 "$bench_tmp/build.log" >&2; die "building $dir failed"; }
}
cd "$repo_dir"
declare -A side_dir
for side in "${sides[@]}"; do
  line=${side%-*} set=${side#*-}
  if [[ $line == 1.13 ]]; then main=$BUILD_DIR own=build-kernels-$set prefix=(env)
  else main=build-trixie own=build-trixie-kernels-$set prefix=("$trixie" --exec); fi
  if [[ $(chosen "$main") == "$set" ]]; then
    side_dir[$side]=$main
  else
    echo "libtorch_lines: building $own/ for $side (first run: minutes)"
    build_kernels "$own" "$set" "${prefix[@]}"
    side_dir[$side]=$own
  fi
done

run_side() {  # run_side SIDE: trainer_bench of that side, its output on stdout
  local flags=(--data_dir=/usr/share/datasets/fashion-mnist --epochs="$epochs"
    --threads="$BENCH_THREADS" --predict_seconds=2)
  local run=(env OMP_NUM_THREADS="$BENCH_THREADS" "${side_dir[$1]}/bench/trainer_bench" "${flags[@]}")
  if [[ ${1%-*} == 2.6 ]]; then "$trixie" --exec "${run[@]}"; else "${run[@]}"; fi
}
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
has() { [[ -f $bench_tmp/median.$1.4 ]]; }
echo
for side in "${sides[@]}"; do  # Each kernel set against LibTorch's own ops on its line.
  line=${side%-*}
  if [[ $side == "$line-none" ]] || ! has "$line-none"; then continue; fi
  echo "$side against $line-none: epoch time $(ratio "$line-none" "$side" 4)x," \
    "batch-1 latency $(ratio "$line-none" "$side" 12)x," \
    "batch-64 throughput $(ratio "$side" "$line-none" 16)x (> 1: the kernels win)"
done
for set in all conv pool none; do  # The same kernels on the two lines.
  if ! has "2.6-$set" || ! has "1.13-$set"; then continue; fi
  echo "2.6 / 1.13, kernels $set: epoch time $(ratio "2.6-$set" "1.13-$set" 4)x," \
    "batch-1 latency $(ratio "2.6-$set" "1.13-$set" 12)x," \
    "batch-64 throughput $(ratio "2.6-$set" "1.13-$set" 16)x"
done
