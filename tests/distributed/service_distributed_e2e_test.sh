#!/usr/bin/env bash
# Distributed jobs through the real server and CLI (`train --world_size N`): the server trains
# rank 0 and starts the other ranks as classifier-rank processes. One job, one event stream
# with world_size on its epochs, the accuracy of the same job in one process (within 0.3
# points); a fine-tuning (init_from_model, frozen convolutions) whose weights only rank 0 holds; a sweep
# whose trials each run on the ranks; a rank killed with SIGKILL mid-job is started again and the job resumes from its last
# checkpoint and succeeds; a registered dataset reaches the ranks; CancelJob stops every rank;
# a server stopped mid-job stops its ranks and resumes the job when it restarts; bad world
# sizes are refused naming the field; no rank process outlives its job.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

fetch_mnist "$work/data"
# Rank processes of this test (their command lines name $work).
ranks_left() { pgrep -f "classifier-rank.*$work" | wc -l; }
wait_no_ranks() {  # The ranks of a finished job exit within LocalRanks' grace (10 s) + margin.
  for _ in $(seq 1 300); do (($(ranks_left) == 0)) && return 0; sleep 0.1; done
  return 1
}
final_accuracy() {  # final_accuracy EVENTS_JSON: the finished event's test accuracy.
  python3 -c '
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["finished"]
assert last["state"] == "JOB_STATE_SUCCEEDED", last
print(last["test_metrics"]["accuracy"])' "$1"
}
start_server "$work/data" "$work/state" --max_local_ranks 3

# 1. Two ranks against one process.
cli train --epochs 2 --seed 5 --world_size 2 --json >"$work/two.json"
cli train --epochs 2 --seed 5 --json >"$work/one.json"
two=$(final_accuracy "$work/two.json")
one=$(final_accuracy "$work/one.json")
check "two ranks reach > 90% ($two)" python3 -c "import sys; sys.exit(0 if $two > 0.9 else 1)"
check "within 0.3 points of one process ($two vs $one)" python3 -c "import sys; sys.exit(0 if abs($two - $one) <= 0.003 else 1)"
check "every epoch_end and progress event says world_size 2" python3 - "$work/two.json" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
reports = [e.get("epoch_end") or e.get("progress") for e in events if "epoch_end" in e or "progress" in e]
assert len([e for e in events if "epoch_end" in e]) == 2, events
assert reports and all(r["world_size"] == 2 for r in reports), reports
PY
check "GetJob shows distributed.world_size 2" bash -c "'$cli_bin' --server $server_addr job \$(head -1 '$work/two.json' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"job_id\"])') --json | grep -q '\"worldSize\": *2\|\"world_size\": *2'"
check "rank 1 wrote its log under the state directory" bash -c "ls '$work/state/ranks/' | grep -q 'rank-1.log'"
check "no rank outlives its job" wait_no_ranks

# 2. A registered dataset reaches the other ranks.
mkdir -p "$work/data/sets/digits"
cp "$work/data/mnist/"*.gz "$work/data/sets/digits/"
cli register-dataset digits sets/digits >/dev/null
status=0; cli train --dataset digits --epochs 1 --world_size 3 --json >"$work/registered.json" 2>&1 || status=$?
check "three ranks train a registered dataset (exit $status)" bash -c "[[ $status == 0 ]] && grep -q JOB_STATE_SUCCEEDED '$work/registered.json'"

# 2b. Fine-tuning distributed: only rank 0 (the server) has init_from_model's weights, and sends
# every rank its starting state; two ranks end where one process does (to Adam's rounding), the
# frozen convolutions bit for bit the base model's.
base=$(python3 -c 'import json, sys; print([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["finished"]["model_id"])' "$work/two.json")
cli train --epochs 1 --seed 9 --world_size 2 --init_from_model "$base" --freeze_convolutions \
  --json >"$work/tuned-two.json" 2>&1 || true
cli train --epochs 1 --seed 9 --init_from_model "$base" --freeze_convolutions \
  --json >"$work/tuned-one.json" 2>&1 || true
for run in tuned-two tuned-one; do
  model=$(python3 -c 'import json, sys; print([json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]["finished"].get("model_id", ""))' "$work/$run.json" 2>/dev/null || true)
  [[ -n $model ]] && cli export --model "$model" --out "$work/$run.pth" >/dev/null
done
cli export --model "$base" --out "$work/base.pth" >/dev/null
check "a fine-tuning on two ranks gives one process's weights, convolutions the base's" \
  /usr/bin/python3 - "$work/tuned-two.pth" "$work/tuned-one.pth" "$work/base.pth" <<'PY'
import sys, torch
two, one, base = (torch.load(path) for path in sys.argv[1:])
for name in base:
    difference = (two[name] - one[name]).abs().max().item()
    print(f"{name}: two ranks vs one process {difference:.2e}")
    assert difference < 1e-3, name
    if name.startswith("conv"):
        assert torch.equal(two[name], base[name]), name
assert any((two[n] - base[n]).abs().max().item() > 1e-2 for n in base if not n.startswith("conv"))
PY

# 2c. A sweep on two ranks: each trial is a distributed run of its own values.
status=0; cli train --epochs 1 --seed 3 --world_size 2 --validation_fraction 0.1 \
  --sweep_learning_rates 0.002,0.00001 --json >"$work/sweep.json" 2>&1 || status=$?
