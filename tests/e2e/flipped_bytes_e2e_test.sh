#!/usr/bin/env bash
# One flipped byte in each file the server keeps, under the real server: a model's weights, a
# job's checkpoint, a row of the database and the database's own structure. Each is detected and
# reported by name, and the rest keeps working: the other models serve, the job starts over
# and succeeds, a damaged job row fails that job alone, and a damaged database file refuses to
# start (naming it and how to recover) rather than serve from it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

state=$work/state
db=$state/classifier.db
# flip FILE OFFSET: inverts every bit of the byte at OFFSET (negative: from the end).
flip() {
  python3 - "$1" "$2" <<'PY'
import sys
path, offset = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    data = bytearray(f.read())
    data[offset] ^= 0xFF
    f.seek(0)
    f.write(data)
PY
}
model_of() { sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$1"; }

fetch_mnist "$work/data"
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" \
  "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 2 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
start_server "$work/data" "$state"
cli train --epochs 1 --seed 1 >"$work/a.txt" 2>&1 || true
cli train --epochs 1 --seed 2 >"$work/b.txt" 2>&1 || true
a=$(model_of "$work/a.txt")
b=$(model_of "$work/b.txt")
check "two models to damage one of ($a, $b)" test -n "$a" -a -n "$b"

# A job with a checkpoint, cut short by kill -9 so that it resumes from it.
job=$(cli train --epochs 4 --seed 3 --detach)
wait_until 300 "the job saved a checkpoint" test -s "$state/checkpoints/$job.ckpt"
kill -KILL "$server_pid"
wait "$server_pid" 2>/dev/null || true
flip "$state/models/$a.pth" $(($(stat -c %s "$state/models/$a.pth") / 2))
flip "$state/checkpoints/$job.ckpt" $(($(stat -c %s "$state/checkpoints/$job.ckpt") / 2))
start_server "$work/data" "$state"

status=0; cli predict --model "$a" "${pngs[@]}" >"$work/predict-a.txt" 2>&1 || status=$?
echo "predict with the flipped model: $(tail -1 "$work/predict-a.txt")"
check "a flipped byte in a model's weights: DATA_LOSS naming the model, its file and SHA-256" \
  bash -c "[[ $status != 0 ]] && grep -q DATA_LOSS '$work/predict-a.txt' && grep -q '$a' '$work/predict-a.txt' && grep -q '$state/models/$a.pth' '$work/predict-a.txt' && grep -q SHA-256 '$work/predict-a.txt'"
check "  ... the other model still predicts" cli predict --model "$b" "${pngs[@]}"
status=0; cli export --model "$a" --out "$work/a.pth" >"$work/export-a.txt" 2>&1 || status=$?
check "  ... and the damaged one is not exported as if whole ($(tail -1 "$work/export-a.txt"))" \
  bash -c "[[ $status != 0 && ! -e '$work/a.pth' ]]"

job_state_is() { cli job --json "$job" | grep -q "$1"; }
wait_until 600 "a flipped byte in a checkpoint: the job starts over and succeeds" \
  job_state_is JOB_STATE_SUCCEEDED
check "  ... the server said which checkpoint was corrupt" \
  grep -q "checkpoint $state/checkpoints/$job.ckpt is corrupt" "$server_log"
cli watch "$job" >"$work/watch.txt" 2>&1 || true
for epoch in 1 2 3 4; do
  check "  ... epoch $epoch ended" grep -Eq "epoch $epoch/4 .* 100% loss" "$work/watch.txt"
done
c=$(model_of "$work/watch.txt")
check "SIGTERM: the server exits 0" stop_server

# A row of the database: one byte of model B's recorded SHA-256, and one of the job's request.
b_sha=$(sha256sum "$state/models/$b.pth" | cut -c1-64)
python3 - "$db" "$b_sha" "$job" <<'PY'
import sqlite3, sys
path, sha, job = sys.argv[1:]
db = sqlite3.connect(path)
(model,) = db.execute("SELECT model FROM models WHERE instr(model, ?) > 0", (sha.encode(),)).fetchone()
at = bytes(model).index(sha.encode())
flipped = bytearray(model); flipped[at] = ord("0") if flipped[at] != ord("0") else ord("1")
db.execute("UPDATE models SET model = ? WHERE model = ?", (bytes(flipped), model))
(request,) = db.execute("SELECT request FROM jobs WHERE job_id = ?", (job,)).fetchone()
at = bytes(request).index(b"mnist")
flipped = bytearray(request); flipped[at] ^= 0xFF  # No longer UTF-8: the request cannot parse.
db.execute("UPDATE jobs SET request = ? WHERE job_id = ?", (bytes(flipped), job))
db.commit()
PY
start_server "$work/data" "$state"
status=0; cli predict --model "$b" "${pngs[@]}" >"$work/predict-b.txt" 2>&1 || status=$?
echo "predict after its recorded SHA-256 changed: $(tail -1 "$work/predict-b.txt")"
check "a flipped byte in a model's row: DATA_LOSS naming the model" \
  bash -c "[[ $status != 0 ]] && grep -q DATA_LOSS '$work/predict-b.txt' && grep -q '$b' '$work/predict-b.txt'"
check "  ... the job's model still predicts" cli predict --model "$c" "${pngs[@]}"
cli job "$job" >"$work/job.txt" 2>&1 || true
echo "the job with a damaged row: $(grep -i error "$work/job.txt" || true)"
check "a flipped byte in a job's row: that job reads back FAILED, saying its record is damaged" \
  bash -c "grep -qi failed '$work/job.txt' && grep -q 'is damaged' '$work/job.txt'"
check "  ... and the server serves the rest (SERVING, the jobs list)" \
  bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]] && '$cli_bin' --server $server_addr jobs --all >/dev/null"
check "SIGTERM: the server exits 0" stop_server

# The database's structure: the first table page's b-tree type byte.
cp "$db" "$work/whole.db"
flip "$db" 100
status=0
"$server_bin" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 --http_listen 127.0.0.1:0 --data_dir "$work/data" --state_dir "$state" --device cpu \
  >"$work/damaged.log" 2>&1 || status=$?
echo "start on a damaged database (exit $status): $(grep -i 'damaged\|cannot' "$work/damaged.log" | tail -1)"
check "a flipped byte in the database's structure: the server refuses to start, naming the file" \
  bash -c "[[ $status != 0 ]] && grep -q '$db' '$work/damaged.log' && grep -Eqi 'damaged|malformed|not a database' '$work/damaged.log'"
check "  ... and saying how to recover it" grep -q '.recover' "$work/damaged.log"
cp "$work/whole.db" "$db"
start_server "$work/data" "$state"
check "restored, it starts and serves again" cli predict --model "$c" "${pngs[@]}"
check "SIGTERM: the server exits 0" stop_server
finish
