#!/usr/bin/env bash
# docker/replicas.compose.yaml brought up for real with podman-compose, with
# docker/replicas.compose.local.yaml's PostgreSQL built from Debian's package: three replicas
# on one database behind HAProxy. Through the balancer's published port the real CLI trains a
# job to success and every replica reports the same model; with one replica killed, calls
# through the balancer keep succeeding and a second job still trains; `down -v` leaves nothing.
#
# Skipped (77) where podman or podman-compose is absent, or CLASSIFIER_CONTAINER_TEST=0
# (tests/packaging/container_lib.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/container_lib.sh"

export CLASSIFIER_GRPC_PORT
CLASSIFIER_GRPC_PORT=$(free_port)
use_compose_project docker/replicas.compose.yaml docker/replicas.compose.local.yaml
build_images
# podman-compose 1.0 starts services in dependency order but does not wait for PostgreSQL's
# healthcheck: a replica that finds no database exits and its restart policy starts it again.
compose_up postgres replica-1 replica-2 replica-3 balancer

server_addr=127.0.0.1:$CLASSIFIER_GRPC_PORT
# in_replica N ARGS...: the CLI inside replica N, against that replica alone.
in_replica() {
  local n=$1; shift
  pod exec "${project}_replica-${n}_1" classifier-cli --server 127.0.0.1:50051 "$@"
}
serving() { [[ $(cli health 2>/dev/null) == SERVING ]]; }
replica_serving() { [[ $(in_replica "$1" health 2>/dev/null) == SERVING ]]; }
check "the balancer answers SERVING through the published port" wait_for 180 serving
for n in 1 2 3; do
  check "replica $n serves" wait_for 180 replica_serving "$n"
done

cli train --dataset fashion-mnist --epochs 1 --seed 4 >"$work/train1.txt" 2>&1 || true
model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/train1.txt")
check "a job trains to success through the balancer (${model:-no model})" test -n "$model"
has_model() { in_replica "$1" models --all | grep -q "^$model "; }
for n in 1 2 3; do
  check "replica $n lists the model (one PostgreSQL store)" wait_for 30 has_model "$n"
done

# One replica dies; the balancer stops sending it calls and the others keep serving.
pod kill "${project}_replica-2_1" >/dev/null
failures=0
for _ in $(seq 1 20); do
  cli models --limit 1 >/dev/null 2>&1 || failures=$((failures + 1))
done
check "20 calls through the balancer with replica 2 killed: none fails ($failures)" test "$failures" -eq 0
cli train --dataset fashion-mnist --epochs 1 --seed 5 >"$work/train2.txt" 2>&1 || true
check "a second job trains to success with replica 2 down" grep -q 'succeeded: model' "$work/train2.txt"

compose_down_leaves_nothing
finish
