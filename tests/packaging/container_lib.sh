# Shared by the tests that build and run the images with podman (scripts/container.sh):
# the skip rules, podman with this machine's settings, the image build, and a Compose project
# of the test's own that is taken down, with its volumes and network, at exit.
# Source after tests/e2e/lib.sh. Exits 77 (skipped) where podman cannot run.

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

# host_trust_args: podman run arguments that give a container the host's CA bundle, for hosts
# whose way out (apt, npm, the MNIST mirrors) passes a TLS proxy with a CA of its own: curl
# reads the system bundle, Node.js and npm only their built-in roots plus NODE_EXTRA_CA_CERTS.
# Nothing where the host has no bundle.
host_trust_args=()
host_bundle=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
if [[ -r $host_bundle ]]; then
  host_trust_args=(-v "$host_bundle:/etc/ssl/certs/ca-certificates.crt:ro"
    -e NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    -e npm_config_cafile=/etc/ssl/certs/ca-certificates.crt)
fi

# wait_for SECONDS COMMAND...: polls the command every half second until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# build_images: scripts/container.sh build (layers cached); prints its time; fails the test
# with the build's last lines when it fails.
build_images() {
  local started=$SECONDS
  if ! "$container_sh" build >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log"
    bad "scripts/container.sh build"
    finish
  fi
  echo "figure: scripts/container.sh build took $((SECONDS - started)) s (layers cached between runs)"
}

# use_compose_project FILE...: `compose ARGS...` runs podman-compose on those files (relative to
# the repository) as a project of this test's own; at exit it is taken down with its volumes
# and its network (which podman-compose 1.0's `down` leaves).
use_compose_project() {
  compose_files=()
  local file
  for file in "$@"; do compose_files+=(-f "$file"); done
  project=classifier-test-$$
  trap 'compose down -v >/dev/null 2>&1 || true; pod network rm -f "${project}_default" >/dev/null 2>&1 || true; cleanup' EXIT
}
compose() {
  (cd "$CLASSIFIER_SOURCE_DIR" && "$container_sh" compose -p "$project" "${compose_files[@]}" "$@")
}
# compose_up SERVICE...: up -d, failing the test with podman-compose's last lines.
compose_up() {
  if ! compose up -d "$@" >"$work/up.log" 2>&1; then
    tail -40 "$work/up.log"
    bad "podman-compose up -d $*"
    finish
  fi
  ok "podman-compose up -d $*"
}
# compose_down_leaves_nothing: down -v, then no container and no volume of the project.
compose_down_leaves_nothing() {
  compose down -v >"$work/down.log" 2>&1 || { tail -20 "$work/down.log"; bad "podman-compose down -v"; }
  local containers volumes
  containers=$(pod ps -a -q --filter "label=io.podman.compose.project=$project")
  volumes=$(pod volume ls -q --filter "label=io.podman.compose.project=$project")
  check "down -v: no container of the project is left (${containers:-none})" test -z "$containers"
  check "down -v: no volume of the project is left (${volumes:-none})" test -z "$volumes"
}
