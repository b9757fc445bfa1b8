// Adam and AdamW whose every number lives on the parameters' device, so that a whole training
// step, optimizer included, can be recorded once as a CUDA graph and replayed (cuda_graph.h).
//
// torch::optim's C++ Adam keeps its step count and learning rate on the host and turns them into
// kernel arguments: a graph recorded from it would replay the first step's bias correction and
// learning rate forever. Here the step count, the powers of the betas and the learning rate are
// tensors that the kernels read, as PyTorch's Python Adam does with capturable=True. And since a
// step of the tutorial's network is a hundred kernels of a few microseconds, the parameters,
// their gradients and their moments are each one flat buffer that the parameters view: a step
// is a dozen kernels whatever the number of parameters, where a loop over them was ten each.
// The arithmetic is torch::optim's (L2 penalty added to the gradient for Adam, decoupled decay
// for AdamW), so the two agree to float rounding; checkpoints still hold torch::optim's param
// states, which `Moments` and `SetMoments` convert to and from.
#ifndef CLASSIFIER_MODEL_CAPTURABLE_ADAM_H_
#define CLASSIFIER_MODEL_CAPTURABLE_ADAM_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace classifier {

struct CapturableAdamOptions {
  double learning_rate = 1e-3;
  double weight_decay = 0;
  // AdamW's decoupled decay (parameter *= 1 - lr * weight_decay) instead of Adam's L2 penalty.
  bool decoupled_weight_decay = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One parameter's optimizer state, on the host's terms: what a torch::optim Adam(W)ParamState
// holds.
struct AdamMoments {
  int64_t step = 0;
  torch::Tensor exp_avg;
  torch::Tensor exp_avg_sq;
};

class CapturableAdam {
 public:
  // The parameters' values move into one flat buffer that each parameter then views (through
  // set_data: the tensors keep their identity, names and requires_grad, and become contiguous),
  // and each gets a gradient that views one flat gradient buffer, which the backward pass
  // accumulates into. All must be float tensors on one device. Moments start at zero, step 0.
  CapturableAdam(std::vector<torch::Tensor> parameters, const CapturableAdamOptions& options);

  // Zeroes every gradient (one kernel). The gradients must stay the views made here: a backward
  // pass accumulates into them as long as they are defined.
  void ZeroGrad();
  // One step from the gradients: device work only, no host synchronisation, no host-side
  // decision on values. Every parameter steps (a parameter the backward pass did not reach has
  // a zero gradient, where torch::optim would skip it).
  void Step();

  // Outside a recording: the value the next steps use.
  void SetLearningRate(double learning_rate);

  // Steps taken (reads the device's count: a synchronisation).
  int64_t StepCount() const;
  // A copy of parameter `index`'s state (the moments on the parameters' device, contiguous).
  AdamMoments Moments(size_t index) const;
  // Replaces parameter `index`'s state (copied in place: a recorded step keeps its addresses).
  // Every parameter shares one step count, so the last call's `step` is the one that counts.
  void SetMoments(size_t index, const AdamMoments& moments);

  const std::vector<torch::Tensor>& parameters() const { return parameters_; }

 private:
  // Parameter `index`'s part of a flat buffer, in its shape.
  torch::Tensor Part(const torch::Tensor& flat, size_t index) const;

  const CapturableAdamOptions options_;
  std::vector<torch::Tensor> parameters_;
  std::vector<int64_t> offsets_;  // Of each parameter in the flat buffers.
  torch::Tensor flat_parameters_;
  torch::Tensor flat_grads_;
  torch::Tensor exp_avg_;
  torch::Tensor exp_avg_sq_;
  // Doubles on the device: the step count; {beta1, beta2} and their powers at the step count.
  torch::Tensor step_;
  torch::Tensor betas_;
  torch::Tensor beta_powers_;
  torch::Tensor learning_rate_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_CAPTURABLE_ADAM_H_
