#!/usr/bin/env bash
# classifier-rank as launchers start it: two ranks under Debian's real torchrun (--no_python),
# the same job on one rank (within 0.3 points), a rank killed with SIGKILL mid-run (the other
# exits within the timeout, not hung, and the job resumes from rank 0's checkpoint on a world
# of another size), a rank that never joins, a rendezvous port in use and a bad environment:
# each a clear message naming the cause, and no rank process left behind.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

readonly rank_bin=$CLASSIFIER_BINARY_DIR/distributed/classifier-rank
fetch_mnist "$work/data"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# The ranks of this test still running (their command lines name $work).
ranks_left() { pgrep -f "classifier-rank.*$work" | wc -l; }
# rank RANK WORLD_SIZE PORT ARGS...: one rank with the torchrun environment, in the foreground.
rank() {
  local rank=$1 world=$2 port=$3; shift 3
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$rank WORLD_SIZE=$world LOCAL_RANK=$rank \
    "$rank_bin" --data_dir "$work/data" "$@"
}
# start_rank OUT ERR RANK WORLD_SIZE PORT ARGS...: the same in the background; sets rank_pid to
# the rank's own process (not a subshell's, so that SIGKILL reaches it).
start_rank() {
  local out=$1 err=$2 rank=$3 world=$4 port=$5; shift 5
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port RANK=$rank WORLD_SIZE=$world LOCAL_RANK=$rank \
    "$rank_bin" --data_dir "$work/data" "$@" >"$out" 2>"$err" &
  rank_pid=$!
}
# Debian's interpreter: it has python3-torch; another python3 may come first on the PATH.
readonly python=/usr/bin/python3
json_field() {  # json_field FILE FIELD: FIELD of the last JSON line of FILE that has it.
  python3 - "$@" <<'PY'
import json, re, sys
value = None
for line in open(sys.argv[1]):
    match = re.search(r"\{.*\}", line)
    if match:
        record = json.loads(match.group(0))
        if sys.argv[2] in record:
            value = record[sys.argv[2]]
print(value)
PY
}
request='epochs: 2 seed: 5'

# 1. torchrun starts two ranks; rank 0 reports the world size, the test accuracy, the weights.
two_ranks_by_hand() {  # The same two ranks, started with torchrun's environment by this script.
  local port
  port=$(free_port)
  start_rank "$work/two.txt" "$work/two-0.err" 0 2 "$port" --request "$request" --output "$work/two.pt"
  local rank0=$rank_pid
  start_rank /dev/null "$work/two-1.err" 1 2 "$port" --request "$request"
  local rank1=$rank_pid status0=0 status1=0
  wait "$rank0" || status0=$?
  wait "$rank1" || status1=$?
  check "two ranks started by hand succeed (exits $status0, $status1)" test "$status0" -eq 0 -a "$status1" -eq 0
}
if command -v torchrun >/dev/null; then
  # --redirects/--tee non-zero: Debian's torchrun 1.13 under Python 3.11 fails on the defaults
  # (../shared/design/FACTS.md).
  status=0
  torchrun --nproc_per_node=2 --no_python --redirects 2 --tee 1 --log_dir "$work/torchrun-logs" \
    --master_addr 127.0.0.1 --master_port "$(free_port)" \
    "$rank_bin" --data_dir "$work/data" --request "$request" --output "$work/two.pt" \
    >"$work/two.txt" 2>"$work/two.err" || status=$?
  if ((status != 0)) && grep -q "PyTorch was build without libuv support" "$work/two.err"; then
    # Debian 13's torchrun (2.6) creates its own rendezvous store with libuv, which Debian's
    # LibTorch 2.6 lacks: torchrun fails before any rank starts. Said, not hidden.
    echo "SKIP torchrun: Debian's own torchrun cannot start here (its LibTorch lacks libuv);" \
      "the ranks are started by hand instead"
    two_ranks_by_hand
  else
    check "torchrun's two ranks succeed (exit $status)" test "$status" -eq 0
  fi
else
  bad "torchrun is missing (Debian's python3-torch; scripts/install-deps.sh installs it)"
  two_ranks_by_hand
