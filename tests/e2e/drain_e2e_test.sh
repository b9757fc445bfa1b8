#!/usr/bin/env bash
# The drain of the real binary: classifier-server with a trained model serves four Predict
# loops (tests/e2e/drain_load_client, 2,000 images a call); the client sends SIGTERM itself and
# accounts for every call: those in flight at SIGTERM complete OK, later ones are refused with
# UNAVAILABLE, nothing else happens. Then: the server exits 0 after logging the drain, and the
# port is gone (health unreachable). Also: a Predict over --max_message_bytes is refused with a
# message that says the limit, and the CLI adds the flag and points to the streamed export.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
readonly load_bin=$CLASSIFIER_BINARY_DIR/tests/e2e/drain_load_client

fetch_mnist "$work/data"
# Generous: the server exits as soon as its calls are done; a sanitizer build needs minutes for
# 2,000-image Predicts that take a second here.
start_server "$work/data" "$work/state" --drain_timeout 300s
check "a one-epoch model trains" bash -c "'$cli_bin' --server '$server_addr' train --epochs 1 --seed 5 >'$work/train.txt' 2>&1"

status=0
"$load_bin" --server "$server_addr" --server_pid "$server_pid" --threads 4 --images 2000 \
  --warmup_seconds 2 >"$work/load.txt" 2>&1 || status=$?
cat "$work/load.txt"
check "every Predict in flight at SIGTERM completed OK, none failed (load client exit $status)" \
  test "$status" -eq 0
in_flight=$(sed -n 's/.* \([0-9]*\) in flight at SIGTERM.*/\1/p' "$work/load.txt")
failed=$(sed -n 's/.*; \([0-9]*\) failed$/\1/p' "$work/load.txt")
echo "drain figures: in flight at SIGTERM ${in_flight:-?}, failed ${failed:-?}"
check "calls were in flight at SIGTERM (${in_flight:-none})" test "${in_flight:-0}" -ge 1
check "no call failed (${failed:-?})" test "${failed:-1}" -eq 0

exit_status=0
wait "$server_pid" || exit_status=$?
server_pid=""
check "the server exits 0 after the drain (got $exit_status)" test "$exit_status" -eq 0
check "it logged the drain (health NOT_SERVING, refusing new calls)" \
  grep -q "shutting down: health NOT_SERVING, refusing new calls" "$server_log"
check "and its completion" grep -q "shutdown complete" "$server_log"
refused_in_log=$(grep -c "rpc Predict .*code 14" "$server_log" || true)
echo "the server refused $refused_in_log Predict calls with UNAVAILABLE while draining"
health_status=0
cli --timeout 2 health >"$work/health.txt" 2>&1 || health_status=$?
check "health is unreachable afterwards (exit $health_status: $(head -c 120 "$work/health.txt"))" \
  test "$health_status" -ne 0

# Message size: a Predict larger than --max_message_bytes, from the CLI (400 PNG digits) and
# from a bare gRPC client (2,000 raw images). gRPC itself refuses it before any handler runs:
# RESOURCE_EXHAUSTED with the limit in bytes; the CLI adds where the limit is set and that
# weights travel as a stream.
start_server "$work/data" "$work/state" --max_message_bytes 100000
"$idx_to_png_bin" "$work/data/mnist/t10k-images-idx3-ubyte.gz" \
  "$work/data/mnist/t10k-labels-idx1-ubyte.gz" "$work/png" 400 >/dev/null
status=0
cli predict "$work"/png/*.png >"$work/oversize-cli.txt" 2>&1 || status=$?
cat "$work/oversize-cli.txt"
check "an oversized predict fails (exit $status)" test "$status" -ne 0
check "with RESOURCE_EXHAUSTED" grep -q "RESOURCE_EXHAUSTED" "$work/oversize-cli.txt"
check "saying the limit (100000 bytes)" grep -q "vs. 100000" "$work/oversize-cli.txt"
check "naming the flag that sets it" grep -q -- "--max_message_bytes" "$work/oversize-cli.txt"
check "and pointing to the streamed export" grep -q "stream them in 1 MiB chunks (ExportWeights" \
  "$work/oversize-cli.txt"
"$load_bin" --server "$server_addr" --once_images 2000 >"$work/oversize.txt" 2>&1 || true
cat "$work/oversize.txt"
check "a bare client's oversized Predict is RESOURCE_EXHAUSTED (8) with the limit" \
  grep -q "^8: .*vs. 100000" "$work/oversize.txt"
check "the server still serves after refusing them" cli health
check "the server exits 0 on SIGTERM" stop_server
finish
