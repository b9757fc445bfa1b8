#!/usr/bin/env bash
# End to end, as a user runs it: the built classifier-server and classifier-cli binaries on
# real MNIST data (a shared copy or the fetch script's own source), every CLI command, the
# errors a user meets, the exported weights loaded by Python's torch, and a clean SIGTERM.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
check "health answers SERVING" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"

# Train two epochs, the tutorial's other settings, drawing one progress line per epoch.
cli train --epochs 3 --seed 1 >"$work/train.txt" 2>&1 || true
check "train draws a progress line per epoch" grep -q "^epoch 3/3 |" "$work/train.txt"
check "train reports the model" grep -qE "^job job-[0-9a-f]+ succeeded: model model-[0-9a-f]+, test accuracy" "$work/train.txt"
job=$(sed -n 's/^job \(job-[0-9a-f]*\) succeeded.*/\1/p' "$work/train.txt")
model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/train.txt")
accuracy=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$work/train.txt")
check "three epochs reach > 90% test accuracy (got $accuracy%)" python3 -c "import sys; sys.exit(0 if float('$accuracy') > 90 else 1)"

# --json: one event a line, gap-free, the contract's names; watch replays the same events.
cli train --epochs 1 --seed 2 --json >"$work/events.json"
check "train --json: gap-free events with the contract's fields" python3 - "$work/events.json" <<'PY'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
seqs = [int(e["sequence"]) for e in events]
assert seqs == list(range(1, len(events) + 1)), seqs
ends = [e["epoch_end"] for e in events if "epoch_end" in e]
assert len(ends) == 1 and all(k in ends[0] for k in ("epoch", "epochs", "train_loss", "train_accuracy", "images_per_second", "elapsed_seconds", "eta_seconds")), ends
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED" and events[-1]["finished"]["model_id"]
PY
job2=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["job_id"])' "$work/events.json")
cli watch "$job2" --from 3 --json >"$work/watch.json"
check "watch --from 3 replays the same events" bash -c "diff <(tail -n +3 '$work/events.json') '$work/watch.json'"

cli jobs >"$work/jobs.txt"
check "jobs lists both jobs as succeeded" bash -c "grep -c succeeded '$work/jobs.txt' | grep -qx 2"

# Paging, newest first: --limit N shows the first N and says on stderr how to see the rest;
# --all pages through everything; the filters narrow the list.
cli jobs --limit 1 >"$work/jobs-limit.txt" 2>"$work/jobs-limit.err"
check "jobs --limit 1: only the newest job, and a note on how to see the rest" bash -c "[[ \$(grep -c '^job-' '$work/jobs-limit.txt') == 1 ]] && grep -q '^$job2 ' '$work/jobs-limit.txt' && grep -q 'more jobs exist than shown: --all' '$work/jobs-limit.err'"
cli jobs --all >"$work/jobs-all.txt" 2>"$work/jobs-all.err"
check "jobs --all: both jobs, newest first, no note" bash -c "[[ \$(grep -o '^job-[0-9a-f]*' '$work/jobs-all.txt' | tr '\n' ' ') == '$job2 $job ' && ! -s '$work/jobs-all.err' ]]"
first_created=$(cli job "$job" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["created_time"])')
cli jobs --all --state succeeded --dataset mnist --created_after "$first_created" >"$work/jobs-after.txt"
check "jobs --state --dataset --created_after: only the second job" bash -c "[[ \$(grep -o '^job-[0-9a-f]*' '$work/jobs-after.txt') == '$job2' ]]"
cli models --limit 1 --json >"$work/models-limit.json" 2>"$work/models-limit.err"
check "models --limit 1 --json: valid JSON with the newest model and a next_page_token" python3 - "$work/models-limit.json" "$job2" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
assert len(answer["models"]) == 1 and answer["models"][0]["job_id"] == sys.argv[2], answer
assert answer["next_page_token"], answer
PY
check "models --limit 1 --json: the note on stderr" grep -q 'more models exist than shown' "$work/models-limit.err"
cli models --all --job_id "$job" >"$work/models-job.txt"
check "models --job_id: only the model that job produced" bash -c "[[ \$(grep -o '^model-[0-9a-f]*' '$work/models-job.txt') == '$model' ]]"
status=0; cli jobs --limit 0 >"$work/err-limit.txt" 2>&1 || status=$?
check "jobs --limit 0: a usage error (exit $status)" bash -c "[[ $status == 2 ]] && grep -q -- '--limit' '$work/err-limit.txt'"
cli job "$job" >"$work/job.txt"
check "job shows the model it produced" grep -q "$model" "$work/job.txt"

