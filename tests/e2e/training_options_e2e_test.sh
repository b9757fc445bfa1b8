#!/usr/bin/env bash
# End to end through the built binaries: a wider network with a hidden layer and dropout
# (stored with its model, exported to PyTorch and ONNX files that Python's torch and OpenCV run
# with the service's own probabilities), fine-tuning with frozen convolutions and its shape
# check, and a 2 x 2 grid search followed in one stream.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_mnist "$work/data"
start_server "$work/data" "$work/state"

# A wider network: conv [16, 32], kernel 5, hidden 32, dropout 0.2.
cli train --epochs 1 --seed 1 --conv_channels 16,32 --kernel_size 5 --hidden_units 32 \
  --dropout 0.2 >"$work/wide.txt" 2>&1 || true
wide=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/wide.txt")
check "train --conv_channels 16,32 --kernel_size 5 --hidden_units 32 --dropout 0.2 succeeds" test -n "$wide"
cli models --json >"$work/models.json"
check "models --json shows the model's architecture" python3 - "$work/models.json" "$wide" <<'PY'
import json, sys
models = {m["model_id"]: m for m in json.load(open(sys.argv[1]))["models"]}
a = models[sys.argv[2]]["architecture"]
assert a["conv_channels"] == [16, 32] and a["kernel_size"] == 5 and a["hidden_units"] == 32, a
assert a["num_classes"] == 10, a
PY

# Its files in other tools: the state dict in a PyTorch module of that shape, ONNX in OpenCV.
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 200 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
cli predict --model "$wide" --top_k 10 --json "${pngs[@]}" >"$work/predictions.json"
python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/predictions_to_json.py" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/predictions.json" "$work/probes.json"
cli export --model "$wide" --out "$work/wide.pth" >/dev/null
check "the state dict runs in PyTorch with the service's probabilities (conv1..2, fc1, fc2)" /usr/bin/python3 - "$work/wide.pth" "$work/probes.json" <<'PY'
import json, sys
import torch
import torch.nn.functional as F
from torch import nn

state = torch.load(sys.argv[1], map_location="cpu")
assert sorted(state) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias",
                         "fc1.weight", "fc2.bias", "fc2.weight"], sorted(state)

class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 32)
        self.fc2 = nn.Linear(32, 10)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.reshape(x.shape[0], -1))))

model = Wide()
model.load_state_dict(state)
model.eval()
probes = json.load(open(sys.argv[2]))
x = torch.tensor(probes["images"]).reshape(-1, 1, 28, 28)
with torch.no_grad():
    p = F.softmax(model(x), dim=1)
diff = (p - torch.tensor(probes["probabilities"])).abs().max().item()
print(f"max abs probability difference {diff:.2e} over {len(x)} images")
sys.exit(0 if diff < 1e-5 else 1)
PY
cli export --model "$wide" --format onnx --out "$work/wide.onnx" >/dev/null
check "the ONNX export passes onnx.checker and OpenCV gives the same probabilities" \
  /usr/bin/python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/check_onnx.py" "$work/wide.onnx" "$work/probes.json"
cli import "$work/wide.pth" >"$work/import.txt"
imported=$(sed -n 's/^imported \(model-[0-9a-f]*\) .*/\1/p' "$work/import.txt")
cli predict --model "$imported" --top_k 10 --json "${pngs[@]}" >"$work/reimported.json"
check "the re-imported file predicts what the original does" python3 - "$work/predictions.json" "$work/reimported.json" <<'PY'
import json, sys
a, b = (json.load(open(p))["predictions"] for p in sys.argv[1:])
assert len(a) == len(b) == 200
for x, y in zip(a, b):
    px = {e["label"]: e["probability"] for e in x["top_k"]}
    py = {e["label"]: e["probability"] for e in y["top_k"]}
    assert all(abs(px[k] - py[k]) < 1e-6 for k in px), (px, py)
PY

# Fine-tuning: the tutorial's shape from a model of another shape is refused, naming both.
status=0
cli train --epochs 1 --init_from_model "$wide" >"$work/mismatch.txt" 2>&1 || status=$?
check "init_from_model of another shape: FAILED_PRECONDITION naming both (exit $status)" \
  bash -c "[[ $status -ne 0 ]] && grep -q 'FAILED_PRECONDITION' '$work/mismatch.txt' && grep -q 'conv \[16, 32\] kernel 5' '$work/mismatch.txt'"
cli train --epochs 1 --seed 2 --conv_channels 16,32 --kernel_size 5 --hidden_units 32 \
  --init_from_model "$wide" --freeze_convolutions >"$work/tuned.txt" 2>&1 || true
