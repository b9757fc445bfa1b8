#!/usr/bin/env bash
# The README's second command: everything needed to run the whole test suite on a fresh
# Debian 12 machine. Installs the dependencies (Debian packages; buf from npm on first use),
# builds with tests, then runs every test with ctest: unit, integration (a real server on
# loopback), end to end (the built binaries), interop (Python's torch) and packaging checks;
# a whole run ends with the sanitizer subset below.
#
#   scripts/test.sh            # everything, then the sanitizer subset
#   scripts/test.sh -R Service # extra arguments go to ctest (no sanitizer subset)
#   scripts/test.sh --sanitize address,undefined [-R ...]
#   scripts/test.sh --sanitize thread [-R ...]
#   scripts/test.sh --sanitize address,undefined --subset
#
# --sanitize builds everything with those sanitizers into its own folder (build-address-undefined/,
# build-thread/) and runs the suite there; thread runs the server's tests unless -R says
# otherwise (LibTorch's OpenMP is not instrumented, so its own threads would only be noise).
# Every report fails its test; tests/sanitizers/ holds the suppressions, each with its reason.
# The whole suite under ASan + UBSan takes hours on 2 cores (docs/reliability.md): too long for
# CI, so a run by hand. --subset builds and runs only what fits in CI's few minutes: the parsers
# of untrusted bytes that need no LibTorch (IDX plain and gzip, PNG and JPEG, TensorBoard
# records, Predict's images, JSON escaping, the rank environment), through their unit tests and
# the replay of every committed fuzz input; LibTorch's parsers (state dict, checkpoint) were
# fuzzed under the same sanitizers (scripts/fuzz.sh) and run in the whole sanitizer suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sanitize=
subset=0
if [[ ${1:-} == --sanitize ]]; then
  [[ -n ${2:-} ]] || { echo "test.sh: --sanitize needs a list: address,undefined or thread" >&2; exit 2; }
  sanitize=$2
  shift 2
  if [[ ${1:-} == --subset ]]; then
    subset=1
    shift
  fi
fi
whole_run=0
[[ -z $sanitize && $# -eq 0 ]] && whole_run=1
subset_targets="dataset_test image_test metrics_test tfevents_test json_escape_test \
  rank_environment_test idx_fuzzer image_fuzzer predict_request_fuzzer"
subset_tests='^(dataset_test|image_test|metrics_test|tfevents_test|json_escape_test|rank_environment_test)\.|^fuzz_replay\.(idx|image|predict_request)$'

[[ -n ${CLASSIFIER_SKIP_INSTALL_DEPS:-} ]] || scripts/install-deps.sh
if [[ -z $sanitize ]]; then
  scripts/build.sh
else
  export CLASSIFIER_BUILD_DIR=${CLASSIFIER_BUILD_DIR:-build-${sanitize//,/-}}
  if ((subset)); then
    # shellcheck disable=SC2086 # a list of target names
    CLASSIFIER_BUILD_TARGETS=$subset_targets scripts/build.sh -DCLASSIFIER_SANITIZE="$sanitize" \
      -DCLASSIFIER_BUILD_BENCH=OFF
    set -- -R "$subset_tests" "$@"
  else
    scripts/build.sh -DCLASSIFIER_SANITIZE="$sanitize" -DCLASSIFIER_BUILD_BENCH=OFF
  fi
  supp=$PWD/tests/sanitizers
  # One OpenMP thread: LibTorch's pool is not instrumented, and one thread is what the server
  # gives each inference and training thread anyway.
  export OMP_NUM_THREADS=1
  # fast_unwind_on_malloc=0: LibTorch is built without frame pointers, so the fast unwinder
  # stops at its first frame and tests/sanitizers/lsan.supp's names (which are LibTorch's) never
  # match; the slow unwinder gives whole stacks.
  export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:fast_unwind_on_malloc=0
  export LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp
  if [[ $sanitize == thread && ! " $* " =~ " -R " ]]; then
    set -- -R '^(service_test|persistence_test|production_test|prometheus_metrics_test|list_service_test|dataset_service_test|batcher_test|job_manager_test|work_queue_test|stream_limiter_test|queued_writer_test|model_registry_test|store_test|bad_input_test)\.' "$@"
  fi
  # The image tests build and run the container from the sources with its own compiler flags:
  # nothing of this build's instrumented binaries runs in them.
  set -- -E '^packaging\.(container|compose|replicas_compose)_e2e$' "$@"
fi
# Two cores: two tests at a time; the heavier end-to-end tests hold a resource lock.
ctest --test-dir "${CLASSIFIER_BUILD_DIR:-build}" --output-on-failure -j2 --timeout 900 "$@"
if ((whole_run)); then
  env -u CLASSIFIER_BUILD_DIR CLASSIFIER_SKIP_INSTALL_DEPS=1 "$0" --sanitize address,undefined --subset
fi