# Evaluate the newest model on the official test set.
cli evaluate >"$work/evaluate.txt"
check "evaluate prints accuracy and a per-class table" bash -c "grep -q '^accuracy: ' '$work/evaluate.txt' && grep -qE '^LABEL +PRECISION +RECALL +F1 +SUPPORT' '$work/evaluate.txt'"
test_count=$(python3 -c 'import gzip, struct, sys; print(struct.unpack(">I", gzip.open(sys.argv[1]).read(8)[4:])[0])' "$work/data/mnist/t10k-labels-idx1-ubyte.gz")
check "evaluate counts every test image ($test_count)" grep -qE "^count: +$test_count$" "$work/evaluate.txt"

# Predict real test digits, written as PNG files.
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 20 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
cli predict "${pngs[@]}" >"$work/predict.txt"
correct=0
while read -r path label; do
  grep -q "^$path: $label (p=" "$work/predict.txt" && correct=$((correct + 1))
done <"$work/pngs.txt"
check "predict labels at least 17 of 20 PNG digits right ($correct)" test "$correct" -ge 17

# Export, then load the file into the tutorial's own CNN class with Python's torch.
cli export --model "$model" --out "$work/MulticlassCNN.pth" >"$work/export.txt"
sha=$(sed -n 's/.*sha256 \([0-9a-f]*\),.*/\1/p' "$work/export.txt")
check "export writes the file with the announced SHA-256" bash -c "[[ -n '$sha' && \$(sha256sum '$work/MulticlassCNN.pth' | cut -d' ' -f1) == '$sha' ]]"
cli predict --model "$model" --top_k 10 --json "${pngs[@]}" >"$work/probabilities.json"
python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/predictions_to_json.py" "$work/data/mnist/t10k-images-idx3-ubyte.gz" "$work/probabilities.json" "$work/interop.json"
if [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  check "Python's torch.load + the tutorial's CNN give the service's probabilities (< 1e-5)" \
    /usr/bin/python3 "$CLASSIFIER_SOURCE_DIR/tests/interop/check_export.py" "$work/MulticlassCNN.pth" "$work/interop.json"
else
  bad "Debian's python3-torch is missing (scripts/install-deps.sh installs it)"
fi

# Cancel a long job through the CLI; watch then reports it cancelled (exit 4).
long=$(cli train --epochs 1000 --batch_size 1 --detach)
sleep 1
cli cancel "$long" >"$work/cancel.txt"
check "cancel answers for the job" grep -q "^job $long" "$work/cancel.txt"
status=0; cli watch "$long" >"$work/watch-cancel.txt" 2>&1 || status=$?
check "watch of a cancelled job exits 4 saying cancelled (exit $status)" bash -c "[[ $status == 4 ]] && grep -q cancelled '$work/watch-cancel.txt'"

# Errors: the server's message, a non-zero exit, and the server stays up.
status=0; cli train --epochs -1 >"$work/err1.txt" 2>&1 || status=$?
check "train --epochs -1: INVALID_ARGUMENT naming epochs (exit $status)" bash -c "[[ $status == 1 ]] && grep -q 'error: INVALID_ARGUMENT: epochs' '$work/err1.txt'"
status=0; cli train --dataset nope >"$work/err2.txt" 2>&1 || status=$?
check "train --dataset nope: NOT_FOUND (exit $status)" bash -c "[[ $status == 1 ]] && grep -q 'error: NOT_FOUND: unknown dataset \"nope\"' '$work/err2.txt'"
echo "not an image" >"$work/bad.png"
status=0; cli predict "$work/bad.png" >"$work/err3.txt" 2>&1 || status=$?
check "predict of a non-image: INVALID_ARGUMENT (exit $status)" bash -c "[[ $status == 1 ]] && grep -q 'error: INVALID_ARGUMENT: images\[0\].encoded' '$work/err3.txt'"
status=0; cli job job-nope >"$work/err4.txt" 2>&1 || status=$?
check "job job-nope: NOT_FOUND (exit $status)" bash -c "[[ $status == 1 ]] && grep -q 'error: NOT_FOUND' '$work/err4.txt'"
check "still SERVING after the errors" bash -c "[[ \$('$cli_bin' --server $server_addr health) == SERVING ]]"

# SIGTERM while a job runs: the job ends cancelled, the process exits 0.
cli train --epochs 1000 --batch_size 1 --detach >/dev/null
sleep 1
status=0; stop_server || status=$?
check "SIGTERM: exit status 0 (got $status)" test "$status" -eq 0
check "SIGTERM: the log says shutdown complete" grep -q "shutdown complete" "$server_log"
check "one log line per RPC (successful Predict calls at debug level)" grep -q "rpc Evaluate from" "$server_log"
check "one log line per epoch" grep -qE "job job-[0-9a-f]+ epoch 1/3: loss" "$server_log"
finish
