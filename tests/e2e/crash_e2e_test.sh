#!/usr/bin/env bash
# kill -9 of the real server at random moments while it trains, imports and deploys, then a
# restart and a consistency check after each: every import the client saw acknowledged is
# listed, every listed model exports with the SHA-256 the server announces and serves a
# prediction, every weights file on disk is a listed model's, no temporary file is left, every
# submitted job is still known; at the end every job succeeds with each of its epochs ended.
#
# CLASSIFIER_KILL_ROUNDS (default 4 in ctest; the README's pre-stop run uses 50) kills;
# CLASSIFIER_KILL_SEED picks the moments (printed, so a failing run can be repeated).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rounds=${CLASSIFIER_KILL_ROUNDS:-4}
seed=${CLASSIFIER_KILL_SEED:-$$}
RANDOM=$seed
echo "kill rounds: $rounds, seed: $seed (CLASSIFIER_KILL_SEED=$seed repeats these moments)"
state=$work/state
epochs=3

fetch_mnist "$work/data"
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" \
  "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 2 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
start_server "$work/data" "$state" --paused_job_retry 1s

cli train --epochs 1 --seed 1 >"$work/train0.txt" 2>&1 || true
base=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/train0.txt")
check "a first model to import copies of (${base:-none})" test -n "$base"
cli export --model "$base" --out "$work/base.pth" >/dev/null
echo "$base" >"$work/acknowledged.txt"
: >"$work/jobs.txt"
: >"$work/checked.txt"

importer() {
  while :; do
    local id
    id=$(cli import "$work/base.pth" 2>/dev/null | sed -n 's/^imported \(model-[0-9a-f]*\).*/\1/p')
    [[ -n $id ]] && echo "$id" >>"$work/acknowledged.txt"
    sleep 0.1
  done
}
deployer() {
  while :; do
    cli deploy "$(shuf -n 1 "$work/acknowledged.txt")" >/dev/null 2>&1 || true
    sleep 0.2
  done
}

round_failures=0
for round in $(seq 1 "$rounds"); do
  job=$(cli train --epochs "$epochs" --seed "$round" --detach 2>/dev/null) && echo "$job" >>"$work/jobs.txt"
  importer &
  importer_pid=$!
  deployer &
  deployer_pid=$!
  delay_ms=$((200 + RANDOM % 3800))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -KILL "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  kill "$importer_pid" "$deployer_pid" 2>/dev/null || true
  wait "$importer_pid" "$deployer_pid" 2>/dev/null || true
  start_server "$work/data" "$state" --paused_job_retry 1s

  failures_before=$fails
  cli models --all >"$work/models.txt"
  missing=$(sort -u "$work/acknowledged.txt" | while read -r id; do
    grep -q "$id" "$work/models.txt" || echo "$id"; done)
  [[ -z $missing ]] || bad "round $round: acknowledged imports not listed after the restart: $missing"
  # A resumed job may be registering its model right now (file first, then its record): a file
  # unlisted for 30 s is one the restart should have removed.
  orphans=$(for file in "$state"/models/*.pth; do
    grep -q "$(basename "$file" .pth)" "$work/models.txt" || echo "$file"; done)
  for file in $orphans; do
    id=$(basename "$file" .pth)
    listed_or_gone() { [[ ! -e $1 ]] || cli models --all | grep -q "$2"; }
    wait_until 30 "round $round: weights file $file is listed or gone" listed_or_gone "$file" "$id" ||
      true
  done
  # A killed process's temporary files (named <file>.tmp-<pid>-<n>) must be gone; the restarted
  # server's own may exist for a moment (the resumed job writing its next checkpoint).
  temporaries=$(find "$state" -name '*.tmp-*' ! -name "*.tmp-$server_pid-*")
  [[ -z $temporaries ]] || bad "round $round: temporary files left: $temporaries"
  for id in $(grep -o 'model-[0-9a-f]\{12\}' "$work/models.txt" | sort -u); do
    grep -qx "$id" "$work/checked.txt" && continue
    if cli export --model "$id" --out "$work/check.pth" >/dev/null 2>"$work/export.err"; then
      echo "$id" >>"$work/checked.txt"
    else
      bad "round $round: model $id does not export whole: $(cat "$work/export.err")"
    fi
  done
  cli predict "${pngs[@]}" >/dev/null 2>"$work/predict.err" ||
    bad "round $round: the deployed model does not predict: $(cat "$work/predict.err")"
  while read -r id; do
    cli job "$id" >/dev/null 2>&1 || bad "round $round: job $id is lost"
  done <"$work/jobs.txt"
  ((fails == failures_before)) || round_failures=$((round_failures + 1))
  echo "round $round: killed after ${delay_ms} ms; $(grep -c . "$work/checked.txt") models checked," \
    "$(grep -c . "$work/jobs.txt") jobs known"
done
check "after each of $rounds kills the store and the files agree" test "$round_failures" -eq 0

job_done() { cli job --json "$1" | grep -q -E 'JOB_STATE_(SUCCEEDED|FAILED|CANCELLED)'; }
while read -r id; do
  wait_until 600 "job $id ended" job_done "$id"
  cli watch "$id" >"$work/watch-$id.txt" 2>&1 || true
  check "  ... and succeeded" grep -q 'succeeded: model' "$work/watch-$id.txt"
  for epoch in $(seq 1 "$epochs"); do
    grep -Eq "epoch $epoch/$epochs .* 100% loss" "$work/watch-$id.txt" ||
      bad "job $id: epoch $epoch never ended"
  done
done <"$work/jobs.txt"
check "SIGTERM: the server exits 0" stop_server
finish
