#!/usr/bin/env bash
# Registered workers through the real binaries: two classifier-workers register with a real
# server and show up in `classifier-cli workers`; a `train --world_size 3` job runs its ranks 1
# and 2 on them (their own data folders and logs) and matches the same job in one process; a
# rank killed with SIGKILL on a worker is started again there and the job resumes from its
# checkpoint and succeeds; a worker killed with SIGKILL leaves the list, and a job then starts
# its ranks as local processes; SIGTERM stops a worker cleanly; a worker of another build, a
# taken name and a bad rank count are refused naming them; no rank process is left behind.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
readonly worker_bin=$CLASSIFIER_BINARY_DIR/distributed/classifier-worker
ensure_buf || { echo "cannot install buf from npm"; exit 1; }

fetch_mnist "$work/data"
ranks_left() { pgrep -f "classifier-rank.*$work" | wc -l; }
wait_no_ranks() {  # The ranks of a finished job exit within LocalRanks' grace (10 s) + margin.
  for _ in $(seq 1 300); do (($(ranks_left) == 0)) && return 0; sleep 0.1; done
  return 1
}
final() {  # final EVENTS_JSON FIELD: a field of the finished event.
  python3 -c '
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["finished"]
print(last["state"] if sys.argv[2] == "state" else last["test_metrics"]["accuracy"])' "$1" "$2"
}
start_server "$work/data" "$work/state" --max_local_ranks 3 --rank_join_timeout 60s
http_port=$(sed -n 's/.*serving the web dashboard on .* (port \([0-9]*\)).*/\1/p' "$server_log" | head -1)

declare -A worker_pid worker_log
# Whatever way the test ends, its workers go too (a worker retries a vanished server forever).
cleanup_workers() {
  for pid in "${worker_pid[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  cleanup
}
trap cleanup_workers EXIT
start_worker() {  # start_worker NAME [FLAGS...]
  local name=$1; shift
  mkdir -p "$work/$name"
  worker_log[$name]=$work/$name/worker.log
  "$worker_bin" --server "$server_addr" --worker_name "$name" --max_ranks 1 \
    --data_dir "$work/data" --log_dir "$work/$name/ranks" "$@" >"${worker_log[$name]}" 2>&1 &
  worker_pid[$name]=$!
}
listed() {  # listed NAME...: every name is in `classifier-cli workers`
  local table
  table=$(cli workers 2>/dev/null) || return 1
  for name in "$@"; do grep -q "^$name " <<<"$table" || return 1; done
}
not_listed() { ! cli workers 2>/dev/null | grep -q "^$1 "; }

start_worker w1
start_worker w2
wait_until 60 "two workers register and are listed by classifier-cli workers" listed w1 w2
cli workers | sed 's/^/  /'
check "the list shows each worker's free ranks and the server's address as it reaches it" \
  bash -c "'$cli_bin' --server $server_addr workers | grep -Eq '^w1 +0/1 +ipv4:127.0.0.1:[0-9]+ +127.0.0.1 +[0-9][0-9.]*$'"

# 1. Three ranks: rank 0 in the server, ranks 1 and 2 on the workers.
cli train --epochs 2 --seed 5 --world_size 3 --json >"$work/three.json"
cli train --epochs 2 --seed 5 --json >"$work/one.json"
three=$(final "$work/three.json" accuracy)
one=$(final "$work/one.json" accuracy)
check "three ranks on two workers reach > 90% ($three)" python3 -c "import sys; sys.exit(0 if $three > 0.9 else 1)"
check "within 0.3 points of one process ($three vs $one)" python3 -c "import sys; sys.exit(0 if abs($three - $one) <= 0.003 else 1)"
job=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["job_id"])' "$work/three.json")
check "rank 1 ran on one worker and rank 2 on the other, each with its log in the worker's folder" \
  bash -c "cat '$work'/w*/worker.log | grep -q 'job $job: rank 1 of 3 started' &&
           cat '$work'/w*/worker.log | grep -q 'job $job: rank 2 of 3 started' &&
           ls '$work'/w1/ranks/$job-rank-*.log '$work'/w2/ranks/$job-rank-*.log >/dev/null &&
           grep -q 'job $job: rank 1 of 3 on worker' '$server_log'"
check "no rank started as a local process of the server" bash -c "! ls '$work'/state/ranks/$job-rank-* 2>/dev/null"
check "the job's ranks were stopped on the workers and every rank exited" wait_no_ranks

