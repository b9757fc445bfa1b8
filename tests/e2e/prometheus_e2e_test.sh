#!/usr/bin/env bash
# Debian's real Prometheus scrapes the real server on loopback while a short training job runs;
# its HTTP API then shows the epoch gauge advancing and the RPC counters.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  bad "Debian's prometheus package is needed (scripts/install-deps.sh installs it)"
  finish
fi
fetch_mnist "$work/data"
start_server "$work/data" "$work/state"
start_prometheus
check "promtool accepts the scrape config" promtool check config "$work/prometheus.yml"

query() { prometheus_query "$prom_port" "$1"; }
for _ in $(seq 1 100); do [[ $(query 'up{job="classifier"}') == 1 ]] && break; sleep 0.2; done
check "Prometheus scrapes the server (up == 1)" test "$(query 'up{job="classifier"}')" = 1

# Watch the epoch gauge while a 4-epoch job runs: it must take more than one value, ending at 4.
cli train --epochs 4 --seed 2 >/dev/null &
trainer=$!
seen=""
while kill -0 "$trainer" 2>/dev/null; do
  value=$(query classifier_training_epoch)
  [[ -n $value && " $seen " != *" $value "* ]] && seen="$seen $value"
  sleep 0.5
done
wait "$trainer"
sleep 2.5  # Two more scrapes.
final=$(query classifier_training_epoch)
[[ " $seen " != *" $final "* ]] && seen="$seen $final"
echo "epoch gauge values seen by Prometheus:$seen"
check "the epoch gauge advanced during the job (seen:$seen)" bash -c "[[ '$final' == 4 && \$(wc -w <<<'$seen') -ge 2 ]]"
check "Prometheus has the Train RPC counted" test -n "$(query 'classifier_rpcs_total{method="Train",code="OK"}')"
check "and process memory" test -n "$(query process_resident_memory_bytes)"
kill "$prom_pid" 2>/dev/null || true
stop_server
finish
