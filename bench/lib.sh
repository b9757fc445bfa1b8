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
    --device="${BENCH_DEVICE:-cpu}" --threads="$BENCH_THREADS" --http_listen= "$@" >"$log" 2>&1 &
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

# metrics_port NAME: the Prometheus port of the server start_server started as NAME (its log's
# "serving Prometheus metrics on ... (port N)" line; start it with --metrics_listen=HOST:0).
metrics_port() {
  local port
  port=$(sed -n 's/.*serving Prometheus metrics on .* (port \([0-9]*\)).*/\1/p' \
    "$bench_tmp/$1.log" | head -1)
  [[ -n $port ]] || die "$1: no metrics port in $bench_tmp/$1.log"
  echo "$port"
}

# stop_server PID: SIGTERM (a clean shutdown) and wait for it.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}

# ratio A B: prints A / B with two decimals.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'
}

# median NUMBER...: prints the median.
median() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# grpc_frame OUT: writes standard input (one serialized message) to OUT as one gRPC frame (flag
# byte 0, big-endian length, message): the body h2load sends with -d.
grpc_frame() {
  local message=$bench_tmp/frame-message.bin size
  cat >"$message"
  size=$(stat -c %s "$message")
  printf '%b' "$(printf '\\x00\\x%02x\\x%02x\\x%02x\\x%02x' $((size >> 24 & 255)) \
    $((size >> 16 & 255)) $((size >> 8 & 255)) $((size & 255)))" >"$1"
  cat "$message" >>"$1"
}

# h2load_grpc BODY CLIENTS REQUESTS URL: REQUESTS unary gRPC calls of BODY (a gRPC frame) from
# CLIENTS connections, one call in flight on each (-m 1: CLIENTS independent closed-loop
# callers); prints "REQ_PER_S MEAN_MS SUCCEEDED". h2load reads HTTP statuses only, not gRPC's:
# callers check the gRPC outcome themselves (OK counts in the server's metrics or log).
h2load_grpc() {
  local out=$bench_tmp/h2load.txt
  h2load -n "$3" -c "$2" -m 1 -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$1" "$4" >"$out" 2>&1 || { cat "$out" >&2; die "h2load failed"; }
  awk '/^finished in/ {rps = $4}
       /^requests:/ {ok = $8}
       /^time for request:/ {mean = $6; unit = mean; sub(/[a-z]+$/, "", mean); sub(/^[0-9.]+/, "", unit)
         if (unit == "us") mean /= 1000; if (unit == "s") mean *= 1000}
       END {printf "%s %.2f %s\n", rps, mean, ok}' "$out"
}

# metrics_text PORT: the server's Prometheus page at 127.0.0.1:PORT (headers included). Plain
# bash: no HTTP client.
metrics_text() {
  exec 9<>"/dev/tcp/127.0.0.1/$1" || die "no metrics endpoint on port $1"
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&9
  cat <&9
  exec 9<&-
}

# metrics_sample PORT NAME: the value of one sample (NAME with its labels, as exposed) on the
# server's Prometheus endpoint at 127.0.0.1:PORT; 0 when absent.
metrics_sample() {
  metrics_text "$1" | awk -v name="$2" '$1 == name {v = $2} END {print v + 0}'
}
