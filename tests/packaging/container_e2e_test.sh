#!/usr/bin/env bash
# The container image, built and run for real with podman (scripts/container.sh): the image's
# own HEALTHCHECK passes; the server runs as the unprivileged user on a read-only root with
# named volumes; from the host, the real CLI trains through the published port, predicts and
# exports; a data volume without MNIST gets FAILED_PRECONDITION naming fetch-data until the
# fetch-data image fills it; a restarted container keeps its models; SIGTERM drains within
# the stop grace period with exit code 0; a read-only state volume, a root file system the
# server cannot write and a host port already taken each stop with a clear message.
# Prints `figure:` lines (image size, start to SERVING, idle memory, build time).
#
# Skipped (77) where podman is absent (scripts/install-deps.sh container installs it) or
# CLASSIFIER_CONTAINER_TEST=0 (tests/packaging/container_lib.sh). The first build takes 10-20
# minutes; podman keeps the layers, so a later run after a source change costs the compile
# only, and one after a change to tests or docs nothing (.dockerignore).
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/container_lib.sh"

name=classifier-e2e-$$
volumes_at_start=$(pod volume ls -q | sort)
state_volume=$name-state
data_volume=$name-data
container_cleanup() {
  # -v: the anonymous volumes of the containers started without named ones go too.
  pod rm -f -i -v -t 0 "$name" "$name-ro" "$name-rootfs" "$name-port" >/dev/null 2>&1 || true
  pod volume rm -f "$state_volume" "$data_volume" >/dev/null 2>&1 || true
  cleanup
}
trap container_cleanup EXIT

