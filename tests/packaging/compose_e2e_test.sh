#!/usr/bin/env bash
# docker/compose.yaml brought up for real with podman-compose (scripts/container.sh compose),
# with docker/compose.local.yaml's Prometheus built from Debian's package: the server serves
# through its published port, Prometheus scrapes it over the Compose network (its HTTP API
# shows the target up and a training job's epoch gauge moving), and `down -v` leaves no
# container, volume or network of the project behind. Grafana has no Debian package and no
# registry is reachable here: it is not started (its dashboard is checked by
# packaging.grafana_dashboard).
#
# Skipped (77) where podman or podman-compose is absent, or CLASSIFIER_CONTAINER_TEST=0.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

if [[ ${CLASSIFIER_CONTAINER_TEST:-1} == 0 ]]; then
  echo "SKIP: CLASSIFIER_CONTAINER_TEST=0"
  exit 77
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1; then
  echo "SKIP: podman and podman-compose are not installed (scripts/install-deps.sh container)"
  exit 77
fi
container_sh=$CLASSIFIER_SOURCE_DIR/scripts/container.sh
pod() { "$container_sh" podman "$@"; }
if ! pod info >/dev/null 2>"$work/podman-info.txt"; then
  echo "SKIP: podman cannot run here: $(tail -1 "$work/podman-info.txt")"
  exit 77
fi

project=classifier-compose-$$
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export CLASSIFIER_GRPC_PORT PROMETHEUS_PORT
CLASSIFIER_GRPC_PORT=$(free_port)
PROMETHEUS_PORT=$(free_port)
compose() {
  (cd "$CLASSIFIER_SOURCE_DIR" &&
    "$container_sh" compose -p "$project" -f docker/compose.yaml -f docker/compose.local.yaml "$@")
}
project_containers() { pod ps -a -q --filter "label=io.podman.compose.project=$project"; }
project_volumes() { pod volume ls -q --filter "label=io.podman.compose.project=$project"; }
compose_cleanup() {
  compose down -v >/dev/null 2>&1 || true
  # podman-compose 1.0's down leaves the project's network.
  pod network rm -f "${project}_default" >/dev/null 2>&1 || true
  cleanup
}
trap compose_cleanup EXIT
wait_for() {  # wait_for SECONDS COMMAND...: polls every half second until it succeeds.
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

if ! "$container_sh" build >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log"
  bad "scripts/container.sh build"
  finish
fi
if ! compose up -d classifier prometheus >"$work/up.log" 2>&1; then
  tail -40 "$work/up.log"
  bad "podman-compose up -d classifier prometheus"
  finish
fi
ok "podman-compose up -d classifier prometheus"

server_addr=127.0.0.1:$CLASSIFIER_GRPC_PORT
serving() { [[ $(cli health 2>/dev/null) == SERVING ]]; }
check "the server answers SERVING through the published port" wait_for 120 serving

query() {  # query PROMQL: prints the first sample's value, or nothing.
  python3 - "$PROMETHEUS_PORT" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/api/v1/query?query=" + urllib.parse.quote(sys.argv[2])
try:
    result = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
    print(result[0]["value"][1] if result else "")
except Exception:
    print("")
PY
}
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

compose down -v >"$work/down.log" 2>&1 || { tail -20 "$work/down.log"; bad "podman-compose down -v"; }
left_containers=$(project_containers)
left_volumes=$(project_volumes)
check "down -v: no container of the project is left (${left_containers:-none})" test -z "$left_containers"
check "down -v: no volume of the project is left (${left_volumes:-none})" test -z "$left_volumes"
finish
