#!/usr/bin/env bash
# Runs one libFuzzer target of tests/fuzz/ for a while (docs/reliability.md, "Fuzzing").
#
#   scripts/fuzz.sh list                  the targets
#   scripts/fuzz.sh TARGET SECONDS [--keep-corpus] [libFuzzer flags...]
#
# Configures and builds build-fuzz/ with clang (-DCLASSIFIER_FUZZ=ON: libFuzzer, ASan, UBSan),
# then fuzzes TARGET for SECONDS from its committed corpus, tests/fuzz/corpus/TARGET/. New
# interesting inputs go to build-fuzz/corpus/TARGET/ (scratch), or with --keep-corpus into the
# committed folder. Every crash-, leak-, timeout- or oom- file found is copied into the
# committed folder, where ctest's fuzz_replay.TARGET replays it from then on.
#
# The bounds every target is held to: an input that runs over 1 s is a timeout, a single
# allocation over FUZZ_MALLOC_LIMIT_MB (default 512) or a process over FUZZ_RSS_LIMIT_MB
# (default 2048) is an oom; both are findings, as are crashes and leaks.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
targets=$(sed -n 's/^classifier_fuzzer(\([a-z_]*\).*/\1/p' tests/fuzz/CMakeLists.txt)

if [[ ${1:-} == list ]]; then
  echo "$targets"
  exit 0
fi
if [[ $# -lt 2 ]] || ! grep -qx "$1" <<<"$targets" || ! [[ $2 =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh list | TARGET SECONDS [--keep-corpus] [libFuzzer flags...]" >&2
  echo "targets: $(tr '\n' ' ' <<<"$targets")" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
keep_corpus=0
if [[ ${1:-} == --keep-corpus ]]; then
  keep_corpus=1
  shift
fi

build_dir=${CLASSIFIER_FUZZ_BUILD_DIR:-build-fuzz}
if [[ ! -f $build_dir/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCLASSIFIER_FUZZ=ON -DCLASSIFIER_WERROR=OFF
fi
cmake --build "$build_dir" -j"${FUZZ_JOBS:-2}" --target "${target}_fuzzer"

committed=tests/fuzz/corpus/$target
scratch=$build_dir/corpus/$target
artifacts=$build_dir/artifacts/$target
mkdir -p "$committed" "$scratch" "$artifacts"
rm -f "$artifacts"/*  # What an earlier run found is in the committed folder already.
corpora=("$scratch" "$committed")
[[ $keep_corpus == 1 ]] && corpora=("$committed")

# One OpenMP thread for LibTorch. Leaks are findings, except those tests/sanitizers/lsan.supp names
# (each with its reason); matching a suppression by function needs whole stacks through
# LibTorch, which has no frame pointers, so state_dict (whose leak it is) unwinds the slow way.
asan_options=detect_leaks=1
if [[ $target == state_dict ]]; then
  asan_options+=:fast_unwind_on_malloc=0
fi
status=0
OMP_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} \
  LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
  "$build_dir/tests/fuzz/${target}_fuzzer" -max_total_time="$seconds" -timeout=1 \
  -malloc_limit_mb="${FUZZ_MALLOC_LIMIT_MB:-512}" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "${corpora[@]}" || status=$?

found=0
for file in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
  [[ -f $file ]] || continue
  cp "$file" "$committed/"
  echo "fuzz.sh: $target found $(basename "$file"): copied to $committed/ (replayed by ctest" \
    "fuzz_replay.$target); fix it and commit it" >&2
  found=1
done
if [[ $status != 0 || $found != 0 ]]; then
  echo "fuzz.sh: $target failed (exit $status)" >&2
  exit 1
fi
echo "fuzz.sh: $target ran $seconds s without a finding" >&2
