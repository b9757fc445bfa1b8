#!/usr/bin/env bash
# The soak: one real classifier-server under every kind of load at once for MINUTES, watched for
# leaks (issue 13, item 5). Prints figures and "soak: PASS", or what failed and exits 1.
#
#   bench/soak.sh [MINUTES]          default 30; SOAK_SECONDS=N overrides (the suite runs 60 s)
#   SOAK_OUT=DIR bench/soak.sh ...   also keeps the samples, h2load's report and the server's
#                                    log in DIR
#
# The load, all at once on Fashion-MNIST (FASHION_DIR, as bench/lib.sh):
#   - 64 Predict callers: h2load (Debian's nghttp2-client), 64 connections, one call each in
#     flight, one image per call, against the deployed model;
#   - training jobs one after another (2 epochs, 10 progress reports each);
#   - WatchJob clients (SOAK_WATCHERS, default 4: bench/soak_watchers.py) following every job,
#     each dropping its stream (SIGKILL of its CLI) every 0.3-3 s and coming back from the next
#     sequence;
#   - a DeployModel every 2 s, alternating between two models;
#   - ImportWeights, ExportWeights and DeleteModel in a loop: a model's weights exported,
#     imported as a new model, exported again and compared byte for byte, then deleted.
# Pass: no unexpected error (every CLI call exits 0, h2load's calls all answered, every RPC the
# server counts ends OK, but the streams clients dropped: CANCELLED); after the
# warm-up (the first quarter, at least 20 s) the server's RSS grows under 5% and its open file
# descriptors and threads stay flat (the last samples' median within SOAK_FD_SLACK, default 8,
# and SOAK_THREAD_SLACK, default 4, of the first ones'); every watcher received every event of
# every job exactly once. The server then stops cleanly on SIGTERM.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

minutes=${1:-30}
[[ $minutes =~ ^[0-9]+$ && $minutes -gt 0 ]] || die "MINUTES must be a whole number over 0, got '$minutes'"
seconds=${SOAK_SECONDS:-$((minutes * 60))}
[[ $seconds =~ ^[0-9]+$ && $seconds -ge 45 ]] || die "SOAK_SECONDS must be 45 or more (a 20 s warm-up, then samples), got '$seconds'"
watchers=${SOAK_WATCHERS:-4}
fd_slack=${SOAK_FD_SLACK:-8}
thread_slack=${SOAK_THREAD_SLACK:-4}
require_files "$server_bin" "$cli_bin" "$FASHION_DIR"
command -v h2load >/dev/null || die "h2load is missing: apt-get install nghttp2-client"
command -v protoc >/dev/null || die "protoc is missing: apt-get install protobuf-compiler"

start_server soak --metrics_listen=127.0.0.1:0 --inference_threads="$BENCH_THREADS"
metrics=$(metrics_port soak)
server=127.0.0.1:$server_port
cli() { "$cli_bin" --server "$server" "$@"; }
failures=$bench_tmp/failures.txt
: >"$failures"
# fail WHAT: records an unexpected error; the soak goes on and reports them all at the end.
fail() { echo "$*" >>"$failures"; }

echo "soak: $seconds s against pid $server_pid (port $server_port), $watchers watchers," \
  "$(getconf _NPROCESSORS_ONLN) cores"

# Two models to deploy in turn: one trained and deployed, its weights imported as the second.
cli train --dataset fashion-mnist --epochs 1 --deploy_when_done >"$bench_tmp/setup.txt" 2>&1 ||
  { cat "$bench_tmp/setup.txt" >&2; die "the setup job failed"; }
model_a=$(cli models --json | sed -n 's/.*"model_id": *"\([^"]*\)".*/\1/p' | head -1)
cli export --model "$model_a" --out "$bench_tmp/a.pth" >/dev/null
model_b=$(cli import --dataset fashion-mnist --json "$bench_tmp/a.pth" |
  sed -n 's/.*"model_id": *"\([^"]*\)".*/\1/p')
[[ -n $model_a && -n $model_b ]] || die "no models to deploy (a '$model_a', b '$model_b')"

# One 28x28 image, as bench/predict_bench.sh sends it; no model named: the deployed one.
pixels=$(for ((i = 0; i < 784; ++i)); do printf '\\%03o' $((i * 7 % 256)); done)
printf 'images { raw_pixels: "%s" }\n' "$pixels" |
  protoc -I "$repo_dir/proto" --encode=classifier.v1.PredictRequest \
    classifier/v1/classifier.proto | grpc_frame "$bench_tmp/one-image.bin"

end=$((SECONDS + seconds))
stop_file=$bench_tmp/stop
jobs_file=$bench_tmp/jobs.txt
: >"$jobs_file"

