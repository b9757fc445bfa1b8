#!/usr/bin/env bash
# Where the service's training time goes: profiles bench's trainer_bench (model/'s Trainer,
# the tutorial's configuration, BENCH_THREADS threads) on the first PROFILE_IMAGES
# Fashion-MNIST images (default 12,000: one short epoch) and prints
#   - the share of each step of the loop (forward, backward, Adam, ...) and of each layer's
#     forward and backward, inclusive of what they call;
#   - the self time per library (LibTorch's dispatch and kernels, oneDNN, BLAS, the kernel's
#     page faults, malloc);
#   - the convolutions' own time, from oneDNN's verbose log (ONEDNN_VERBOSE=1) on a second,
#     shorter run: oneDNN's JIT-generated kernels carry no unwind information, so perf cannot
#     attribute their samples (the "[JIT]" library) to a caller.
# Only the training loop is counted: trainer_bench prints its CLOCK_MONOTONIC start and end,
# and perf records with that clock.
#
#   bench/profile_train.sh           perf (Debian's linux-perf), cpu-clock samples, DWARF stacks
#   PROFILE_TOOL=callgrind bench/profile_train.sh   valgrind's callgrind where perf cannot run
#
# PERF_DATA=FILE keeps the recording for `perf report -i FILE`.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

images=${PROFILE_IMAGES:-12000}
trainer_bench=$BUILD_DIR/bench/trainer_bench
require_files "$trainer_bench" "$FASHION_DIR"
run=("$trainer_bench" --data_dir="$FASHION_DIR" --threads="$BENCH_THREADS" --evaluate=false)

tool=${PROFILE_TOOL:-perf}
if [[ $tool == perf ]] && ! perf record -e cpu-clock -o "$bench_tmp/probe.data" true >/dev/null 2>&1; then
  echo "profile_train: perf cannot record here; using callgrind"
  tool=callgrind
fi

if [[ $tool == callgrind ]]; then
  command -v valgrind >/dev/null || die "neither perf nor valgrind works: apt-get install linux-perf valgrind"
  images=${PROFILE_IMAGES:-600}
  valgrind --tool=callgrind --callgrind-out-file="$bench_tmp/callgrind.out" \
    "${run[@]}" --limit="$images" >/dev/null 2>"$bench_tmp/valgrind.log"
  echo "== callgrind, $images images, instructions inclusive of callees (top 40)"
  callgrind_annotate --inclusive=yes "$bench_tmp/callgrind.out" | sed -n '1,60p' | cut -c1-160
  exit 0
fi

data=${PERF_DATA:-$bench_tmp/perf.data}
perf record -q -k CLOCK_MONOTONIC -e cpu-clock -F 999 --call-graph dwarf,32768 -o "$data" \
  -- "${run[@]}" --limit="$images" >"$bench_tmp/run.log" 2>"$bench_tmp/perf.log" ||
  { cat "$bench_tmp/perf.log" >&2; die "perf record failed"; }
from=$(awk '/^training from monotonic/ {print $4}' "$bench_tmp/run.log")
until=$(awk '/^training until monotonic/ {print $4}' "$bench_tmp/run.log")
window="$from,$until"

perf report -i "$data" --time "$window" --children --sort symbol --stdio -g none -t ';' \
  2>/dev/null >"$bench_tmp/children.txt"
perf report -i "$data" --time "$window" --no-children --sort dso --stdio -g none \
  2>/dev/null >"$bench_tmp/dso.txt"
samples=$(awk '/^# Samples:/ {print $3; exit}' "$bench_tmp/children.txt")

# share SYMBOL: the inclusive share of the report line naming exactly SYMBOL (the third
# field is "[.] SYMBOL" padded with spaces; no regular expressions on those long lines).
share() {
  awk -F';' -v sym="$1" '!/^#/ {
    n = length(sym); rest = substr($3, 5 + n, 1)
    if (substr($3, 5, n) == sym && (rest == " " || rest == "")) {
      v = $1; gsub(/ /, "", v); print v; found = 1; exit } }
    END { if (!found) print "0%" }' "$bench_tmp/children.txt"
}

echo "== profile: trainer_bench on $images images (batch 60, Adam, $BENCH_THREADS thread(s))," \
  "$(grep '^epoch' "$bench_tmp/run.log" | awk '{print $3, $4, $5}'), $samples samples"