# exited NAME: the container has stopped.
exited() { [[ $(pod inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == false ]]; }

build_images
ok "scripts/container.sh build: classifier:cpu and classifier-fetch-data:cpu"
size_bytes=$(pod image inspect -f '{{.Size}}' classifier:cpu)
echo "figure: runtime image classifier:cpu $((size_bytes / 1000000)) MB"
check "the runtime image is under 1 GB ($((size_bytes / 1000000)) MB)" test "$size_bytes" -lt 1000000000
check "the runtime image holds no Node.js (the fetcher's image does)" \
  bash -c "! '$container_sh' podman run --rm --entrypoint sh classifier:cpu -c 'command -v node || command -v npm || command -v curl'"

port=$(free_port)
metrics_port=$(free_port)
pod volume create "$state_volume" >/dev/null
pod volume create "$data_volume" >/dev/null
run_server() {  # run_server: the server container as a user runs it, detached.
  pod run -d --name "$name" --read-only -p "127.0.0.1:$port:50051" -p "127.0.0.1:$metrics_port:9464" \
    -v "$state_volume:/var/lib/classifier/state" -v "$data_volume:/var/lib/classifier/data" \
    --stop-timeout 30 classifier:cpu >/dev/null
}
server_addr=127.0.0.1:$port
started=$(date +%s.%N)
run_server
serving() { [[ $(cli health 2>/dev/null) == SERVING ]]; }
check "the server answers SERVING through the published port" wait_for 120 serving
echo "figure: container start to SERVING $(python3 -c "import time; print(f'{time.time() - $started:.2f}')") s"
check "the image's own HEALTHCHECK passes (podman healthcheck run)" pod healthcheck run "$name"
check "the server runs as the unprivileged user classifier (uid 10001)" \
  bash -c "[[ \$('$container_sh' podman exec '$name' id -u) == 10001 && \$('$container_sh' podman top '$name' user | tail -n +2 | sort -u) == classifier ]]"
check "the root file system is read-only" \
  bash -c "! '$container_sh' podman exec '$name' touch /usr/local/bin/x 2>/dev/null"

# No MNIST in the data volume yet: Train says what to run.
status=0; cli train --epochs 1 >"$work/no-mnist.txt" 2>&1 || status=$?
check "train on an empty data volume: FAILED_PRECONDITION naming fetch-data (exit $status)" \
  bash -c "[[ $status == 1 ]] && grep -q 'FAILED_PRECONDITION' '$work/no-mnist.txt' && grep -q 'fetch-data' '$work/no-mnist.txt'"

# The fetch-data image fills the same volume (a local copy when the shared data is here, else
# the fetcher's own sources).
fetch_args=("${host_trust_args[@]}")
if [[ -f $shared_dir/data/mnist/train-images-idx3-ubyte.gz ]]; then
  fetch_args+=(-v "$(cd "$shared_dir/data/mnist" && pwd):/mnist:ro" -e CLASSIFIER_MNIST_SOURCE=/mnist)
fi
check "the fetch-data image puts MNIST into the data volume" \
  pod run --rm --network host "${fetch_args[@]}" -v "$data_volume:/var/lib/classifier/data" classifier-fetch-data:cpu

# Train through the published port with the host's CLI, predict, export.
cli train --epochs 1 --seed 1 >"$work/train.txt" 2>&1 || true
model=$(sed -n 's/.*succeeded: model \(model-[0-9a-f]*\),.*/\1/p' "$work/train.txt")
accuracy=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$work/train.txt")
check "one epoch trains in the container (test accuracy ${accuracy:-none}%)" \
  python3 -c "import sys; sys.exit(0 if float('${accuracy:-0}') > 80 else 1)"
mnist_copy=$work/mnist
mkdir -p "$mnist_copy"
pod run --rm -v "$data_volume:/data:ro" --entrypoint sh classifier:cpu -c 'cat /data/mnist/t10k-images-idx3-ubyte.gz' >"$mnist_copy/images.gz"
pod run --rm -v "$data_volume:/data:ro" --entrypoint sh classifier:cpu -c 'cat /data/mnist/t10k-labels-idx1-ubyte.gz' >"$mnist_copy/labels.gz"
"$idx_to_png_bin" "$mnist_copy/images.gz" "$mnist_copy/labels.gz" "$work/png" 10 >"$work/pngs.txt"
mapfile -t pngs < <(cut -d' ' -f1 "$work/pngs.txt")
cli predict --model "$model" "${pngs[@]}" >"$work/predict.txt" 2>&1 || true
correct=0
while read -r path label; do
  grep -q "^$path: $label (p=" "$work/predict.txt" && correct=$((correct + 1))
done <"$work/pngs.txt"
check "predict through the port: at least 7 of 10 test digits right ($correct)" test "$correct" -ge 7
cli export --model "$model" --out "$work/model.pth" >"$work/export.txt" 2>&1 || true
sha=$(sed -n 's/.*sha256 \([0-9a-f]*\),.*/\1/p' "$work/export.txt")
check "export writes the weights with the announced SHA-256" \
  bash -c "[[ -n '$sha' && \$(sha256sum '$work/model.pth' | cut -d' ' -f1) == '$sha' ]]"

memory=$(pod stats --no-stream --format '{{.MemUsage}}' "$name" 2>/dev/null | head -1)
echo "figure: memory of the container after one epoch, idle: ${memory:-unknown}"

# SIGTERM drains and exits 0 within the grace period; the restarted container keeps the model.
stop_start=$SECONDS
pod stop -t 30 "$name" >/dev/null
stop_seconds=$((SECONDS - stop_start))
exit_code=$(pod inspect -f '{{.State.ExitCode}}' "$name")
check "SIGTERM: exit code 0 ($exit_code) within the 30 s grace period (${stop_seconds} s)" \
  bash -c "[[ $exit_code == 0 ]] && ((stop_seconds < 30))"
check "the log says the server drained" bash -c "'$container_sh' podman logs '$name' 2>&1 | grep -qi 'drain'"
pod start "$name" >/dev/null
check "the restarted container serves again" wait_for 120 serving
check "the restarted container keeps the model (named volumes)" \
  bash -c "'$cli_bin' --server '$server_addr' models --all | grep -q '^$model '"
pod rm -f -v -t 30 "$name" >/dev/null

# Bad starts: each a clear message and a non-zero exit.
pod run -d --name "$name-ro" -v "$state_volume:/var/lib/classifier/state:ro" \
  -v "$data_volume:/var/lib/classifier/data" classifier:cpu >/dev/null
wait_for 60 exited "$name-ro" || true
ro_exit=$(pod inspect -f '{{.State.ExitCode}}' "$name-ro")
pod logs "$name-ro" >"$work/ro.log" 2>&1 || true
check "a read-only state volume: non-zero exit ($ro_exit), the log names the state folder" \
  bash -c "[[ $ro_exit != 0 ]] && grep -q '/var/lib/classifier/state' '$work/ro.log'"
pod run -d --name "$name-rootfs" --read-only classifier:cpu \
  classifier-server --listen 0.0.0.0:50051 --state_dir /home/classifier/state >/dev/null
wait_for 60 exited "$name-rootfs" || true
rootfs_exit=$(pod inspect -f '{{.State.ExitCode}}' "$name-rootfs")
pod logs "$name-rootfs" >"$work/rootfs.log" 2>&1 || true
check "no volume for the state on a read-only root: non-zero exit ($rootfs_exit), the log names the folder" \
  bash -c "[[ $rootfs_exit != 0 ]] && grep -q '/home/classifier/state' '$work/rootfs.log'"
python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(600)' >"$work/taken-port" &
holder=$!
wait_for 10 test -s "$work/taken-port"
taken=$(cat "$work/taken-port")
status=0; pod run -d --name "$name-port" -p "127.0.0.1:$taken:50051" classifier:cpu >"$work/port.txt" 2>&1 || status=$?
kill "$holder" 2>/dev/null || true
check "a host port already taken: podman refuses to start it (exit $status), naming the address" \
  bash -c "[[ $status != 0 ]] && grep -q 'address already in use' '$work/port.txt'"

pod rm -f -i -v -t 0 "$name-ro" "$name-rootfs" "$name-port" >/dev/null 2>&1
pod volume rm -f "$state_volume" "$data_volume" >/dev/null 2>&1
left_containers=$(pod ps -a -q --filter "name=^$name")
left_volumes=$(comm -13 <(echo "$volumes_at_start") <(pod volume ls -q | sort) | tr '\n' ' ')
check "removed, the test leaves no container (${left_containers:-none}) and no volume (${left_volumes:-none})" \
  test -z "$left_containers$left_volumes"

finish
