#!/usr/bin/env bash
# Predict against the alternative a user would write: the tutorial's CNN behind a Python
# grpcio server (../shared/bench/python_predict_server/server.py). The same load generator
# (h2load, raw gRPC frames over HTTP/2) hits both servers with the same pixels as float
# values (about 3 KB per image), alternating Python / service, at the same compute threads
# (OMP_NUM_THREADS=BENCH_THREADS for Python, --threads for the service).
#
#   bench/python_predict_bench.sh            2 rounds
#   BENCH_ROUNDS=1 bench/python_predict_bench.sh
#
# Needs Debian's python3-grpcio, python3-torch, nghttp2-client (h2load), protobuf-compiler and
# protobuf-compiler-grpc; without them it says what is missing and exits 0 (skipped).
# h2load counts HTTP statuses only: one request per server and size is checked for its gRPC
# status and answer count first, and the service's log counts its OK Predict calls.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

rounds=${BENCH_ROUNDS:-2}
anchor_dir=${PYTHON_PREDICT_SERVER:-$repo_dir/../shared/bench/python_predict_server}
require_files "$server_bin" "$cli_bin" "$anchor_dir/server.py"
missing=()
"$PYTHON" -c 'import grpc, torch' 2>/dev/null || missing+=(python3-grpcio python3-torch)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v grpc_python_plugin >/dev/null || missing+=(protobuf-compiler-grpc)
if ((${#missing[@]})); then
  echo "python_predict_bench: skipped, missing Debian packages: ${missing[*]}"
  exit 0
fi

py=$bench_tmp/py
mkdir -p "$py"
protoc -I "$anchor_dir" --python_out="$py" --grpc_out="$py" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" predict.proto
protoc -I "$repo_dir/proto" --python_out="$py" classifier/v1/classifier.proto
export PYTHONPATH=$py

# The Python server, on a port the kernel just said was free.
anchor_port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PYTHON" "$anchor_dir/server.py" "127.0.0.1:$anchor_port" >"$bench_tmp/anchor.log" 2>&1 &
bench_pids+=($!)

# The service, serving the tutorial's CNN as torch.save wrote it.
# --log_level=debug: its OK Predict lines are how the calls are counted (see ok_calls).
start_server compare --log_level=debug
cli=("$cli_bin" --server "127.0.0.1:$server_port")
"$PYTHON" - "$bench_tmp/cnn.pth" <<'PY'
import sys, torch, torch.nn as nn
torch.manual_seed(0)
class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1); self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(784, 10)
torch.save(CNN().state_dict(), sys.argv[1])
PY
model_id=$("${cli[@]}" import "$bench_tmp/cnn.pth" --dataset fashion-mnist --json |
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["model"]["model_id"])')
"${cli[@]}" deploy "$model_id" >/dev/null

# One gRPC frame (flag byte, big-endian length, message) per request size, the same pixels
# for both (mkreq.py's: random.seed(0), 784 uniform floats per image); then one call of each
# through grpcio, checked.
"$PYTHON" - "$bench_tmp" "$model_id" "$anchor_port" "$server_port" <<'PY'
import random, struct, sys, grpc, predict_pb2
from classifier.v1 import classifier_pb2
out, model_id, anchor_port, service_port = sys.argv[1:]
for n in (1, 64):
    random.seed(0)
    images = [[random.random() for _ in range(784)] for _ in range(n)]
    anchor = predict_pb2.PredictRequest(images=[predict_pb2.Image(pixels=p) for p in images])
    service = classifier_pb2.PredictRequest(model_id=model_id, images=[
        classifier_pb2.Image(float_pixels=classifier_pb2.FloatPixels(values=p)) for p in images])
    for name, message, port, path, reply in (
            ("anchor", anchor, anchor_port, "/anchor.Predictor/Predict", predict_pb2.PredictResponse),
            ("service", service, service_port, "/classifier.v1.Classifier/Predict",
             classifier_pb2.PredictResponse)):
        body = message.SerializeToString()
        with open(f"{out}/{name}-{n}.bin", "wb") as f:
            f.write(b"\x00" + struct.pack(">I", len(body)) + body)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            answer = reply.FromString(channel.unary_unary(path)(body, timeout=30))
        assert len(answer.predictions) == n, (name, n, len(answer.predictions))
PY

ok_calls() { grep -c 'rpc Predict .*: OK' "$bench_tmp/compare.log" || true; }

echo "== Predict vs the Python grpcio server (tutorial CNN, OMP_NUM_THREADS=$BENCH_THREADS; service" \
  "--threads $BENCH_THREADS), h2load, float pixels, $rounds round(s) alternating"
printf '%-22s %22s %22s %9s\n' "images x callers" "python req/s (mean)" "service req/s (mean)" \
  "svc/py"
for config in "1 1 2000" "1 64 3000" "64 1 300" "64 8 400"; do
  read -r images clients requests <<<"$config"
  py_rps=() sv_rps=() py_ms=() sv_ms=()
  for ((round = 1; round <= rounds; ++round)); do
    read -r rps ms ok < <(h2load_grpc "$bench_tmp/anchor-$images.bin" "$clients" "$requests" \
      "http://127.0.0.1:$anchor_port/anchor.Predictor/Predict")
    [[ $ok == "$requests" ]] || die "python server: $ok of $requests requests succeeded"
    py_rps+=("$rps") py_ms+=("$ms")
    before=$(ok_calls)
    read -r rps ms ok < <(h2load_grpc "$bench_tmp/service-$images.bin" "$clients" "$requests" \
      "http://127.0.0.1:$server_port/classifier.v1.Classifier/Predict")
    (($(ok_calls) - before == requests)) || die "service: only $(($(ok_calls) - before)) OK calls"
    sv_rps+=("$rps") sv_ms+=("$ms")
  done
  p=$(median "${py_rps[@]}") s=$(median "${sv_rps[@]}")
  printf '%-22s %12.0f (%5.2f ms) %12.0f (%5.2f ms) %8.2fx\n' "$images x $clients" "$p" \
    "$(median "${py_ms[@]}")" "$s" "$(median "${sv_ms[@]}")" "$(ratio "$s" "$p")"
done
echo "(images/s = req/s x images; mean = h2load's mean time per request)"
