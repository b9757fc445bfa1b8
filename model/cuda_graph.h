// CUDA graphs: a training step's kernels recorded once and replayed as one launch.
//
// The tutorial's network is small: a step of batch 60 is about a hundred kernels of a few
// microseconds each, so on a GPU the host's launching, not the device, sets the pace. A
// recorded step replays them all with one launch. Compiled for real only against a CUDA build of
// LibTorch (CLASSIFIER_WITH_CUDA, set by model/CMakeLists.txt); in a CPU build nothing here is
// ever called, CudaGraphsAvailable() says so, and Record refuses.
#ifndef CLASSIFIER_MODEL_CUDA_GRAPH_H_
#define CLASSIFIER_MODEL_CUDA_GRAPH_H_

#include <torch/torch.h>

#include <functional>
#include <memory>

namespace classifier {

// Whether this build can record CUDA graphs (a CUDA build of LibTorch and a device present).
bool CudaGraphsAvailable();

// While alive, the calling thread's current stream on `device` is one of its own rather than
// the default stream (graphs are recorded only on another stream). The host waits for the work
// queued before, on entry, and for the side stream's work, on exit, so that code on either side
// of the scope needs no ordering of its own. Does nothing for a CPU device.
class ScopedSideStream {
 public:
  explicit ScopedSideStream(const torch::Device& device);
  ~ScopedSideStream();
  ScopedSideStream(const ScopedSideStream&) = delete;
  ScopedSideStream& operator=(const ScopedSideStream&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One recorded piece of device work.
class RecordedStep {
 public:
  // Records the kernels `body` launches on the current stream (which must not be the default
  // one: use a ScopedSideStream) without running them. The tensors `body` makes keep their
  // memory for the graph's life: a replay writes its results there again. `body` must run once
  // eagerly first (lazy initialisations such as cuBLAS handles cannot be recorded) and must not
  // synchronise with the host. Throws c10::Error when recording fails.
  static std::unique_ptr<RecordedStep> Record(const std::function<void()>& body);
  ~RecordedStep();
  RecordedStep(const RecordedStep&) = delete;
  RecordedStep& operator=(const RecordedStep&) = delete;

  // Runs the recorded kernels again, on the current stream.
  void Replay();

 private:
  struct Impl;
  explicit RecordedStep(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_CUDA_GRAPH_H_
