#!/usr/bin/env bash
# A full disk under the real server: its --state_dir on a small tmpfs the test mounts and then
# fills. Training and importing fail with RESOURCE_EXHAUSTED naming the state folder, nothing
# stored is corrupt (the earlier model exports byte for byte as before), the server keeps
# serving Predict and health, and once space is freed the same calls succeed again.
# Skipped (77) unless root (mounting needs it).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: mounting a small tmpfs needs root"
  exit 77
fi
state=$work/state
mkdir -p "$state"
if ! mount -t tmpfs -o size=16m tmpfs "$state"; then
  echo "SKIP: cannot mount a tmpfs here"
  exit 77
fi
trap 'kill -KILL "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; umount "$state" 2>/dev/null || umount -l "$state"; cleanup' EXIT

fetch_mnist "$work/data"
start_server "$work/data" "$state"

cli train --epochs 1 --seed 1 >"$work/train1.txt" 2>&1 || true
model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/train1.txt")
check "a first job trains with space to spare (${model:-none})" test -n "$model"
cli export --model "$model" --out "$work/before.pth" >/dev/null
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 3 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
cli predict --model "$model" "${pngs[@]}" >"$work/predict-before.txt"

# Fill the file system to the last block.
dd if=/dev/zero of="$state/ballast" bs=64k >/dev/null 2>&1 || true
check "the state file system is full" bash -c "[[ \$(df --output=avail '$state' | tail -1 | tr -d ' ') -lt 64 ]]"

status=0; cli train --epochs 1 --seed 2 >"$work/train-full.txt" 2>&1 || status=$?
echo "train on a full disk (exit $status): $(tail -1 "$work/train-full.txt")"
check "train on a full disk fails naming the state folder and the full file system" \
  bash -c "[[ $status != 0 ]] && grep -q '$state' '$work/train-full.txt' && grep -qi 'full' '$work/train-full.txt'"
check "  ... with RESOURCE_EXHAUSTED" grep -q 'RESOURCE_EXHAUSTED' "$work/train-full.txt"
status=0; cli import "$work/before.pth" >"$work/import-full.txt" 2>&1 || status=$?
echo "import on a full disk (exit $status): $(tail -1 "$work/import-full.txt")"
check "import on a full disk: RESOURCE_EXHAUSTED naming the state folder" \
  bash -c "[[ $status == 1 ]] && grep -q 'RESOURCE_EXHAUSTED' '$work/import-full.txt' && grep -q '$state' '$work/import-full.txt'"
check "the server still answers SERVING" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"
cli predict --model "$model" "${pngs[@]}" >"$work/predict-full.txt" 2>&1 || true
check "predict still answers as before" diff "$work/predict-before.txt" "$work/predict-full.txt"
check "no temporary file is left in the state folder" \
  bash -c "[[ -z \$(find '$state' -name '*.tmp-*') ]]"

# Space again: the same calls succeed, and what was stored before is intact.
rm -f "$state/ballast"
cli train --epochs 1 --seed 2 >"$work/train-after.txt" 2>&1 || true
check "with space freed, training succeeds again" grep -q 'succeeded: model' "$work/train-after.txt"
check "with space freed, import succeeds" cli import "$work/before.pth"
cli export --model "$model" --out "$work/after.pth" >/dev/null
check "the first model exports byte for byte as before" cmp "$work/before.pth" "$work/after.pth"
check "SIGTERM: the server exits 0" stop_server
finish
