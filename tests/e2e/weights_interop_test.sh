#!/usr/bin/env bash
# Weights in and out with real PyTorch and ONNX tools, through the built binaries:
#  - the tutorial's own `torch.save(model.state_dict(), 'MulticlassCNN.pth')` file (an
#    OrderedDict with _metadata) -> `classifier-cli import` -> `evaluate` gives the accuracy
#    Python computes with the tutorial's CNN on the same test set;
#  - `export --format onnx` passes onnx.checker, and OpenCV's cv2.dnn gives the service's top-1
#    on 1,000 test images with probabilities within 1e-4;
#  - bad uploads (not a PyTorch file, a truncated one, wrong keys) are INVALID_ARGUMENT and
#    register nothing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! /usr/bin/python3 -c "import torch, onnx, cv2" 2>/dev/null; then
  bad "Debian's python3-torch, python3-onnx and python3-opencv are needed (scripts/install-deps.sh)"
  finish
fi
fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
cli train --epochs 1 --seed 4 >/dev/null
cli export --out "$work/service.pth" >/dev/null

# The tutorial's CNN, as the tutorial writes it, saved the tutorial's way; its accuracy on the
# test split, computed in Python.
python_accuracy=$(/usr/bin/python3 - "$work/service.pth" "$work/data/mnist" "$work/MulticlassCNN.pth" <<'PY'
import gzip, sys, numpy as np, torch
from torch import nn
import torch.nn.functional as F
class CNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1); self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1); self.fc1 = nn.Linear(16 * 7 * 7, num_classes)
    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x))); x = self.pool(F.relu(self.conv2(x)))
        return self.fc1(x.reshape(x.shape[0], -1))
model = CNN()
model.load_state_dict(torch.load(sys.argv[1]))
torch.save(model.state_dict(), sys.argv[3])  # An OrderedDict with _metadata, as the tutorial.
images = np.frombuffer(gzip.open(sys.argv[2] + "/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8)
labels = np.frombuffer(gzip.open(sys.argv[2] + "/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
x = torch.from_numpy(images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
with torch.no_grad():
    predicted = model(x).argmax(1).numpy()
print(f"{(predicted == labels).mean():.6f}")
PY
)
cli import "$work/MulticlassCNN.pth" >"$work/import.txt"
imported=$(sed -n 's/^imported \(model-[0-9a-f]*\) .*/\1/p' "$work/import.txt")
check "import of the tutorial's torch.save file registers a model" test -n "$imported"
cli evaluate --model "$imported" --json >"$work/evaluate.json"
service_accuracy=$(python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["accuracy"])' "$work/evaluate.json")
check "Evaluate of the imported file = Python's accuracy ($service_accuracy vs $python_accuracy)" test "$service_accuracy" = "$python_accuracy"

# ONNX: checker + OpenCV against the service's own probabilities on 1,000 test images.
cli export --format onnx --out "$work/model.onnx" >/dev/null
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 1000 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
cli predict --top_k 10 --json "${pngs[@]}" >"$work/predictions.json"
python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/predictions_to_json.py" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/predictions.json" "$work/onnx-check.json"
check "ONNX export: onnx.checker, and OpenCV's top-1 and probabilities on 1,000 images" \
  /usr/bin/python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/check_onnx.py" "$work/model.onnx" "$work/onnx-check.json"

# Bad uploads: INVALID_ARGUMENT, nothing registered.
models_before=$(cli models --json | python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read()).get("models", [])))')
echo "not a pytorch file" >"$work/garbage.pth"
head -c 20000 "$work/MulticlassCNN.pth" >"$work/truncated.pth"
/usr/bin/python3 -c "import sys, torch; d = torch.load(sys.argv[1]); d['fc2.weight'] = d.pop('fc1.weight'); torch.save(d, sys.argv[2])" "$work/service.pth" "$work/wrong-keys.pth"
for file in garbage truncated wrong-keys; do
  status=0; cli import "$work/$file.pth" >"$work/$file.txt" 2>&1 || status=$?
  check "import of a $file file: INVALID_ARGUMENT (exit $status)" bash -c "[[ $status == 1 ]] && grep -q 'error: INVALID_ARGUMENT' '$work/$file.txt'"
done
grep -q "fc1.weight\|fc2.weight" "$work/wrong-keys.txt" && ok "the wrong-keys error names the key" || bad "the wrong-keys error names no key: $(cat "$work/wrong-keys.txt")"
models_after=$(cli models --json | python3 -c 'import json,sys; print(len(json.loads(sys.stdin.read()).get("models", [])))')
check "bad uploads registered nothing ($models_before -> $models_after)" test "$models_before" = "$models_after"
stop_server
finish
