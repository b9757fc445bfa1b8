#!/usr/bin/env bash
# The README's first command: the main job, end to end, on a fresh Debian 12 machine.
#
#   scripts/demo.sh
#
# Installs the dependencies (Debian packages), builds, puts MNIST into ./data, starts
# classifier-server on 127.0.0.1:50051 (state in ./state), trains the tutorial's CNN with the
# tutorial's settings (batch 60, Adam 1e-3, 10 epochs) while the CLI draws one progress line
# per epoch, evaluates it on the test set, predicts a few test digits saved as PNG files,
# exports the weights as state/MulticlassCNN.pth (loadable with torch.load), then stops the
# server with SIGTERM. While it trains, the web dashboard shows the job's curves at
# http://127.0.0.1:8080/. Environment: CLASSIFIER_PORT (50051), CLASSIFIER_EPOCHS (10),
# CLASSIFIER_DATA_DIR (data), CLASSIFIER_STATE_DIR (state), CLASSIFIER_MNIST_SOURCE (a folder
# with the four MNIST files to copy instead of fetching).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${CLASSIFIER_PORT:-50051}
epochs=${CLASSIFIER_EPOCHS:-10}
data_dir=${CLASSIFIER_DATA_DIR:-data}
state_dir=${CLASSIFIER_STATE_DIR:-state}
step() { printf '\n== %s\n' "$*"; }

step "dependencies (Debian packages)"
scripts/install-deps.sh
step "build"
scripts/build.sh
step "data: MNIST into $data_dir/mnist"
# The shared copy beside this checkout (real MNIST: the official test set and 10,000 training
# images) when there is one and no other source was named.
if [[ -z ${CLASSIFIER_MNIST_SOURCE:-} && -f ../shared/data/mnist/train-images-idx3-ubyte.gz ]]; then
  export CLASSIFIER_MNIST_SOURCE=../shared/data/mnist
fi
scripts/fetch-data.sh "$data_dir"

server=build/server/classifier-server
cli=(build/client/classifier-cli --server "127.0.0.1:$port")
mkdir -p "$state_dir"
step "server: $server on 127.0.0.1:$port (log: $state_dir/server.log)"
"$server" --listen "127.0.0.1:$port" --data_dir "$data_dir" --state_dir "$state_dir" \
  >"$state_dir/server.log" 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "${cli[@]}" health >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$state_dir/server.log"; exit 1; }
  sleep 0.2
done
"${cli[@]}" health
dashboard=$(sed -n 's/.*serving the web dashboard on \([^ ]*\) .*/\1/p' "$state_dir/server.log" | head -1)
[[ -n $dashboard ]] && echo "watch the job live in a browser: $dashboard/"

step "train: the tutorial's CNN, batch 60, Adam 1e-3, $epochs epochs"
"${cli[@]}" train --dataset mnist --epochs "$epochs" --progress_reports_per_epoch 10 | tee "$state_dir/train.txt"
model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$state_dir/train.txt")

step "evaluate $model on the MNIST test set"
"${cli[@]}" evaluate --model "$model"

step "predict: five test digits saved as PNG files"
build/client/classifier-idx-to-png "$data_dir/mnist/t10k-images-idx3-ubyte.gz" \
  "$data_dir/mnist/t10k-labels-idx1-ubyte.gz" "$state_dir/samples" 5 | sed 's/^/true label: /'
"${cli[@]}" predict --model "$model" --top_k 2 "$state_dir"/samples/*.png

step "export the weights (a PyTorch state dict)"
"${cli[@]}" export --model "$model" --out "$state_dir/MulticlassCNN.pth"
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  /usr/bin/python3 -c "import sys, torch; d = torch.load(sys.argv[1]); print('torch.load:', {k: tuple(v.shape) for k, v in d.items()})" "$state_dir/MulticlassCNN.pth"
fi

step "stop the server (SIGTERM)"
kill -TERM "$server_pid"
wait "$server_pid"
trap - EXIT
echo "done: server exited cleanly; model $model, weights in $state_dir/MulticlassCNN.pth"
