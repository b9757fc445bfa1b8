#!/usr/bin/env bash
# kill -9 in the middle of an epoch, restart: the job resumes from its last checkpoint by
# itself, its events continue gap-free (with a `resumed` event), and it ends with exactly the
# weights of the same job run without interruption (compared tensor by tensor in Python).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_mnist "$work/data"
train_flags=(--epochs 3 --batch_size 10 --seed 11)

# The reference: never interrupted.
start_server "$work/data" "$work/state-reference"
cli train "${train_flags[@]}" >"$work/reference.txt"
reference=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/reference.txt")
cli export --model "$reference" --out "$work/reference.pth" >/dev/null
stop_server

# The same job, killed with SIGKILL mid-way through epoch 2.
start_server "$work/data" "$work/state"
job=$(cli train "${train_flags[@]}" --detach)
cli watch "$job" --json >"$work/before.json" 2>/dev/null &
watcher=$!
for _ in $(seq 1 600); do
  grep -q '"checkpoint_saved":{"epoch":1' "$work/before.json" 2>/dev/null && break
  sleep 0.05
done
sleep 0.3
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
wait "$watcher" 2>/dev/null || true
check "killed after epoch 1's checkpoint" grep -q '"checkpoint_saved":{"epoch":1' "$work/before.json"
check "killed before epoch 2 ended" bash -c "! grep -q '\"epoch_end\":{\"epoch\":2' '$work/before.json'"

# A crash can tear the write-ahead log's last frame: a copy of this state with its WAL cut
# short must still start and serve what was committed before (SQLite drops the torn frames).
cp -r "$work/state" "$work/state-torn"
if [[ -f $work/state-torn/classifier.db-wal ]]; then
  wal_size=$(stat -c %s "$work/state-torn/classifier.db-wal")
  torn_size=$((wal_size - 100))
  truncate -s "$torn_size" "$work/state-torn/classifier.db-wal"
  start_server "$work/data" "$work/state-torn"
  check "a torn WAL ($wal_size -> $torn_size bytes) does not stop the server" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"
  check "and it still lists its jobs" bash -c "'$cli_bin' --server $server_addr jobs | grep -q job-"
  kill -KILL "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
else
  bad "no WAL file after kill -9 (expected SQLite's WAL mode)"
fi

start_server "$work/data" "$work/state"
status=0; cli watch "$job" --json >"$work/after.json" || status=$?
check "the job resumes by itself and succeeds (watch exit $status)" test "$status" -eq 0
check "events: gap-free across the restart, one resumed event at epoch 1, every epoch once" python3 - "$work/after.json" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
seqs = [int(e["sequence"]) for e in events]
assert seqs == list(range(1, len(events) + 1)), seqs
resumed = [e["resumed"] for e in events if "resumed" in e]
assert len(resumed) == 1 and int(resumed[0]["epoch"]) == 1, resumed
epochs = [e["epoch_end"]["epoch"] for e in events if "epoch_end" in e]
assert epochs == [1, 2, 3], epochs
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
PY
model=$(python3 -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["finished"]["model_id"])' "$work/after.json")
cli export --model "$model" --out "$work/resumed.pth" >/dev/null
check "the resumed job's weights equal the uninterrupted job's, bit for bit" /usr/bin/python3 - "$work/reference.pth" "$work/resumed.pth" <<'PY'
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert a.keys() == b.keys(), (a.keys(), b.keys())
different = [k for k in a if not torch.equal(a[k], b[k])]
assert not different, f"tensors differ: {different}"
print(f"{len(a)} tensors identical")
PY
check "no checkpoint left behind" bash -c "[[ -z \$(ls -A '$work/state/checkpoints' 2>/dev/null) ]]"
stop_server
finish