check "a sweep of two trials on two ranks succeeds naming its best (exit $status)" python3 - "$work/sweep.json" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
finished = events[-1]["finished"]
assert finished["state"] == "JOB_STATE_SUCCEEDED", finished
assert len([e for e in events if "trial_started" in e]) == 2, events
ends = [e for e in events if "epoch_end" in e]
assert len(ends) == 2 and all(e["epoch_end"]["world_size"] == 2 for e in ends), ends
# The trials trained their own learning rates: 0.002 learns, 0.00001 barely moves.
by_trial = {e["trial"]: e["epoch_end"]["validation_accuracy"] for e in ends}
assert by_trial[1] > by_trial[2] + 0.2, by_trial
assert "best of 2 trials: trial 1" in finished.get("note", ""), finished
PY

# 3. SIGKILL a rank mid-job: the server starts the ranks again and the job resumes.
job=$(cli train --epochs 4 --batch_size 20 --seed 5 --world_size 2 --detach)
cli watch "$job" --json >"$work/killed.json" 2>/dev/null &
watcher=$!
for _ in $(seq 1 600); do
  grep -q '"checkpoint_saved":{"epoch":1' "$work/killed.json" 2>/dev/null && break
  sleep 0.05
done
victim=$(pgrep -f "classifier-rank.*$work" | head -1)
check "a rank runs after epoch 1 (pid ${victim:-none})" test -n "$victim"
[[ -n $victim ]] && kill -KILL "$victim"
status=0; wait "$watcher" || status=$?
check "the job still succeeds (watch exit $status)" test "$status" -eq 0
check "its events: one resumed, every epoch once, world_size 2 throughout" python3 - "$work/killed.json" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
resumed = [e for e in events if "resumed" in e]
assert len(resumed) == 1, resumed
ends = [e["epoch_end"] for e in events if "epoch_end" in e]
assert sorted(set(e["epoch"] for e in ends)) == [1, 2, 3, 4], ends
assert all(e["world_size"] == 2 for e in ends), ends
PY
check "the server log says the ranks were started again" grep -q "starting its ranks again" "$server_log"
check "no rank outlives the job" wait_no_ranks

# 4. CancelJob stops every rank.
job=$(cli train --epochs 200 --batch_size 10 --world_size 2 --detach)
for _ in $(seq 1 300); do (($(ranks_left) > 0)) && break; sleep 0.1; done
check "the job's rank runs" test "$(ranks_left)" -gt 0
cli cancel "$job" >/dev/null
status=0; cli watch "$job" >"$work/cancelled.txt" 2>&1 || status=$?
check "the job is cancelled (watch exit $status)" bash -c "[[ $status == 4 ]] && grep -q cancelled '$work/cancelled.txt'"
check "and no rank is left" wait_no_ranks

# 5. The server stops (SIGTERM) mid-job: every rank stops, and the restarted server resumes the
# job on new ranks.
job=$(cli train --epochs 3 --batch_size 20 --seed 5 --world_size 2 --detach)
cli watch "$job" --json >"$work/drained.json" 2>/dev/null &
watcher=$!
for _ in $(seq 1 600); do
  grep -q '"checkpoint_saved":{"epoch":1' "$work/drained.json" 2>/dev/null && break
  sleep 0.05
done
status=0; stop_server >/dev/null || status=$?
wait "$watcher" 2>/dev/null || true
check "the server drains a distributed job and exits 0 (exit $status)" test "$status" -eq 0
check "no rank outlives the server" wait_no_ranks
start_server "$work/data" "$work/state" --max_local_ranks 3
status=0; cli watch "$job" --json >"$work/after-drain.json" || status=$?
check "the restarted server resumes it on new ranks and it succeeds (watch exit $status)" python3 - "$work/after-drain.json" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert events[-1]["finished"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]
assert any("resumed" in e for e in events), "no resumed event"
ends = sorted(set(e["epoch_end"]["epoch"] for e in events if "epoch_end" in e))
assert ends == [1, 2, 3], ends
PY
check "no rank outlives the resumed job" wait_no_ranks

# 6. Bad world sizes.
status=0; cli train --world_size -1 >"$work/negative.txt" 2>&1 || status=$?
check "world_size -1: INVALID_ARGUMENT naming distributed.world_size (exit $status)" grep -q "INVALID_ARGUMENT: distributed.world_size is -1" "$work/negative.txt"
status=0; cli train --world_size 4 >"$work/many.txt" 2>&1 || status=$?
check "world_size 4 over --max_local_ranks 3: FAILED_PRECONDITION (exit $status)" grep -q "FAILED_PRECONDITION: distributed.world_size is 4; this server runs at most 3" "$work/many.txt"
check "no job was queued by the refusals, and no rank runs" bash -c "[[ \$('$cli_bin' --server $server_addr jobs | grep -c job-) -eq 9 && $(ranks_left) -eq 0 ]]"
stop_server >/dev/null

# 7. A rank that never joins (its binary exits at once) fails the job after the join timeout,
# named.
start_server "$work/data" "$work/state-lonely" --rank_binary /bin/true --rank_join_timeout 3s
status=0; cli train --epochs 1 --world_size 2 >"$work/lonely.txt" 2>&1 || status=$?
check "the job fails naming the rank that did not join (exit $status)" grep -q "rank 1 of WORLD_SIZE 2 did not join within 3 s" "$work/lonely.txt"
stop_server >/dev/null
finish
