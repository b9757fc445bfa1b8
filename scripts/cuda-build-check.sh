#!/usr/bin/env bash
# Proves that the whole project (server, CLI, tests, bench) compiles and links against Debian
# 13's CUDA LibTorch (libtorch-cuda-dev 2.6, with NCCL and gloo-cuda as Debian builds them),
# then runs the tests that need no GPU. Everything happens in a Debian 13 root file system
# made with debootstrap and entered with chroot; the host's own build and tests are untouched.
#
#   sudo scripts/cuda-build-check.sh          # root fs in /var/tmp/classifier-trixie-cuda
#   sudo scripts/cuda-build-check.sh ROOTFS   # elsewhere; an existing one is reused as a cache
#
# Not run by CI: the first run downloads about 2.9 GB of packages (8.5 GB installed) and
# takes 10-14 minutes before the build (debootstrap 2, the packages 8-12), which takes about
# 20 more on 2 cores (a whole first run with the build folder kept: 20 minutes). Run it by
# hand after changing model/ or the CMake files, before stopping. Later runs reuse the root
# fs (only missing packages are installed) and the build folder.
#
# Needs root (debootstrap, mount, chroot), debootstrap on a first run, and the Debian mirror.
# Environment:
#   CLASSIFIER_DEBIAN_MIRROR  the mirror (default: the host's apt mirror, else deb.debian.org)
#   CLASSIFIER_CUDNN          none (default) or download, see below
#   CLASSIFIER_CUDA_TESTS     the ctest -R pattern (default: the LibTorch unit tests, which
#                             hold the CUDA ones: they skip without a GPU)
#   JOBS                      parallel compile jobs (default 2)
#
# cuDNN: Debian's libtorch-cuda-2.6 depends on nvidia-cudnn, whose postinst downloads cuDNN
# from developer.download.nvidia.com (see scripts/install-deps.sh). With the default
# CLASSIFIER_CUDNN=none nothing is downloaded, and since libtorch_cuda.so needs libcudnn.so.9
# to link and to load, this script compiles a stand-in libcudnn.so.9 inside the root fs (every
# function aborts with a message) and puts it on LD_LIBRARY_PATH for the build and the tests
# only. That is enough here, where no test reaches cuDNN (no GPU); it is never used elsewhere.
# CLASSIFIER_CUDNN=download installs the real cuDNN (and accepts NVIDIA's cuDNN license).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rootfs=${1:-/var/tmp/classifier-trixie-cuda}
jobs=${JOBS:-2}
cudnn=${CLASSIFIER_CUDNN:-none}
tests=${CLASSIFIER_CUDA_TESTS:-network_test|trainer_test|capturable_adam|cpu_kernels|augment_test|architecture_test|onnx_export_test}
build_dir=build-cuda
stub_dir=/opt/classifier-cudnn-stub
start=$(date +%s)

die() {
  echo "cuda-build-check: $*" >&2
  exit 1
}
step() { echo "== cuda-build-check [$(($(date +%s) - start)) s]: $*"; }

[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, mount and chroot need it): sudo $0 $*"
for tool in chroot mount umount mountpoint; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: install it (apt-get install util-linux coreutils)"
done
[[ $cudnn == none || $cudnn == download ]] || die "CLASSIFIER_CUDNN is none or download, not '$cudnn'"