echo "-- steps of the loop (inclusive; what is left is stacks perf could not unwind)"
printf '  %-44s %s\n' \
  "whole loop (Trainer::Impl::Run)" "$(share 'classifier::Trainer::Impl::Run')" \
  "forward (CnnImpl::forward)" "$(share 'classifier::CnnImpl::forward')" \
  "loss (cross_entropy)" "$(share 'at::_ops::cross_entropy_loss::call')" \
  "backward (autograd Engine::execute)" "$(share 'torch::autograd::Engine::execute')" \
  "Adam step" "$(share 'torch::optim::Adam::step')" \
  "zero_grad" "$(share 'torch::optim::Optimizer::zero_grad')" \
  "batch gather (index_select)" "$(share 'at::_ops::index_select::call')" \
  "uint8 -> float (_to_copy)" "$(share 'at::_ops::_to_copy::call')" \
  "accuracy (argmax)" "$(share 'at::_ops::argmax::call')"
echo "-- layers (inclusive)"
printf '  %-44s %s\n' \
  "conv forward (oneDNN, mkldnn_convolution)" "$(share 'at::native::mkldnn_convolution')" \
  "conv backward (convolution_backward)" "$(share 'at::native::convolution_backward')" \
  "conv1 forward (single_channel_conv.cc)" "$(share 'classifier::SingleChannelConv')" \
  "conv1 weight gradient (single_channel_conv.cc)" "$(share 'torch::autograd::CppNode<classifier::(anonymous namespace)::SingleChannelConvFunction>::apply')" \
  "fused ReLU + max-pool forward (relu_pool.cc)" "$(share 'classifier::ReluMaxPool2x2')" \
  "fused ReLU + max-pool backward" "$(share 'torch::autograd::CppNode<classifier::(anonymous namespace)::ReluMaxPool2x2Function>::apply')" \
  "max-pool forward (LibTorch's; 0 when fused)" "$(share 'at::native::max_pool2d')" \
  "max-pool backward (LibTorch's)" "$(share 'at::native::structured_max_pool2d_with_indices_backward_out_cpu::impl')" \
  "ReLU forward (LibTorch's)" "$(share 'at::native::relu')" \
  "ReLU backward (threshold_backward)" "$(share 'at::native::structured_threshold_backward_out::impl')" \
  "linear forward (addmm)" "$(share 'at::native::structured_addmm_out_cpu::impl')" \
  "linear backward (AddmmBackward0)" "$(share 'torch::autograd::generated::AddmmBackward0::apply')" \
  "  of which BLAS sgemm_ (inclusive)" "$(share 'sgemm_')" \
  "page faults (kernel)" "$(share 'asm_exc_page_fault')" \
  "malloc (_int_malloc)" "$(share '_int_malloc')" \
  "free (_int_free)" "$(share '_int_free')"
echo "-- self time per library"
grep -v '^#' "$bench_tmp/dso.txt" | awk 'NF {printf "  %-44s %s\n", $2, $1}' | head -10

# The convolutions, timed by oneDNN itself (ONEDNN_VERBOSE adds a little time per call).
ONEDNN_VERBOSE=1 "${run[@]}" --limit=6000 >"$bench_tmp/onednn.log" 2>&1
awk -F, '/^training from monotonic/ {split($0, a, " "); from = a[4]}
  /^training until monotonic/ {split($0, a, " "); until = a[4]}
  $1 == "onednn_verbose" && $2 == "exec" {
    key = $4
    if ($4 != "reorder") {
      key = key " " $6
      if (match($(NF - 1), /ic[0-9]+oc[0-9]+/)) key = key " " substr($(NF - 1), RSTART, RLENGTH)
    }
    t[key] += $NF; total += $NF }
  END {
    loop = (until - from) * 1000
    printf "0 -- oneDNN primitives on 6,000 images (100 batches), of %.0f ms in the loop\n", loop
    for (k in t) printf "1   %-42s %6.1f ms  %5.1f%%\n", k, t[k], 100 * t[k] / loop
    printf "2   %-42s %6.1f ms  %5.1f%%\n", "all oneDNN primitives", total, 100 * total / loop
  }' "$bench_tmp/onednn.log" | sort -k1,1n -k2 | cut -c3-
