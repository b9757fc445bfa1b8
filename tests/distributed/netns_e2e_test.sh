#!/usr/bin/env bash
# Two ranks on two "hosts": network namespaces joined by a veth pair (addresses this test makes),
# so the rendezvous and every all-reduce cross a real interface, not loopback. Each rank finds
# its own address towards MASTER_ADDR; the traffic counted on the veth shows the sums went
# through it. Then the same through the service: the server on one "host", a classifier-worker
# on the other registering with it across the veth, and a `train --world_size 2` job whose rank 1
# runs on the worker. Needs root (ip netns); where namespaces cannot be made it says so and runs
# the same on loopback.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

readonly rank_bin=$CLASSIFIER_BINARY_DIR/distributed/classifier-rank
readonly worker_bin=$CLASSIFIER_BINARY_DIR/distributed/classifier-worker
fetch_mnist "$work/data"
ns_a=cls-$$-a ns_b=cls-$$-b veth_a=cva$$ veth_b=cvb$$
subnet=10.213.$((RANDOM % 250))
namespaces=0
worker=""
cleanup_netns() {
  if [[ -n $worker ]]; then kill -KILL "$worker" 2>/dev/null || true; fi
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  cleanup
}
trap cleanup_netns EXIT

if ip netns add "$ns_a" 2>/dev/null && ip netns add "$ns_b" &&
  ip link add "$veth_a" type veth peer name "$veth_b" &&
  ip link set "$veth_a" netns "$ns_a" && ip link set "$veth_b" netns "$ns_b" &&
  ip -n "$ns_a" addr add "$subnet.1/24" dev "$veth_a" &&
  ip -n "$ns_b" addr add "$subnet.2/24" dev "$veth_b" &&
  ip -n "$ns_a" link set "$veth_a" up && ip -n "$ns_b" link set "$veth_b" up &&
  ip -n "$ns_a" link set lo up && ip -n "$ns_b" link set lo up; then
  namespaces=1
  master=$subnet.1
  run_in_a=(ip netns exec "$ns_a") run_in_b=(ip netns exec "$ns_b")
  echo "ranks in namespaces $ns_a ($subnet.1) and $ns_b ($subnet.2), joined by a veth pair"
else
  echo "network namespaces cannot be made here (not root, or no ip netns): running on loopback"
  master=127.0.0.1
  run_in_a=() run_in_b=()
fi

request='epochs: 2 seed: 5'
rank_env() { echo MASTER_ADDR="$master" MASTER_PORT=29531 RANK="$1" WORLD_SIZE=2; }
# shellcheck disable=SC2046
"${run_in_a[@]}" env $(rank_env 0) "$rank_bin" --data_dir "$work/data" --request "$request" \
  --join_timeout_s 60 >"$work/rank0.txt" 2>"$work/rank0.err" &
rank0=$!
# shellcheck disable=SC2046
"${run_in_b[@]}" env $(rank_env 1) "$rank_bin" --data_dir "$work/data" --request "$request" \
  --join_timeout_s 60 >"$work/rank1.txt" 2>"$work/rank1.err" &
rank1=$!
status0=0; wait "$rank0" || status0=$?
status1=0; wait "$rank1" || status1=$?
check "both ranks succeed (exits $status0 and $status1)" test "$status0" -eq 0 -a "$status1" -eq 0
check "rank 0 reports world_size 2" grep -q '"world_size": 2' "$work/rank0.txt"
check "and > 90% test accuracy" python3 -c "
import json, sys
line = [l for l in open(sys.argv[1]) if 'test_accuracy' in l][-1]
sys.exit(0 if json.loads(line)['test_accuracy'] > 0.9 else 1)" "$work/rank0.txt"
if ((namespaces)); then
  received=$(ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/rx_bytes")
  # 334 steps of a 36 KB sum each way: about 12 MB.
  check "the sums crossed the veth ($received bytes into rank 0's namespace)" test "$received" -gt 8000000
fi

# The service across the two hosts: the server in A, a worker in B.
rx_bytes() { if ((namespaces)); then ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/rx_bytes"; else echo 0; fi; }
"${run_in_a[@]}" "$server_bin" --listen "$master:0" --metrics_listen= --http_listen= \
  --data_dir "$work/data" --state_dir "$work/state" --device cpu --threads 1 --max_local_ranks 2 \
  >"$work/server.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on .* (port \([0-9]*\)).*/\1/p' "$work/server.log" | head -1)
  [[ -n $port ]] && break
  sleep 0.1
done
check "the server listens on $master in A (port ${port:-none})" test -n "$port"
"${run_in_b[@]}" "$worker_bin" --server "$master:$port" --worker_name far --max_ranks 1 \
  --data_dir "$work/data" --log_dir "$work/far" >"$work/worker.log" 2>&1 &
worker=$!
registered() { grep -q "worker far registered" "$work/server.log"; }
wait_until 60 "the worker in B registers with the server in A" registered
before=$(rx_bytes)
"${run_in_a[@]}" "$cli_bin" --server "$master:$port" train --epochs 2 --seed 5 --world_size 2 \
  --json >"$work/job.json" 2>"$work/job.err" || true
after=$(rx_bytes)
check "the job succeeds with rank 1 on the worker in B, none local" \
  bash -c "tail -1 '$work/job.json' | grep -q JOB_STATE_SUCCEEDED && grep -q 'rank 1 of 2 started' '$work/worker.log' &&
           ! ls '$work'/state/ranks/*-rank-1.log 2>/dev/null"
if ((namespaces)); then
  check "its sums crossed the veth ($((after - before)) bytes into the server's namespace)" \
    test $((after - before)) -gt 8000000
fi
kill -TERM "$worker" "$server_pid"
wait "$worker" "$server_pid" || true
finish