# The mirror: the host's own apt mirror (the one this machine can reach), else Debian's.
mirror=${CLASSIFIER_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources \
    2>/dev/null | grep -v security | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
if command -v curl >/dev/null; then
  curl -fsS --max-time 30 -o /dev/null "$mirror/dists/trixie/Release" ||
    die "the mirror $mirror does not answer for trixie: check the network, or set CLASSIFIER_DEBIAN_MIRROR"
fi

# 1. The root file system, made once (about 2 minutes) and reused.
if [[ -f $rootfs/.classifier-bootstrapped ]]; then
  codename=$(. "$rootfs/etc/os-release" && echo "${VERSION_CODENAME:-}")
  [[ $codename == trixie ]] || die "$rootfs holds '$codename', not trixie: pass another folder"
  step "reusing the Debian 13 root fs in $rootfs"
else
  if [[ -d $rootfs ]] && [[ -n $(ls -A "$rootfs") ]]; then
    die "$rootfs exists but is not a finished root fs (an interrupted run?): remove it (rm -rf $rootfs) and run again"
  fi
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  step "debootstrap --variant=minbase trixie $rootfs $mirror"
  debootstrap --variant=minbase trixie "$rootfs" "$mirror" ||
    die "debootstrap failed (see above): the base system could not be made from $mirror; fix that, rm -rf $rootfs, run again"
  touch "$rootfs/.classifier-bootstrapped"
fi
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: trixie trixie-updates
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -f "$rootfs/etc/apt/sources.list" "$rootfs/etc/resolv.conf"
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"

# The kernel's file systems and the repository (at /src; ../shared, where the tests look for
# data, at /shared read-only). Only what this run mounted is unmounted at the end.
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || umount -l "${mounted[i]}" || true; done
}
trap cleanup EXIT
mount_once() {  # TARGET MOUNT-ARGUMENTS...
  local target=$rootfs$1
  shift
  mkdir -p "$target"
  mountpoint -q "$target" && return 0
  mount "$@" "$target"
  mounted+=("$target")
}
mount_once /proc -t proc proc
mount_once /sys -t sysfs sysfs
mount_once /dev --bind /dev
mount_once /src --bind "$repo"
if [[ -d $repo/../shared ]]; then
  mount_once /shared -o bind,ro "$(cd "$repo/../shared" && pwd)"
fi
in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

# 2. The packages: scripts/install-deps.sh gpu-build, the one list the GPU image uses too.
step "installing the packages (scripts/install-deps.sh gpu-build, CLASSIFIER_CUDNN=$cudnn)"
in_root CLASSIFIER_CUDNN="$cudnn" /src/scripts/install-deps.sh gpu-build ||
  die "installing the packages failed (see above: the mirror, a package without a candidate, or nvidia-cudnn's download); the root fs is kept, fix it and run again"
echo "root fs size: $(du -scxh "$rootfs"/{etc,opt,usr,var} | tail -n1 | cut -f1)"

# cuDNN: the real library, or a stand-in made from the cuDNN symbols libtorch_cuda.so uses.
ld_path=
if in_root ldconfig -p | grep -q 'libcudnn\.so\.9 '; then
  step "cuDNN: the real libcudnn.so.9 is installed"
else
  step "cuDNN: not installed (CLASSIFIER_CUDNN=none): linking with a stand-in $stub_dir/libcudnn.so.9"
  in_root bash -euo pipefail -c '
    dir='"$stub_dir"'
    mkdir -p "$dir"
    nm -D --undefined-only /usr/lib/x86_64-linux-gnu/libtorch_cuda.so |
      sed -n "s/^ *U \(cudnn[A-Za-z0-9_]*\)@libcudnn\.so\.9$/\1/p" | sort -u >"$dir/symbols.txt"
    {
      echo "#include <stdio.h>"
      echo "#include <stdlib.h>"
      echo "static void missing(const char* f) {"
      echo "  fprintf(stderr, \"%s: this libcudnn.so.9 is the stand-in of scripts/cuda-build-check.sh\\n\", f);"
      echo "  abort();"
      echo "}"
      while read -r f; do echo "void $f(void) { missing(\"$f\"); }"; done <"$dir/symbols.txt"
    } >"$dir/stub.c"
    echo "libcudnn.so.9 { global: *; };" >"$dir/version.map"
    cc -shared -fPIC -o "$dir/libcudnn.so.9" -Wl,-soname,libcudnn.so.9 \
      -Wl,--version-script,"$dir/version.map" "$dir/stub.c"
    echo "stand-in for $(wc -l <"$dir/symbols.txt") cuDNN functions"'
  ld_path=$stub_dir
fi

