#!/usr/bin/env bash
# The GPU checks (issue 5's and 17's): on a machine with an NVIDIA GPU and PyTorch's own
# LibTorch but none of the service's other libraries, build model/ and trainer_bench against
# that LibTorch with CUDA (CLASSIFIER_MODEL_ONLY), run the CUDA tests, and time the tutorial's
# 10 epochs + evaluation on Fashion-MNIST (60,000 images, MNIST's size): CUDA graphs on and off,
# alternating (A B A B), and the same loop in PyTorch's Python on the same GPU; then the loop as
# 1 and 2 data-parallel ranks on the GPU (rank_bench under PyTorch's own torchrun, c10d Gloo over
# CUDA tensors), alternating. Prints figures; never a test.
#
#   bench/gpu/gpu_check.sh prepare   here (Debian 12): Debian's .deb files of the libraries
#                                    model/ needs besides LibTorch, and the data, into .device/
#   bench/gpu/gpu_check.sh run       there, from the repository root with .device/ beside it
#                                    (the device tool: carry [".device"]); logs into $OUT
#   bench/gpu/gpu_check.sh tests     there: the build and every test of model/, no timing
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mode=${1:-}
stash=.device

case "$mode" in
  prepare)
    set -e
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
    mkdir -p "$stash/debs" "$stash/data"
    # Abseil, libpng, libjpeg and zlib for model/; GoogleTest for its tests; Gloo's headers for
    # distributed/ where PyTorch's LibTorch ships none (its own are used where it does).
    (cd "$stash/debs" && apt-get download libabsl-dev libabsl20220623 libpng-dev libpng16-16 \
      libjpeg62-turbo-dev libjpeg62-turbo zlib1g-dev libgtest-dev libgmock-dev libgloo-dev)
    for f in "$stash"/debs/*%3a*; do [[ -e $f ]] && mv "$f" "${f//%3a/_}"; done
    fashion=/usr/share/datasets/fashion-mnist
    [[ -f $fashion/train-images-idx3-ubyte.gz ]] || {
      echo "gpu_check: $fashion missing: apt-get install dataset-fashion-mnist" >&2; exit 1; }
    cp "$fashion"/*.gz "$stash/data/"
    du -sh "$stash"
    ;;
  run | tests)
    out=${OUT:-/tmp/gpu_check}
    export PYTHONUNBUFFERED=1
    mkdir -p "$out"
    [[ -d $stash/debs && -d $stash/data ]] || {
      echo "gpu_check: no $stash/: run 'bench/gpu/gpu_check.sh prepare' first" >&2; exit 1; }
    nvidia-smi -L; g++ --version | head -1; cmake --version | head -1
    deps=/tmp/classifier-deps
    for f in "$stash"/debs/*.deb; do dpkg -x "$f" "$deps"; done
    export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
    torch_root=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    if [[ -f $torch_root/include/gloo/algorithm.h ]]; then echo "gloo headers: PyTorch's own"
    else echo "gloo headers: Debian 12's (PyTorch ships none)"; fi
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
    cuda_root=$(dirname "$(dirname "$(command -v nvcc)")")
    build="build-gpu"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCLASSIFIER_MODEL_ONLY=ON \
      -DCLASSIFIER_WERROR=OFF -DCMAKE_PREFIX_PATH="$torch_prefix;$torch_root;$deps/usr" \
      -DCUDAToolkit_ROOT="$cuda_root" \
      -DCMAKE_CXX_FLAGS="-isystem $deps/usr/include -isystem $deps/usr/include/x86_64-linux-gnu" \
      >"$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
    grep -i "cuda" "$out/configure.log" | head -5
    time cmake --build "$build" -j"$(nproc)" --target trainer_bench capturable_adam_test batch_draws_test \
      trainer_test network_test augment_test device_test -- -k 0 >"$out/build.log" 2>&1
    grep -E "error|Error" "$out/build.log" | head -40
    # Apart: a LibTorch whose c10d headers disagree with ours loses rank_bench only.
    cmake --build "$build" --target rank_bench >"$out/build_rank_bench.log" 2>&1 ||
      { echo "rank_bench did not build:"; grep -E "error" "$out/build_rank_bench.log" | head -20; }
    if [[ $mode == tests ]]; then
      for t in capturable_adam_test batch_draws_test trainer_test network_test augment_test device_test; do
        "$build/tests/model/$t" >"$out/$t.log" 2>&1
        echo "$t: exit $?"
        grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED  \]|Failure" "$out/$t.log" | head -20
      done
      exit 0
    fi
    bench() {
      "$build/bench/trainer_bench" --data_dir="$stash/data" --device=cuda --epochs=10 "$@"
    }
    {
      for round in 1 2; do
        echo "== round $round: A cuda_graphs=true"; bench --cuda_graphs=true
        echo "== round $round: B cuda_graphs=false"; bench --cuda_graphs=false
      done
      # Augmentation and dropout step eagerly (their draws are per batch): 3 epochs each.
      echo "== eager, dropout 0.3, 3 epochs"; bench --epochs=3 --dropout=0.3
      echo "== eager, rotation 15 degrees, 3 epochs"; bench --epochs=3 --rotation_degrees=15
      echo "== PyTorch eager, same GPU, 3 epochs"; python3 bench/gpu/torch_gpu_train.py "$stash/data" 3
    } 2>&1 | tee "$out/bench.log" | grep -E "==|device start|epoch 1/|epoch 3/|epoch 10/|accuracy|evaluation|Error|error"
    {
      "$build/tests/model/capturable_adam_test"
      "$build/tests/model/batch_draws_test"
      "$build/tests/model/trainer_test" --gtest_filter='CudaGraph*:TrainerTest.LearnsSeparable*'
      "$build/tests/model/network_test" --gtest_filter='*Device*'
      "$build/tests/model/device_test"
    } >"$out/tests.log" 2>&1
    grep -E "^\[  (PASSED|FAILED|SKIPPED) |FAILED|Failure" "$out/tests.log" | head -20
    echo "== two ranks over NCCL (bench/gpu/nccl_probe.py)"
    timeout 120 python3 -m torch.distributed.run --nproc_per_node=2 bench/gpu/nccl_probe.py \
      >"$out/nccl.log" 2>&1
    echo "exit $?"; grep -E "^rank|Error|error" "$out/nccl.log" | head -12
    [[ -x $build/bench/rank_bench ]] || exit 0
    # Distributed runs step eagerly (no graphs): 2 epochs each, 1 and 2 ranks alternating.
    ranks() {
      timeout 300 python3 -m torch.distributed.run --no-python --standalone --nproc_per_node="$1" \
        "$build/bench/rank_bench" --data_dir="$stash/data" --device=cuda --epochs=2
    }
    {
      for round in 1 2; do
        echo "== ranks round $round: A 1 rank"; ranks 1
        echo "== ranks round $round: B 2 ranks"; ranks 2
      done
    } 2>&1 | tee "$out/ranks.log" | grep -E "==|device cuda|epoch 2/|all-reduces|accuracy|evaluation|Error|error"
    ;;
  *)
    echo "usage: $0 prepare|run|tests" >&2
    exit 2
    ;;
esac
