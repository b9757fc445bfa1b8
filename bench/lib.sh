# shellcheck shell=bash disable=SC2034  # (variables for the scripts that source this)
# Sourced by the bench/*.sh scripts: paths, one temporary folder, and servers started on a free
# loopback port and stopped when the script exits. Not a script of its own.
#
# Environment (all optional):
#   BUILD_DIR      the CMake build folder holding the binaries (default: <repo>/build)
#   BENCH_THREADS  LibTorch compute threads of every side of a comparison (default 1; also
#                  OMP_NUM_THREADS, so Python's torch gets the same)
#   FASHION_DIR    Fashion-MNIST's four .gz files (default: Debian's dataset-fashion-mnist)
#   SEED_TRAIN     the tutorial's Python loop (default: <repo>/../shared/bench/seed_train.py)

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$bench_dir")
BUILD_DIR=${BUILD_DIR:-$repo_dir/build}
BENCH_THREADS=${BENCH_THREADS:-1}
FASHION_DIR=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
SEED_TRAIN=${SEED_TRAIN:-$repo_dir/../shared/bench/seed_train.py}
# Debian's interpreter: it has python3-torch; another python3 may come first on the PATH.
PYTHON=/usr/bin/python3
export OMP_NUM_THREADS=$BENCH_THREADS

server_bin=$BUILD_DIR/server/classifier-server
cli_bin=$BUILD_DIR/client/classifier-cli

bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/classifier-bench.XXXXXX")
bench_pids=()

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT

die() {
  echo "$(basename "$0"): error: $*" >&2
  exit 1
}

# require_files FILE...: each must exist, else say how to build it.
require_files() {
  local f
  for f in "$@"; do
    [[ -e $f ]] || die "$f is missing: cmake -S $repo_dir -B $BUILD_DIR -G Ninja \
-DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD_DIR --target classifier-server \
classifier-cli trainer_bench predict_bench (or set BUILD_DIR)"
  done
}

# fashion_for_python DIR: DIR/FashionMNIST/raw/*-ubyte, uncompressed, as torchvision reads them.
fashion_for_python() {
  local raw=$1/FashionMNIST/raw f
  mkdir -p "$raw"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
    t10k-labels-idx1-ubyte; do
    [[ -e $raw/$f ]] || gunzip -c "$FASHION_DIR/$f.gz" >"$raw/$f"
  done
}

# start_server NAME [FLAG...]: starts classifier-server on 127.0.0.1:0 with its own state and
# data folders under the temporary folder (Fashion-MNIST from FASHION_DIR) and the compute
# threads of BENCH_THREADS, waits for its "listening on ... (port N)" line and sets
# server_pid and server_port. SERVER_WRAPPER (e.g. "/usr/bin/time -v -o FILE") runs it under
# another program; server_pid is then the server's own process.
start_server() {
  local name=$1
  shift
  local log=$bench_tmp/$name.log
  mkdir -p "$bench_tmp/$name-data" "$bench_tmp/$name-state"
  : >"$log"  # Exists before the server (or its wrapper) opens it.
  # shellcheck disable=SC2086  # SERVER_WRAPPER is a command line.
  ${SERVER_WRAPPER:-} "$server_bin" --listen=127.0.0.1:0 --data_dir="$bench_tmp/$name-data" \
    --fashion_fallback_dir="$FASHION_DIR" --state_dir="$bench_tmp/$name-state" \
    --device="${BENCH_DEVICE:-cpu}" --threads="$BENCH_THREADS" "$@" >"$log" 2>&1 &
  local launched=$!
  bench_pids+=("$launched")
  local i line=
  for ((i = 0; i < 600; ++i)); do
    line=$(grep -m1 -E 'listening on .* \(port [0-9]+\)' "$log" || true)
    [[ -n $line ]] && break
    kill -0 "$launched" 2>/dev/null || { cat "$log" >&2; die "$name: the server exited"; }
    sleep 0.1
  done
  [[ -n $line ]] || die "$name: no 'listening on' line in $log after 60 s"
  server_port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' <<<"$line")
  server_pid=$launched
  if [[ -n ${SERVER_WRAPPER:-} ]]; then
    server_pid=$(pgrep -P "$launched" | head -1)
  fi
  [[ -n $server_port && -n $server_pid ]] || die "$name: cannot parse '$line'"
}

# stop_server PID: SIGTERM (a clean shutdown) and wait for it.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

# median NUMBER...: prints the median.
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