# The loops below run until `end`, each in its own subshell, and record what went wrong.
train_loop() {
  local job
  while ((SECONDS < end)); do
    job=$(cli train --dataset fashion-mnist --epochs 2 --progress_reports_per_epoch 10 \
      --detach 2>&1) || { fail "train: $job"; sleep 1; continue; }
    echo "$job" >>"$jobs_file"
    cli watch "$job" >/dev/null 2>&1 || fail "job $job did not succeed: $(cli job "$job" 2>&1 | tr '\n' ' ')"
  done
}
deploy_loop() {
  local model=$model_b out
  while ((SECONDS < end)); do
    out=$(cli deploy "$model" 2>&1) || fail "deploy $model: $out"
    if [[ $model == "$model_a" ]]; then model=$model_b; else model=$model_a; fi
    sleep 2
  done
}
weights_loop() {
  local out id round=0
  while ((SECONDS < end)); do
    round=$((round + 1))
    out=$(cli import --dataset fashion-mnist --json "$bench_tmp/a.pth" 2>&1) ||
      { fail "import $round: $out"; continue; }
    id=$(sed -n 's/.*"model_id": *"\([^"]*\)".*/\1/p' <<<"$out")
    out=$(cli export --model "$id" --out "$bench_tmp/round.pth" 2>&1) ||
      { fail "export $round ($id): $out"; continue; }
    cmp -s "$bench_tmp/a.pth" "$bench_tmp/round.pth" || fail "export $round ($id) differs from what was imported"
    out=$(cli delete "$id" 2>&1) || fail "delete $round ($id): $out"
    echo "$round" >"$bench_tmp/weights_rounds.txt"
  done
}
# sample_loop: every 2 s, "SECONDS RSS_KB FDS THREADS ANON_KB FILE_KB" of the server (RSS and
# its anonymous and file-backed parts: the heap's growth shows in the first).
sample_loop() {
  local start=$SECONDS status=/proc/$server_pid/status
  while ((SECONDS < end)); do
    echo "$((SECONDS - start)) $(awk '/^VmRSS:/ {print $2}' "$status")" \
      "$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" \
      "$(awk '/^Threads:/ {print $2}' "$status")" \
      "$(awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} END {print a, f}' "$status")" \
      >>"$bench_tmp/samples.txt"
    sleep 2
  done
}

sample_loop &
sampler=$!
h2load -c 64 -m 1 -D "$seconds" -H 'content-type: application/grpc' -H 'te: trailers' \
  -d "$bench_tmp/one-image.bin" "http://$server/classifier.v1.Classifier/Predict" \
  >"$bench_tmp/h2load.txt" 2>&1 &
h2load_pid=$!
"$PYTHON" "$bench_dir/soak_watchers.py" watch "$cli_bin" "$server" "$jobs_file" "$stop_file" \
  "$bench_tmp" "$watchers" "${SOAK_SEED:-$RANDOM}" >"$bench_tmp/watchers.txt" 2>&1 &
watchers_pid=$!
train_loop &
trainer=$!
deploy_loop &
deployer=$!
weights_loop &
weights=$!

for pid in "$trainer" "$deployer" "$weights" "$sampler"; do
  wait "$pid" || fail "a load loop (pid $pid) stopped with status $?"
done
# h2load's -D is its measuring time: it may run a little longer than the loops.
wait "$h2load_pid" || fail "h2load: $(tail -5 "$bench_tmp/h2load.txt" | tr '\n' ' ')"
touch "$stop_file"
wait "$watchers_pid" || fail "watchers: $(tail -5 "$bench_tmp/watchers.txt" | tr '\n' ' ')"

echo
echo "== Predict (h2load, 64 connections x 1 call in flight, one image per call)"
grep -E '^finished in|^requests:|^time for request:' "$bench_tmp/h2load.txt" || true
read -r h2_done h2_ok < <(awk '/^requests:/ {print $6, $8}' "$bench_tmp/h2load.txt")
[[ ${h2_done:-0} -gt 0 && ${h2_ok:-0} -eq ${h2_done:-0} ]] ||
  fail "h2load: ${h2_ok:-0} of ${h2_done:-0} calls answered with HTTP 200"

echo
echo "== Watchers: every event of every job, exactly once"
"$PYTHON" "$bench_dir/soak_watchers.py" check "$cli_bin" "$server" "$jobs_file" "$bench_tmp" \
  "$watchers" | tee "$bench_tmp/check.txt" || fail "watchers: $(grep FAIL "$bench_tmp/check.txt" | head -3 | tr '\n' ' ')"

echo
echo "== RPCs the server counted (classifier_rpcs_total), by method and code"
metrics_text "$metrics" | { grep '^classifier_rpcs_total{' || true; } |
  sed 's/^classifier_rpcs_total//' | sort >"$bench_tmp/rpcs.txt"