# 3. Configure and build everything (gtest's test discovery runs each test binary at build
# time, hence LD_LIBRARY_PATH for the build too).
step "configuring /src/$build_dir (Ninja, Release)"
configure_log=$repo/$build_dir/configure.log
mkdir -p "$repo/$build_dir"
in_root LD_LIBRARY_PATH="$ld_path" cmake -S /src -B "/src/$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$configure_log" 2>&1 ||
  die "CMake could not configure: $(grep -m1 -A3 'CMake Error' "$configure_log" || tail -n5 "$configure_log")"
grep -E 'CUDA|cuDNN|Found Torch' "$configure_log" || true
step "building with $jobs jobs"
build_status=0
in_root LD_LIBRARY_PATH="$ld_path" ninja -C "/src/$build_dir" -j"$jobs" -k 0 || build_status=$?

# A probe that LibTorch's NCCL and Gloo process groups compile and link (the distributed ranks).
step "probing c10d's NCCL and Gloo process groups"
probe_status=0
in_root bash -euo pipefail -c '
  dir=/tmp/classifier-c10d-probe
  mkdir -p "$dir"
  cat >"$dir/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(c10d_probe CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(Torch REQUIRED)
add_executable(c10d_probe probe.cc)
target_link_libraries(c10d_probe \${TORCH_LIBRARIES})
EOF
  cat >"$dir/probe.cc" <<EOF
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
int main() {
  auto nccl = c10d::ProcessGroupNCCL::Options::create();
  auto gloo = c10d::ProcessGroupGloo::Options::create();
  return nccl && gloo ? 0 : 1;
}
EOF
  cmake -S "$dir" -B "$dir/build" -G Ninja >/dev/null 2>&1 || cmake -S "$dir" -B "$dir/build" -G Ninja
  LD_LIBRARY_PATH='"$ld_path"' ninja -C "$dir/build"' || probe_status=$?

# 4. What compiled.
step "summary"
cc_line=$(grep -E '"command": .*model/cuda_graph\.cc' "$repo/$build_dir/compile_commands.json" || true)
yes_no() { if "$@"; then echo yes; else echo no; fi; }
echo "CMake found CUDA:             $(grep -o 'PyTorch: CUDA detected: [0-9.]*' "$configure_log" || echo no)"
echo "CLASSIFIER_WITH_CUDA defined: $(yes_no grep -q CLASSIFIER_WITH_CUDA <<<"$cc_line")"
echo "USE_C10D_NCCL defined:        $(yes_no grep -q USE_C10D_NCCL <<<"$cc_line")"
echo "ProcessGroupNCCL.hpp:         $(yes_no test -f "$rootfs/usr/include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp")"
echo "libnccl:                      $(in_root ldconfig -p | grep -o 'libnccl\.so\.[0-9]*' | head -n1 || echo no)"
echo "c10d NCCL + Gloo probe:       $([[ $probe_status -eq 0 ]] && echo "compiled and linked" || echo FAILED)"
echo "cuDNN:                        $([[ -z $ld_path ]] && echo real || echo "stand-in ($stub_dir)")"
echo "built executables:"
(cd "$repo/$build_dir" && find server client bench tests -type f -perm -u+x ! -path '*CMakeFiles*' |
  sort | while read -r exe; do
    if in_root readelf -d "/src/$build_dir/$exe" 2>/dev/null | grep -q 'libtorch_cuda'; then
      echo "  $exe (links libtorch_cuda)"
    else
      echo "  $exe"
    fi
  done)
[[ $build_status -eq 0 ]] || die "the build failed (see above; ninja -k 0 went on where it could)"
[[ $probe_status -eq 0 ]] || die "the c10d NCCL/Gloo probe did not compile or link (see above)"

# 5. The tests a machine without a GPU can run; CUDA tests skip.
step "ctest -R '$tests' (no GPU here: CUDA tests skip)"
in_root LD_LIBRARY_PATH="$ld_path" ctest --test-dir "/src/$build_dir" -R "$tests" \
  --output-on-failure -j"$jobs" --timeout 900 ||
  die "tests failed (see above)"
step "done"
