#!/usr/bin/env bash
# Every benchmark in one go, after building what they need (Release) in BUILD_DIR:
# training (train_bench.sh), Predict (predict_bench.sh), Predict vs the Python server
# (python_predict_bench.sh), memory (memory_bench.sh) and the training profile
# (profile_train.sh). Prints the machine first; each part prints its figures and ratios.
#
#   bench/run_all.sh           quick modes: about 8 minutes on 2 cores
#   bench/run_all.sh --full    10-epoch training comparison (with accuracy) and full Predict
#                              rounds: about 12 minutes on 2 cores
#
# BUILD_DIR (default <repo>/build), BENCH_THREADS (default 1) and the rest as in lib.sh;
# BENCH_SKIP_BUILD=1 uses the binaries as they are.
set -euo pipefail
bench_dir=$(cd "$(dirname "$0")" && pwd)
repo_dir=$(dirname "$bench_dir")
export BUILD_DIR=${BUILD_DIR:-$repo_dir/build}

full=false
case ${1:-} in
  --full) full=true ;;
  "") ;;
  *) echo "usage: $0 [--full]" >&2; exit 2 ;;
esac

if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S "$repo_dir" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
  [[ $build_type == Release ]] ||
    echo "run_all: warning: $BUILD_DIR is a '$build_type' build; figures are for Release" >&2
  cmake --build "$BUILD_DIR" -j2 --target classifier-server classifier-cli trainer_bench \
    predict_bench >/dev/null
fi

echo "== machine: $(getconf _NPROCESSORS_ONLN) cores," \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
  "$(. /etc/os-release && echo "$PRETTY_NAME"), LibTorch" \
  "$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?'), load average" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "== commit $(git -C "$repo_dir" rev-parse --short HEAD 2>/dev/null || echo '?')" \
  "$(git -C "$repo_dir" status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ), BENCH_THREADS=${BENCH_THREADS:-1}"
echo

if $full; then
  "$bench_dir/train_bench.sh" --full
  echo
  "$bench_dir/predict_bench.sh"
else
  "$bench_dir/train_bench.sh"
  echo
  "$bench_dir/predict_bench.sh" --quick
fi
echo
"$bench_dir/python_predict_bench.sh"
echo
"$bench_dir/memory_bench.sh"
echo
"$bench_dir/profile_train.sh"