cat "$bench_tmp/rpcs.txt"
# Every code but OK is unexpected, except the streams their clients dropped: the watchers'
# WatchJob and the Train of `train --detach`, which leaves once it has the job's id.
awk '$1 !~ /code="OK"/ && !($1 ~ /method="(WatchJob|Train)"/ && $1 ~ /code="CANCELLED"/) && $2 > 0' \
  "$bench_tmp/rpcs.txt" | while read -r labels count; do
  fail "the server answered $count RPCs with $labels"
done
predict_ok=$(awk '$1 ~ /method="Predict"/ && $1 ~ /code="OK"/ {print $2}' "$bench_tmp/rpcs.txt")
[[ ${predict_ok:-0} -ge ${h2_ok:-1} ]] || fail "Predict: ${predict_ok:-0} OK in the server's count, h2load got ${h2_ok:-0} answers"

echo
echo "== The server over time (every 2 s: seconds, RSS kB, open fds, threads, anonymous and file kB)"
warm_up=$((seconds / 4 > 20 ? seconds / 4 : 20))
awk -v w="$warm_up" -v fd_slack="$fd_slack" -v thread_slack="$thread_slack" '
  function median(a, n,    i, j, t) {
    for (i = 2; i <= n; ++i) for (j = i; j > 1 && a[j - 1] > a[j]; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  $1 >= w { ++n; t[n] = $1; rss[n] = $2; fds[n] = $3; thr[n] = $4; anon[n] = $5; file[n] = $6 }
  END {
    if (n < 6) { print "FAIL only " n " samples after the warm-up"; exit }
    k = int(n / 4); if (k < 3) k = 3
    for (i = 1; i <= k; ++i) { r0[i] = rss[i]; f0[i] = fds[i]; h0[i] = thr[i] }
    for (i = 1; i <= k; ++i) { r1[i] = rss[n - k + i]; f1[i] = fds[n - k + i]; h1[i] = thr[n - k + i] }
    a = median(r0, k); b = median(r1, k); fa = median(f0, k); fb = median(f1, k)
    ha = median(h0, k); hb = median(h1, k)
    growth = 100 * (b - a) / a
    printf "after the warm-up (%d s): %d samples; first %d vs last %d (medians)\n", w, n, k, k
    printf "RSS %.1f -> %.1f MB (%+.2f%%, limit +5%%)\n", a / 1024, b / 1024, growth
    printf "open fds %d -> %d (slack %d), threads %d -> %d (slack %d)\n", fa, fb, fd_slack, ha, hb, thread_slack
    for (i = 1; i <= k; ++i) { a0[i] = anon[i]; a1[i] = anon[n - k + i]; l0[i] = file[i]; l1[i] = file[n - k + i] }
    printf "of which anonymous %.1f -> %.1f MB, file-backed %.1f -> %.1f MB\n", median(a0, k) / 1024, median(a1, k) / 1024, median(l0, k) / 1024, median(l1, k) / 1024
    if (growth >= 5) print "FAIL RSS grew " growth "%"
    if (fb - fa > fd_slack) print "FAIL open fds grew from " fa " to " fb
    if (hb - ha > thread_slack) print "FAIL threads grew from " ha " to " hb
  }' "$bench_tmp/samples.txt" | tee "$bench_tmp/flat.txt"
{ grep '^FAIL' "$bench_tmp/flat.txt" || true; } | while read -r line; do fail "${line#FAIL }"; done
echo "(all samples: $(wc -l <"$bench_tmp/samples.txt"); first: $(head -1 "$bench_tmp/samples.txt"); last: $(tail -1 "$bench_tmp/samples.txt"))"

echo
echo "== Work done"
echo "training jobs: $(wc -l <"$jobs_file"); import/export/delete rounds: $(cat "$bench_tmp/weights_rounds.txt" 2>/dev/null || echo 0)"
stop_server "$server_pid"
grep -q 'shutdown complete' "$bench_tmp/soak.log" ||
  fail "no clean stop on SIGTERM: the log ends $(tail -2 "$bench_tmp/soak.log" | tr '\n' ' ')"

if [[ -n ${SOAK_OUT:-} ]]; then
  mkdir -p "$SOAK_OUT"
  cp "$bench_tmp/samples.txt" "$bench_tmp/h2load.txt" "$bench_tmp/soak.log" "$bench_tmp/rpcs.txt" \
    "$SOAK_OUT/"
fi
if [[ -s $failures ]]; then
  echo
  echo "soak: FAIL ($(wc -l <"$failures") unexpected outcomes)"
  sed 's/^/  /' "$failures" | head -40
  exit 1
fi
echo "soak: PASS"