# 2. SIGKILL of a rank on a worker mid-job: started again, resumed from the checkpoint.
cli train --dataset fashion-mnist --epochs 3 --seed 6 --world_size 3 --json >"$work/killed.json" 2>&1 &
trainer=$!
rank_pid() { sed -n "s/.*rank 1 of 3 started (pid \([0-9]*\),.*/\1/p" "$work"/w*/worker.log | tail -1; }
first_rank=""
running_rank() { first_rank=$(rank_pid); [[ -n $first_rank && $first_rank != "$1" ]]; }
old_rank=$(rank_pid)
wait_until 120 "the long job's rank 1 starts on a worker" running_rank "$old_rank"
checkpointed() { grep -q '"checkpoint_saved"' "$work/killed.json"; }
wait_until 300 "the long job saves its first checkpoint" checkpointed
kill -KILL "$first_rank" 2>/dev/null || true
wait "$trainer" || true
check "after SIGKILL of rank 1 (pid $first_rank) the job resumed and succeeded" \
  bash -c "[[ \$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[\"finished\"][\"state\"])' '$work/killed.json') == JOB_STATE_SUCCEEDED ]] &&
           grep -q '\"resumed\"' '$work/killed.json'"
check "rank 1 was started again on a worker" \
  bash -c "[[ \$(grep -c 'rank 1 of 3 started' <(cat '$work'/w*/worker.log)) -ge 3 ]]"
check "every rank exited" wait_no_ranks

# 3. A worker killed with SIGKILL leaves the list; a job then runs that rank locally.
kill -KILL "${worker_pid[w2]}"
wait_until 60 "w2, killed with SIGKILL, leaves the list" not_listed w2
cli train --epochs 1 --seed 7 --world_size 3 --json >"$work/fallback.json"
fallback=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["job_id"])' "$work/fallback.json")
check "with one worker left, the job succeeds with one rank on w1 and one local process" \
  bash -c "[[ \$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-1])[\"finished\"][\"state\"])' '$work/fallback.json') == JOB_STATE_SUCCEEDED ]] &&
           grep -q 'job $fallback: rank 1 of 3 started' '${worker_log[w1]}' &&
           ls '$work'/state/ranks/$fallback-rank-2.log >/dev/null"
check "every rank exited" wait_no_ranks

# 4. Refusals, by name.
session() {  # session JSON: one WorkerSession call by reflection, its output in $work/session.txt
  "$buf" curl --protocol grpc --http2-prior-knowledge -d "$1" \
    "http://$server_addr/classifier.v1.Classifier/WorkerSession" 2>&1 | head -c 2000 >"$work/session.txt" || true
}
build=$("$cli_bin" --server "$server_addr" workers | awk '$1 == "w1" {print $NF}')
said() {  # said WORDS...: the last session's output holds every one
  for words in "$@"; do grep -qF -- "$words" "$work/session.txt" || return 1; done
}
session '{"workerName":"old","buildVersion":"other-build","maxRanks":1,"serverAddress":"127.0.0.1"}'
check "a worker of another build is refused FAILED_PRECONDITION naming both builds" \
  said failed_precondition other-build "this server runs build \\\"$build"
session "{\"workerName\":\"w1\",\"buildVersion\":\"$build\",\"maxRanks\":1,\"serverAddress\":\"127.0.0.1\"}"
check "a second worker named w1 is refused ALREADY_EXISTS naming it" \
  said already_exists 'named \"w1\"'
session "{\"workerName\":\"w3\",\"buildVersion\":\"$build\",\"maxRanks\":0,\"serverAddress\":\"127.0.0.1\"}"
check "max_ranks 0 is refused INVALID_ARGUMENT naming it" \
  said invalid_argument max_ranks
status=0; "$worker_bin" --server "$server_addr" --rank_binary /nonexistent >"$work/no-rank.txt" 2>&1 || status=$?
check "a worker without a classifier-rank to run exits 1 naming it" \
  bash -c "[[ $status == 1 ]] && grep -q 'rank_binary' '$work/no-rank.txt'"

# 5. SIGTERM: the worker stops, and nothing is left.
kill -TERM "${worker_pid[w1]}"
stopped=0
for _ in $(seq 1 300); do kill -0 "${worker_pid[w1]}" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
wait "${worker_pid[w1]}"; w1_status=$?
check "SIGTERM: w1 exits 0 (exit $w1_status)" bash -c "[[ $stopped == 1 && $w1_status == 0 ]]"
wait_until 60 "w1 leaves the list" not_listed w1
check "no rank process is left" wait_no_ranks
finish
