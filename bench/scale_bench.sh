#!/usr/bin/env bash
# The cost of a server that has accumulated history (issue 18): for each store size N in
# SCALE_COUNTS (default "1000 10000 100000"), N models and N/10 finished jobs (plus one job of
# 10,000 events) are put into a fresh state directory through the store's bulk path
# (bench/scale_fill), a server is started on it, and the script prints side by side:
#
#   start to listening (s), RSS after start and after the figures (MB), a page of 100 models and
#   of 100 jobs (p50 / p99 ms), the first Predict of a cold model and of a cached one (p50 / p99
#   ms), GetJob and WatchJob's replay of the 10,000-event job, imports per second (ImportWeights
#   of the tutorial's state dict, one caller), and disk per model and per job.
#
# Needs the build's classifier-server, scale_fill and scale_bench, and Debian's python3-torch
# (to write the tutorial's state dict). About 2 minutes plus 3 GB of disk at 100,000 (the weight
# files; removed after each size). Prints figures; never a test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fill_bin=$BUILD_DIR/bench/scale_fill
scale_bin=$BUILD_DIR/bench/scale_bench
require_files "$server_bin" "$fill_bin" "$scale_bin"
counts=${SCALE_COUNTS:-"1000 10000 100000"}

weights=$bench_tmp/MulticlassCNN.pth
"$PYTHON" - "$weights" <<'PY'
import sys, torch, torch.nn as nn
class CNN(nn.Module):  # The tutorial's network.
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 7 * 7, 10)
torch.save(CNN().state_dict(), sys.argv[1])
PY

declare -A figure
for n in $counts; do
  jobs=$((n / 10))
  name=scale-$n
  state=$bench_tmp/$name-state
  "$fill_bin" --state_dir="$state" --weights="$weights" --models="$n" --jobs="$jobs" \
    --dataset=fashion-mnist >/dev/null
  sync
  launched=$(date +%s.%N)
  start_server "$name" --metrics_listen=
  # The listening line's own time stamp (ms), not when the poll above noticed it.
  listening=$(grep -m1 'listening on' "$bench_tmp/$name.log" | sed -n 's/^\[\([^]]*\)\].*/\1/p')
  figure[$n,start_s]=$(awk -v a="$(date -d "$listening" +%s.%N)" -v b="$launched" \
    'BEGIN {printf "%.2f", a - b}')
  figure[$n,rss_start_mb]=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")
  long_job=$(printf 'job-%012x' $((0x5ca1e0000000 + jobs)))
  while IFS=': ' read -r key value; do
    figure[$n,$key]=$value
  done < <("$scale_bin" --server="127.0.0.1:$server_port" --weights="$weights" \
    --long_job="$long_job")
  figure[$n,rss_end_mb]=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status")
  stop_server "$server_pid"
  figure[$n,disk_per_model_kb]=$(du -sk "$state/models" | awk -v n="$n" '{printf "%.1f", $1 / n}')
  figure[$n,db_per_job_kb]=$(du -sk "$state/classifier.db" | awk -v n="$((jobs + n))" \
    '{printf "%.2f", $1 / n}')
  rm -rf "$state"
done

printf '\n%-32s' "figure \\ models (jobs = models / 10)"
for n in $counts; do printf '%12s' "$n"; done
printf '\n'
for key in start_s rss_start_mb rss_end_mb list_models_p50_ms list_models_p99_ms \
  list_jobs_p50_ms list_jobs_p99_ms predict_cold_p50_ms predict_cold_p99_ms \
  predict_cached_p50_ms predict_cached_p99_ms get_job_p50_ms watch_replay_events_per_s \
  imports_per_s import_p50_ms disk_per_model_kb db_per_job_kb; do
  printf '%-32s' "$key"
  for n in $counts; do printf '%12s' "${figure[$n,$key]:--}"; done
  printf '\n'
done
echo "(db_per_job_kb: the database's size over models + jobs: both live there)"
