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
# LibTorch, which has no frame pointers, so state_dict and checkpoint (whose leak it is) unwind
# the slow way.
asan_options=detect_leaks=1
if [[ $target == state_dict || $target == checkpoint ]]; then
  asan_options+=:fast_unwind_on_malloc=0
fi
# libFuzzer's timeout is wall-clock time: on a busy machine an input can wait for a core longer
# than the limit. A timeout's input is replayed alone three times; one that stays under half the
# limit was a stall of the machine, not of the code: it is kept aside and reported, and fuzzing
# goes on for the time left. Everything else found ends the run.
deadline=$((SECONDS + seconds))
runs=0
executions=0
status=0
found=0
stalls=0
while ((found == 0)); do
  remaining=$((deadline - SECONDS))
  ((remaining > 0)) || break
  status=0
  OMP_NUM_THREADS=1 ASAN_OPTIONS=${ASAN_OPTIONS:-$asan_options} \
    LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$build_dir/tests/fuzz/${target}_fuzzer" -max_total_time="$remaining" -timeout=1 \
    -malloc_limit_mb="${FUZZ_MALLOC_LIMIT_MB:-512}" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "${corpora[@]}" \
    2> >(tee "$build_dir/last-run-$target.log" >&2) || status=$?
  wait  # for tee
  runs=$((runs + 1))
  executed=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$build_dir/last-run-$target.log")
  executions=$((executions + ${executed:-0}))
  stalled=0
  for file in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
    [[ -f $file ]] || continue
    if [[ $(basename "$file") == timeout-* ]]; then
      slowest=$(OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=0 \
        "$build_dir/tests/fuzz/${target}_fuzzer" -runs=3 "$file" "$file" "$file" 2>&1 |
        sed -n 's/^Executed .* in \([0-9]*\) ms$/\1/p' | sort -n | tail -1)
      if [[ -n $slowest && $slowest -lt 500 ]]; then
        mkdir -p "$build_dir/stalls/$target"
        mv "$file" "$build_dir/stalls/$target/"
        echo "fuzz.sh: $target: $(basename "$file") timed out in the run but replays alone in" \
          "${slowest} ms: a stall of the machine (kept in $build_dir/stalls/$target/), not a" \
          "finding; fuzzing goes on" >&2
        stalled=1
        stalls=$((stalls + 1))
        continue
      fi
    fi
    cp "$file" "$committed/"
    echo "fuzz.sh: $target found $(basename "$file"): copied to $committed/ (replayed by ctest" \
      "fuzz_replay.$target); fix it and commit it" >&2
    found=1
  done
  ((stalled == 1)) || break
  status=0
done
echo "fuzz.sh: $target: $executions executions in $seconds s ($runs runs, $stalls stalls)" >&2
if [[ $status != 0 || $found != 0 ]]; then
  echo "fuzz.sh: $target failed (exit $status)" >&2
  exit 1
fi
echo "fuzz.sh: $target ran $seconds s without a finding" >&2
