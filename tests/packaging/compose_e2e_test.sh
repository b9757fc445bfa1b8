#!/usr/bin/env bash
# docker/compose.yaml brought up for real with podman-compose (scripts/container.sh compose),
# with docker/compose.local.yaml's Prometheus built from Debian's package: the server serves
# through its published port, Prometheus scrapes it over the Compose network (its HTTP API
# shows the target up and a training job's epoch gauge moving), and `down -v` leaves no
# container, volume or network of the project behind. Grafana has no Debian package and no
# registry is reachable here: it is not started (its dashboard is checked by
# packaging.grafana_dashboard).
#
# Skipped (77) where podman or podman-compose is absent, or CLASSIFIER_CONTAINER_TEST=0
# (tests/packaging/container_lib.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/container_lib.sh"

export CLASSIFIER_GRPC_PORT CLASSIFIER_HTTP_PORT PROMETHEUS_PORT
CLASSIFIER_GRPC_PORT=$(free_port)
CLASSIFIER_HTTP_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
use_compose_project docker/compose.yaml docker/compose.local.yaml
build_images
compose_up classifier prometheus

server_addr=127.0.0.1:$CLASSIFIER_GRPC_PORT
serving() { [[ $(cli health 2>/dev/null) == SERVING ]]; }
check "the server answers SERVING through the published port" wait_for 120 serving

query() { prometheus_query "$PROMETHEUS_PORT" "$1"; }
scraped() { [[ $(query 'up{job="classifier"}') == 1 ]]; }
check "Prometheus scrapes classifier:9464 over the Compose network (up == 1)" wait_for 120 scraped

# The epoch gauge while a job runs on the Fashion-MNIST the image carries: it must take more
# than one value, ending at the job's last epoch (the scrape interval is 5 s).
epochs=6
cli train --dataset fashion-mnist --epochs "$epochs" --seed 3 >"$work/train.txt" 2>&1 &
trainer=$!
seen=""
note_value() {
  local value
  value=$(query classifier_training_epoch)
  [[ -n $value && " $seen " != *" $value "* ]] && seen="$seen $value"
  return 0
}
while kill -0 "$trainer" 2>/dev/null; do note_value; sleep 0.5; done
train_status=0; wait "$trainer" || train_status=$?
check "the Fashion-MNIST job succeeds in the stack (exit $train_status)" \
  bash -c "[[ $train_status == 0 ]] && grep -q 'succeeded: model' '$work/train.txt'"
final_seen() { note_value; [[ " $seen " == *" $epochs "* ]]; }
wait_for 60 final_seen || true
echo "epoch gauge values seen by Prometheus:$seen"
check "the epoch gauge moved during the job and reached $epochs (seen:$seen)" \
  bash -c "[[ ' $seen ' == *' $epochs '* && \$(wc -w <<<'$seen') -ge 2 ]]"

# The web dashboard through its published port: the page, and the finished job in the JSON API.
check "the dashboard page is served on the published port $CLASSIFIER_HTTP_PORT" \
  bash -c "curl -fsS http://127.0.0.1:$CLASSIFIER_HTTP_PORT/ | grep -q '<title>Classifier'"
check "GET /api/v1/jobs lists the job as JOB_STATE_SUCCEEDED" \
  bash -c "curl -fsS http://127.0.0.1:$CLASSIFIER_HTTP_PORT/api/v1/jobs | grep -q JOB_STATE_SUCCEEDED"

compose_down_leaves_nothing
finish
