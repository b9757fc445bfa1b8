#!/usr/bin/env bash
# Memory: the peak resident set of classifier-server while it trains the tutorial's CNN on
# Fashion-MNIST (60,000 images) for BENCH_EPOCHS epochs (default 1), against the 400 MB target.
#
#   bench/memory_bench.sh
#
# Two readings of the same peak: the kernel's VmHWM from /proc/PID/status just before the
# server is stopped, and "Maximum resident set size" from /usr/bin/time -v (the server runs
# under it) after it exits. Also prints the RSS at idle after start and after training, and
# the ratio peak / target. MB = 10^6 bytes, as the dataset's "47 MB for 60k images".
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

epochs=${BENCH_EPOCHS:-1}
readonly kTargetMb=400
require_files "$server_bin" "$cli_bin" /usr/bin/time

status_kb() { awk -v key="$1:" '$1 == key {print $2}' "/proc/$server_pid/status"; }
mb() { awk -v kb="$1" 'BEGIN {printf "%.1f", kb * 1024 / 1e6}'; }

SERVER_WRAPPER="/usr/bin/time -v -o $bench_tmp/time.txt" start_server memory
idle_kb=$(status_kb VmRSS)
out=$bench_tmp/train.jsonl
"$cli_bin" --server "127.0.0.1:$server_port" train --dataset fashion-mnist --epochs "$epochs" \
  --json >"$out" || { cat "$out" >&2; die "training failed"; }
grep -q JOB_STATE_SUCCEEDED "$out" || die "the job did not succeed: $(tail -1 "$out")"
after_kb=$(status_kb VmRSS)
hwm_kb=$(status_kb VmHWM)
stop_server "$server_pid"
for ((i = 0; i < 100; ++i)); do
  [[ -s $bench_tmp/time.txt ]] && grep -q 'Maximum resident' "$bench_tmp/time.txt" && break
  sleep 0.1
done
time_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$bench_tmp/time.txt")

echo "== memory: classifier-server training Fashion-MNIST 60k, $epochs epoch(s)," \
  "--threads $BENCH_THREADS, device ${BENCH_DEVICE:-cpu}"
echo "RSS idle after start:        $(mb "$idle_kb") MB"
echo "RSS after training:          $(mb "$after_kb") MB"
echo "peak RSS (VmHWM):            $(mb "$hwm_kb") MB"
echo "peak RSS (/usr/bin/time -v): $(mb "${time_kb:-0}") MB"
awk -v kb="$hwm_kb" -v t="$kTargetMb" 'BEGIN {
  printf "ratio peak / target: %.2f (target: under %d MB)\n", kb * 1024 / 1e6 / t, t }'
