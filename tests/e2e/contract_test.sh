#!/usr/bin/env bash
# The running server against ../shared/design/API.md, checked by the independent contract
# checker (buf curl, by reflection alone), plus the README's grpcurl-style examples.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
check "buf installs from npm" ensure_buf

if [[ -x $shared_dir/tools/contract-check ]]; then
  check "contract-check holds" "$shared_dir/tools/contract-check" "$server_addr"
else
  echo "skip contract-check: $shared_dir/tools/contract-check is not here"
fi

# The README's examples, verbatim in substance.
"$buf" curl --protocol grpc --http2-prior-knowledge --list-methods "http://$server_addr" >"$work/list.txt"
check "list shows Predict and Health/Check" bash -c "grep -qx classifier.v1.Classifier/Predict '$work/list.txt' && grep -qx grpc.health.v1.Health/Check '$work/list.txt'"
bufcurl grpc.health.v1.Health/Check '{"service":"classifier.v1.Classifier"}' >"$work/health.json"
check "health of the service: SERVING" grep -q '"SERVING"' "$work/health.json"
bufcurl classifier.v1.Classifier/Train '{"dataset":"mnist","epochs":1,"seed":3}' >"$work/train.json"
check "Train with a JSON body streams to a final model" grep -q '"modelId"' "$work/train.json"
image=$(python3 -c 'print("[" + ",".join(["0"] * 300 + ["1"] * 184 + ["0"] * 300) + "]")')
bufcurl classifier.v1.Classifier/Predict "{\"images\":[{\"floatPixels\":{\"values\":$image}}],\"topK\":3}" >"$work/predict.json"
check "Predict with a JSON float image answers a label and top 3" python3 - "$work/predict.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p = r["predictions"][0]
assert 0 <= p["label"] <= 9 and len(p["topK"]) == 3, r
PY
status=0; bufcurl classifier.v1.Classifier/Predict '{"images":[{"floatPixels":{"values":[0.5]}}]}' >"$work/bad.json" 2>&1 || status=$?
check "Predict with 1 value: invalid_argument naming the field" grep -q 'float_pixels: 1 values, want 784' "$work/bad.json"
stop_server
finish
