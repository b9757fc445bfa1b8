#!/usr/bin/env bash
# A full disk under the real server: its --state_dir on a small tmpfs the test mounts and then
# fills. Training and importing fail with RESOURCE_EXHAUSTED naming the state folder, nothing
# stored is corrupt (the earlier model exports byte for byte as before), the server keeps
# serving Predict and health, and once space is freed the same calls succeed again. A job the
# disk fills under pauses at its last checkpoint and goes on once space is freed.
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
start_server "$work/data" "$state" --paused_job_retry 1s

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
# A job the disk fills under: it pauses at its last checkpoint, says why, the server keeps
# serving, and once space is freed it goes on to the end with every event stored once.
job=$(cli train --epochs 8 --seed 3 --detach)
job_state_is() { cli job --json "$job" | grep -q "$1"; }
wait_until 300 "the job saved its first checkpoint" test -s "$state/checkpoints/$job.ckpt"
dd if=/dev/zero of="$state/ballast" bs=64k >/dev/null 2>&1 || true
wait_until 300 "with the disk full, the job pauses (INTERRUPTED)" job_state_is JOB_STATE_INTERRUPTED
cli job --json "$job" >"$work/paused.json"
echo "paused job: $(grep -o '"error": *"[^"]*"' "$work/paused.json" || true)"
check "  ... saying why: paused, naming the state folder and the full file system" \
  bash -c "grep -q 'paused: ' '$work/paused.json' && grep -q '$state' '$work/paused.json' && grep -qi 'full' '$work/paused.json'"
check "  ... and the server still answers SERVING" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"
cli predict --model "$model" "${pngs[@]}" >"$work/predict-paused.txt" 2>&1 || true
check "  ... and predict as before" diff "$work/predict-before.txt" "$work/predict-paused.txt"
rm -f "$state/ballast"
wait_until 600 "with space freed, the paused job goes on and succeeds" job_state_is JOB_STATE_SUCCEEDED
cli watch "$job" >"$work/watch.txt" 2>&1 || true
check "  ... its events say it resumed" grep -q 'resumed' "$work/watch.txt"
for epoch in 1 2 3 4 5 6 7 8; do
  check "  ... epoch $epoch ended" grep -Eq "epoch $epoch/8 .* 100% loss" "$work/watch.txt"
done
finished_model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/watch.txt")
check "  ... its model (${finished_model:-none}) exports with the SHA-256 the server announces" \
  cli export --model "$finished_model" --out "$work/paused-model.pth"
check "no temporary file is left in the state folder" \
  bash -c "[[ -z \$(find '$state' -name '*.tmp-*') ]]"
cli models --all >"$work/models.txt"
orphans=0
for file in "$state"/models/*.pth; do
  grep -q "$(basename "$file" .pth)" "$work/models.txt" || { echo "orphan: $file"; orphans=$((orphans + 1)); }
done
check "every weights file in the state folder is a listed model's (no orphan)" test "$orphans" -eq 0
check "SIGTERM: the server exits 0" stop_server
finish
