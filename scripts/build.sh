#!/usr/bin/env bash
# Configures (Ninja, Release) and builds the project into build/, from the repository root
# whatever the current directory. Extra arguments go to the configure step, e.g.
#
#   scripts/build.sh                              # everything, tests included
#   scripts/build.sh -DCLASSIFIER_BUILD_TESTS=OFF # only the libraries, server and CLI (Docker)
#   CLASSIFIER_BUILD_TARGETS="image_test idx_fuzzer" scripts/build.sh   # only those targets
#
# Idempotent and fast when up to date: an already configured tree is not configured again
# unless arguments are given (the build re-runs CMake by itself when a CMakeLists.txt
# changes), and Ninja then rebuilds nothing. $CLASSIFIER_BUILD_DIR overrides build/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${CLASSIFIER_BUILD_DIR:-build}

cache=$build_dir/CMakeCache.txt
if [[ -f $cache ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$cache"; then
  echo "build.sh: $build_dir was configured with another generator; remove it first (rm -rf $build_dir)" >&2
  exit 1
fi

if [[ $# -gt 0 || ! -f $build_dir/build.ninja ]] ||
  ! grep -qx 'CMAKE_BUILD_TYPE:STRING=Release' "$cache"; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
# CLASSIFIER_BUILD_TARGETS (names, space-separated): only those (scripts/test.sh --subset).
# shellcheck disable=SC2086 # a list of target names
cmake --build "$build_dir" -j"$(nproc)" ${CLASSIFIER_BUILD_TARGETS:+--target $CLASSIFIER_BUILD_TARGETS}