tuned=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/tuned.txt")
check "fine-tuning with --freeze_convolutions succeeds" test -n "$tuned"
cli export --model "$tuned" --out "$work/tuned.pth" >/dev/null
check "frozen convolutions are the starting model's, bit for bit; fc1 and fc2 trained" /usr/bin/python3 - "$work/wide.pth" "$work/tuned.pth" <<'PY'
import sys
import torch
a, b = (torch.load(p, map_location="cpu") for p in sys.argv[1:])
for key in a:
    same = torch.equal(a[key], b[key])
    assert same == key.startswith("conv"), (key, same)
PY

# The issue's example: a model trained on MNIST, fine-tuned on a small registered digit set
# (800 images it never saw), starts far below a from-scratch run on that set.
cli train --epochs 2 --seed 4 >"$work/base.txt" 2>&1 || true
base=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/base.txt")
python3 - "$work/data/mnist" "$work/data/sets/small-digits" <<'PY'
import gzip, os, sys
src, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
def cut(name, count, header, skip_from_end, out):
    raw = gzip.open(os.path.join(src, name + ".gz")).read()
    total = int.from_bytes(raw[4:8], "big")
    item = (len(raw) - header) // total
    first = total - skip_from_end
    body = raw[header + first * item:header + (first + count) * item]
    open(os.path.join(dst, out), "wb").write(raw[:4] + count.to_bytes(4, "big") + raw[8:header] + body)
# Images the base model never saw (it trained on the training split): the test split's last
# 800, 600 to train on and 200 to test.
cut("t10k-images-idx3-ubyte", 600, 16, 600, "train-images-idx3-ubyte")
cut("t10k-labels-idx1-ubyte", 600, 8, 600, "train-labels-idx1-ubyte")
cut("t10k-images-idx3-ubyte", 200, 16, 800, "t10k-images-idx3-ubyte")
cut("t10k-labels-idx1-ubyte", 200, 8, 800, "t10k-labels-idx1-ubyte")
PY
cli register-dataset small-digits sets/small-digits >"$work/register.txt" 2>&1 || true
check "register-dataset takes the 600 + 200 image set" grep -q "small-digits" "$work/register.txt"
cli train --dataset small-digits --epochs 1 --batch_size 20 --seed 5 --json >"$work/scratch.json" 2>&1 || true
cli train --dataset small-digits --epochs 1 --batch_size 20 --seed 5 --init_from_model "$base" \
  --freeze_convolutions --json >"$work/finetune.json" 2>&1 || true
check "fine-tuned from the MNIST model: epoch 1's loss is under half a from-scratch run's" python3 - "$work/scratch.json" "$work/finetune.json" <<'PY'
import json, sys
def first_loss_and_accuracy(path):
    events = [json.loads(l) for l in open(path) if l.strip()]
    assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
    return events[[i for i, e in enumerate(events) if "epoch_end" in e][0]]["epoch_end"]["train_loss"], events[-1]["finished"]["test_metrics"]["accuracy"]
(scratch, scratch_accuracy), (tuned, tuned_accuracy) = map(first_loss_and_accuracy, sys.argv[1:])
print(f"epoch 1 train loss: from scratch {scratch:.3f}, fine-tuned {tuned:.3f}; test accuracy {scratch_accuracy:.3f} vs {tuned_accuracy:.3f}")
assert tuned < 0.5 * scratch and tuned_accuracy > scratch_accuracy
PY

# Grid search: learning rate x batch size, one stream, the best trial named.
cli train --epochs 1 --seed 3 --validation_fraction 0.1 --sweep_learning_rates 0.003,0.00001 \
  --sweep_batch_sizes 60,120 >"$work/sweep.txt" 2>&1 || true
check "the sweep announces and finishes 4 trials" bash -c "[[ \$(grep -c '^trial [1-4]/4:' '$work/sweep.txt') == 4 && \$(grep -c '^trial [1-4] done:' '$work/sweep.txt') == 4 ]]"
check "the sweep ends naming its best trial" grep -qE "succeeded: model model-[0-9a-f]+, .*best of 4 trials: trial [1-4]" "$work/sweep.txt"
cli train --epochs 1 --validation_fraction 0.1 --sweep_learning_rates 1,2,3,4,5,6,7,8,9 \
  --sweep_batch_sizes 10,20 >"$work/too_many.txt" 2>&1 || true
check "18 trials are RESOURCE_EXHAUSTED" grep -q "RESOURCE_EXHAUSTED.*at most 16" "$work/too_many.txt"

stop_server >/dev/null
finish
