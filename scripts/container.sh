#!/usr/bin/env bash
# Builds and runs the project's container images with podman, on machines where a registry
# cannot be reached and on old kernels, with the same Dockerfile and Compose files Docker users
# use unchanged (`docker build .`, `docker compose -f docker/compose.yaml up`).
#
#   scripts/container.sh base [bookworm|trixie]...  the local Debian base images (default bookworm)
#   scripts/container.sh build                      base + images classifier:cpu,
#                                                   classifier-fetch-data:cpu, and the
#                                                   local overrides' classifier-prometheus:local
#                                                   and classifier-postgres:local (layers cached)
#   scripts/container.sh podman ARGS...             podman with this machine's settings
#   scripts/container.sh compose ARGS...            podman-compose with them, e.g.
#       scripts/container.sh compose -f docker/compose.yaml -f docker/compose.local.yaml up -d
#   scripts/container.sh env                        prints the settings for your own shell
#
# What it adapts, and why:
#   - Base images: the Dockerfiles start FROM debian:bookworm(-slim). When podman has no such
#     image and cannot pull one (no registry), `base` makes it: debootstrap --variant=minbase
#     from the apt mirror this machine already uses (its apt sources, or
#     $CLASSIFIER_DEBIAN_MIRROR), imported as debian:bookworm and debian:bookworm-slim. Builds
#     then run with --pull=never and --network host, so apt inside reaches the same mirror.
#   - Engine settings: on a cgroup v1 machine crun refuses to start containers and its
#     setrlimit of the file limit is refused: docker/podman/containers.conf (runc, cgroupfs,
#     no default ulimits) is then used through $CONTAINERS_CONF, for this script's podman only;
#     nothing under /etc is changed.
#   - Image format: --format docker, since the OCI format drops HEALTHCHECK.
#
# Needs podman, runc, podman-compose and debootstrap: `scripts/install-deps.sh container`.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo
# The Dockerfile's variant (cpu or gpu) and the tag the images get (the variant by default).
readonly variant=${CLASSIFIER_VARIANT:-cpu}
readonly image_tag=${CLASSIFIER_IMAGE_TAG:-$variant}

die() { echo "container.sh: $*" >&2; exit 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# The engine settings this machine needs, exported for podman and podman-compose.
configure_engine() {
  command -v podman >/dev/null || die "podman is not installed: scripts/install-deps.sh container"
  if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs && -z ${CONTAINERS_CONF:-} ]]; then
    export CONTAINERS_CONF=$repo/docker/podman/containers.conf
  fi
}

# The mirror apt uses here: the first URIs line of a deb822 source, else the first deb line.
apt_mirror() {
  if [[ -n ${CLASSIFIER_DEBIAN_MIRROR:-} ]]; then echo "$CLASSIFIER_DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v -- -security | head -1)
  [[ -n $uri ]] || uri=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
    /etc/apt/sources.list 2>/dev/null | grep -v -- -security | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# make_base SUITE: debian:SUITE and debian:SUITE-slim, pulled when a registry answers, else
# debootstrapped. The rootfs gets the deb822 sources the official image has (the release, its
# updates and its security suite), pointing at this machine's mirror.
make_base() {
  local suite=$1 mirror rootfs
  if podman image exists "debian:$suite" && podman image exists "debian:$suite-slim"; then
    echo "container.sh: debian:$suite and debian:$suite-slim are present"
    return
  fi
  if timeout 60 podman pull -q "docker.io/library/debian:$suite" >/dev/null 2>&1 &&
    timeout 60 podman pull -q "docker.io/library/debian:$suite-slim" >/dev/null 2>&1; then
    podman tag "docker.io/library/debian:$suite" "debian:$suite"
    podman tag "docker.io/library/debian:$suite-slim" "debian:$suite-slim"
    echo "container.sh: pulled debian:$suite and debian:$suite-slim"
    return
  fi
  command -v debootstrap >/dev/null || die "no registry answers and debootstrap is not installed: scripts/install-deps.sh container"
  mirror=$(apt_mirror)
  echo "container.sh: no registry answers; debootstrapping $suite from $mirror (about a minute)"
  rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/classifier-rootfs-XXXXXX")
  # shellcheck disable=SC2064  # the path is fixed now, on purpose.
  trap "as_root rm -rf '$rootfs'" RETURN
  as_root debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; die "debootstrap $suite failed (log above)"; }
  rm -f "$rootfs.log"
  local security_mirror=${mirror%/debian}/debian-security
  as_root rm -f "$rootfs/etc/apt/sources.list"
  as_root tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<SOURCES
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # As in the official image: apt keeps no downloaded packages or caches in a layer, and
  # fetches no translations.
  as_root tee "$rootfs/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
  as_root find "$rootfs/var/cache/apt" "$rootfs/var/lib/apt/lists" -type f -delete
  as_root tar -C "$rootfs" -c . | podman import -q - "debian:$suite" >/dev/null
  podman tag "debian:$suite" "debian:$suite-slim"
  echo "container.sh: made debian:$suite and debian:$suite-slim"
}

# build_images: the runtime image and the data fetcher's, from the repository's Dockerfile, and
# Prometheus and PostgreSQL from Debian's packages for the compose files' local overrides.
build_images() {
  local target image
  for target in runtime fetch-data; do
    image=classifier:$image_tag
    [[ $target == fetch-data ]] && image=classifier-fetch-data:$image_tag
    echo "container.sh: building $image (target $target)"
    podman build --format docker --pull=never --network host --layers \
      --build-arg "CLASSIFIER_VARIANT=$variant" --target "$target" -t "$image" \
      -f "$repo/Dockerfile" "$repo"
  done
  for image in prometheus postgres; do
    echo "container.sh: building classifier-$image:local"
    podman build --format docker --pull=never --network host --layers -t "classifier-$image:local" \
      -f "$repo/docker/$image.Dockerfile" "$repo/docker"
  done
}

command=${1:-}
[[ $# -gt 0 ]] && shift
case "$command" in
  base)
    configure_engine
    suites=("$@")
    ((${#suites[@]})) || suites=(bookworm)
    for suite in "${suites[@]}"; do make_base "$suite"; done
    ;;
  build)
    configure_engine
    make_base bookworm
    build_images
    ;;
  podman) configure_engine; exec podman "$@" ;;
  compose)
    configure_engine
    command -v podman-compose >/dev/null || die "podman-compose is not installed: scripts/install-deps.sh container"
    exec podman-compose "$@"
    ;;
  env)
    configure_engine
    if [[ -n ${CONTAINERS_CONF:-} ]]; then echo "export CONTAINERS_CONF=$CONTAINERS_CONF"; fi
    ;;
  *)
    echo "usage: $0 base [SUITE...] | build | podman ARGS... | compose ARGS... | env" >&2
    exit 2
    ;;
esac