fi
check "rank 0 reports world_size 2 every epoch" test "$(grep -c '"world_size": 2' "$work/two.txt")" -ge 3
two=$(json_field "$work/two.txt" test_accuracy)
check "two ranks reach > 90% (got $two)" python3 -c "import sys; sys.exit(0 if float('$two') > 0.9 else 1)"
check "rank 0 wrote weights torch.load reads" "$python" -c "
import torch, sys
state = torch.load(sys.argv[1])
assert set(state) == {'conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'fc1.weight', 'fc1.bias'}, set(state)
" "$work/two.pt"

# 2. The same job on one rank ends within 0.3 points.
rank 0 1 "$(free_port)" --request "$request" >"$work/one.txt"
one=$(json_field "$work/one.txt" test_accuracy)
check "one rank and two ranks within 0.3 points ($one vs ${two:-none})" python3 -c "
import sys; sys.exit(0 if abs(float('$one') - float('${two:-0}')) <= 0.003 else 1)"

# 3. SIGKILL one of two ranks mid-run: the other exits, the job resumes on one rank.
port=$(free_port)
long='epochs: 6 seed: 5 batch_size: 20'
start_rank "$work/kill0.txt" "$work/kill0.err" 0 2 "$port" --request "$long" \
  --checkpoint "$work/ckpt" --collective_timeout_s 60
rank0=$rank_pid
start_rank /dev/null "$work/kill1.err" 1 2 "$port" --request "$long" \
  --checkpoint "$work/ckpt-unused" --collective_timeout_s 60
rank1=$rank_pid
for _ in $(seq 1 1200); do
  grep -q '"epoch": 1,' "$work/kill0.txt" 2>/dev/null && break
  kill -0 "$rank0" 2>/dev/null || break
  sleep 0.1
done
check "epoch 1 ended and was checkpointed before the kill" test -s "$work/ckpt"
kill -KILL "$rank1"
wait "$rank1" 2>/dev/null || true
started=$SECONDS
status=0; wait "$rank0" || status=$?
check "the job was still running when rank 1 was killed" bash -c "! grep -q '\"epoch\": 6,' '$work/kill0.txt'"
check "the surviving rank exits 2 (group lost), not hung (exit $status after $((SECONDS - started)) s)" test "$status" -eq 2
check "it says it lost the group" grep -q "lost the group" "$work/kill0.err"
check "no rank is left running" test "$(ranks_left)" -eq 0
rank 0 1 "$(free_port)" --request "$long" --checkpoint "$work/ckpt" >"$work/resumed.txt" 2>"$work/resumed.err"
check "the job resumes from rank 0's checkpoint on one rank and finishes" python3 - "$work/resumed.txt" <<'PY'
import json, re, sys
epochs = [json.loads(re.search(r"\{.*\}", l).group(0)) for l in open(sys.argv[1]) if '"epoch"' in l]
numbers = [e["epoch"] for e in epochs]
assert numbers and numbers[0] >= 2 and numbers[-1] == 6, numbers
assert all(e["world_size"] == 1 for e in epochs)
PY

# 4. A rank that never joins is named, after the join timeout.
status=0
rank 0 2 "$(free_port)" --request "$request" --join_timeout_s 3 2>"$work/lonely.err" >/dev/null || status=$?
check "a lonely rank 0 exits 2 (exit $status)" test "$status" -eq 2
check "and names the missing rank" grep -q "rank 1 of WORLD_SIZE 2 did not join within 3 s" "$work/lonely.err"

# 5. The rendezvous port is taken.
port=$(free_port)
python3 -c "
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)" "$port" &
holder=$!
for _ in $(seq 1 100); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null && break; sleep 0.1; done
status=0
rank 0 1 "$port" --request "$request" --join_timeout_s 5 2>"$work/taken.err" >/dev/null || status=$?
kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true
check "a taken MASTER_PORT is bad input (exit $status)" test "$status" -eq 1
check "and names MASTER_PORT" grep -q "MASTER_PORT $port is in use" "$work/taken.err"

# 6. A bad environment and a bad request: named, at once.
status=0
MASTER_ADDR=127.0.0.1 MASTER_PORT=1 RANK=0 WORLD_SIZE=0 "$rank_bin" --data_dir "$work/data" \
  --request "$request" 2>"$work/env.err" || status=$?
check "WORLD_SIZE 0 exits 1 naming it (exit $status)" bash -c "[[ $status -eq 1 ]] && grep -q 'WORLD_SIZE is \"0\"' '$work/env.err'"
status=0
rank 0 1 "$(free_port)" --request 'batch_size: -3' 2>"$work/request.err" || status=$?
check "a bad request exits 1 naming the field (exit $status)" bash -c "[[ $status -eq 1 ]] && grep -q batch_size '$work/request.err'"
check "no rank is left running at the end" test "$(ranks_left)" -eq 0
finish
