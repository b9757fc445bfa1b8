#!/usr/bin/env bash
# The whole test suite on Debian 13 (trixie): LibTorch 2.6, GCC 14, Abseil 20240722, gRPC 1.51,
# spdlog 1.15, GoogleTest 1.16, Compose 2. A Debian 13 root file system made with debootstrap
# from the mirror apt already uses, entered with chroot (a container without an image
# registry), this checkout bind-mounted at /src; inside, the same two commands as anywhere:
# scripts/install-deps.sh and scripts/test.sh, into build-trixie/. Not run by .ci/run (about
# 25 minutes on 2 cores, 7 of them the first install): developers run it before they stop.
#
#   sudo scripts/trixie.sh              everything; extra arguments go to ctest
#   sudo scripts/trixie.sh -R trainer   a part
#   sudo scripts/trixie.sh --exec CMD...  CMD in /src of the prepared root (no install, no tests;
#                                       e.g. bench/libtorch_lines.sh's 2.6 side)
#   TRIXIE_ROOT=/var/cache/x scripts/trixie.sh   where the root file system lives (kept between
#                                       runs: the second run installs nothing)
#
# Needs root (debootstrap, mount, chroot) and debootstrap (apt-get install debootstrap).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
root=${TRIXIE_ROOT:-/var/cache/classifier/trixie}
exec_only=0
if [[ ${1:-} == --exec ]]; then
  exec_only=1
  shift
  [[ $# -gt 0 ]] || { echo "usage: $0 --exec COMMAND [ARG...]" >&2; exit 2; }
fi

fail() {
  echo "trixie.sh: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, mount and chroot): run it with sudo"
command -v debootstrap >/dev/null || fail "debootstrap is missing: apt-get install debootstrap"
# The mirror this machine's apt already uses (a machine without internet reaches only that one).
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[[ -n $mirror ]] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
mirror=${mirror:-http://deb.debian.org/debian}

if [[ $exec_only -eq 1 && ! -x $root/usr/bin/cmake ]]; then
  fail "$root is not prepared: run scripts/trixie.sh once (it installs Debian 13's packages)"
fi
if [[ ! -x $root/usr/bin/apt-get ]]; then
  echo "trixie.sh: making a Debian 13 root file system in $root from $mirror (about 90 s)"
  mkdir -p "$root"
  debootstrap --variant=minbase trixie "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    fail "debootstrap from $mirror failed (no route to the mirror?); see $root.debootstrap.log"
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror trixie main contrib non-free
deb $mirror trixie-updates main contrib non-free
EOF
fi

mounts=()
unmount_all() {  # This run's mounts (not those of a run beside it); lazily where still busy.
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" 2>/dev/null || true
  done
}
trap unmount_all EXIT
# Stopped (TERM, INT, HUP): the command inside stops too, then the mounts are undone. Bash runs
# no EXIT trap for a signal it does not trap, and runs a trap only once its foreground command
# ends: so run() starts the command in the background in a process group of its own and waits.
inside=
stop() {
  if [[ -n $inside ]]; then
    kill -TERM -- "-$inside" 2>/dev/null || true
    wait "$inside" 2>/dev/null || true
  fi
  exit "$1"
}
trap 'stop 143' TERM
trap 'stop 130' INT
trap 'stop 129' HUP
bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && return
  mount --bind "$1" "$2"
  mounts+=("$2")
  if [[ ${3:-} == ro ]]; then mount -o remount,bind,ro "$2"; fi
}
mountpoint -q "$root/proc" || { mount -t proc proc "$root/proc"; mounts+=("$root/proc"); }
for d in sys dev; do
  mountpoint -q "$root/$d" || { mount --rbind "/$d" "$root/$d"; mounts+=("$root/$d"); }
done
bind "$repo" "$root/src"
# The tests look for ../shared beside the checkout, as CI has it; they pass without it too.
if [[ -d $repo/../shared ]]; then bind "$repo/../shared" "$root/shared" ro; fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A machine whose HTTPS goes through a proxy with its own CA (npm, for buf) passes it on.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
if [[ -f /etc/npmrc ]]; then cp /etc/npmrc "$root/etc/npmrc"; fi

run() {  # run COMMAND...: inside the root; its status is run's
  setsid chroot "$root" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    LANG=C.UTF-8 CLASSIFIER_BUILD_DIR=build-trixie "$@" <&0 &
  inside=$!
  wait "$inside"
}
if [[ $exec_only -eq 1 ]]; then
  run bash -c 'cd /src && "$@"' trixie "$@"  # Its status is the script's (set -e), mounts undone.
  exit 0
fi
run bash -c 'apt-get update -qq' || fail "apt-get update inside $root failed: is $mirror reachable?"
run bash -c 'cd /src && scripts/install-deps.sh' ||
  fail "installing Debian 13's packages failed (the message above names the package)"
if compgen -G "$root/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  run update-ca-certificates >/dev/null
fi
echo "trixie.sh: $(run dpkg-query -W -f='libtorch-dev ${Version}, ' libtorch-dev)$(run gcc --version | head -1)"
run bash -c 'cd /src && scripts/test.sh "$@"' trixie "$@"
