#include "model/cuda_graph.h"

#include <optional>
#include <utility>

#ifdef CLASSIFIER_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace classifier {

#ifdef CLASSIFIER_WITH_CUDA

bool CudaGraphsAvailable() { return torch::cuda::is_available(); }

struct ScopedSideStream::Impl {
  std::optional<c10::cuda::CUDAStreamGuard> guard;
};

ScopedSideStream::ScopedSideStream(const torch::Device& device) {
  if (!device.is_cuda()) return;
  c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
  impl_ = std::make_unique<Impl>();
  impl_->guard.emplace(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
}

ScopedSideStream::~ScopedSideStream() {
  if (impl_ == nullptr) return;
  impl_->guard->current_stream().synchronize();
}

struct RecordedStep::Impl {
  at::cuda::CUDAGraph graph;
};

std::unique_ptr<RecordedStep> RecordedStep::Record(const std::function<void()>& body) {
  auto impl = std::make_unique<Impl>();
  impl->graph.capture_begin();
  try {
    body();
  } catch (...) {
    // End the capture so that the stream can be used again; the body's error is the one to
    // report.
    try {
      impl->graph.capture_end();
    } catch (...) {
    }
    throw;
  }
  impl->graph.capture_end();
  return std::unique_ptr<RecordedStep>(new RecordedStep(std::move(impl)));
}

void RecordedStep::Replay() { impl_->graph.replay(); }

#else  // A CPU build of LibTorch: no streams, no graphs.

bool CudaGraphsAvailable() { return false; }

struct ScopedSideStream::Impl {};

ScopedSideStream::ScopedSideStream(const torch::Device& device) { (void)device; }

ScopedSideStream::~ScopedSideStream() = default;

struct RecordedStep::Impl {};

std::unique_ptr<RecordedStep> RecordedStep::Record(const std::function<void()>& body) {
  (void)body;
  TORCH_CHECK(false, "CUDA graphs need a CUDA build of LibTorch; this one is CPU only");
}

void RecordedStep::Replay() {}

#endif

RecordedStep::RecordedStep(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RecordedStep::~RecordedStep() = default;

}  // namespace classifier
