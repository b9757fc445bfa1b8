// Reading and writing torch::optim's per-parameter state (Adam's and AdamW's moments, SGD's
// momentum buffers), for checkpoints and for CapturableAdam. Private to classifier_model.
#ifndef CLASSIFIER_MODEL_OPTIMIZER_STATE_H_
#define CLASSIFIER_MODEL_OPTIMIZER_STATE_H_

#include <torch/torch.h>

#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "model/capturable_adam.h"

namespace classifier {

// The optimizer's state is keyed by the parameter's TensorImpl: by the string
// c10::guts::to_string makes of the pointer in LibTorch 1.x, by the pointer itself in 2.x.
template <typename StateMap>
typename StateMap::key_type OptimizerStateKey(const torch::Tensor& parameter) {
  if constexpr (std::is_same_v<typename StateMap::key_type, std::string>) {
    std::ostringstream key;
    key << parameter.unsafeGetTensorImpl();
    return key.str();
  } else {
    return parameter.unsafeGetTensorImpl();
  }
}

// Null before the parameter's first step. ParamState must be the optimizer's own type.
template <typename ParamState>
ParamState* FindParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& parameter) {
  auto& state = optimizer.state();
  const auto found = state.find(OptimizerStateKey<std::decay_t<decltype(state)>>(parameter));
  if (found == state.end()) return nullptr;
  return static_cast<ParamState*>(found->second.get());
}

template <typename ParamState>
void SetParamState(torch::optim::Optimizer& optimizer, const torch::Tensor& parameter,
                   std::unique_ptr<ParamState> param_state) {
  auto& state = optimizer.state();
  state[OptimizerStateKey<std::decay_t<decltype(state)>>(parameter)] = std::move(param_state);
}

// A CapturableAdam (cuda_graph.h's steps) keeps its moments on its own; torch::optim's Adam or
// AdamW state is what checkpoints read and write. These move the moments between the two.
template <typename ParamState>
void ImportMoments(torch::optim::Optimizer& optimizer, CapturableAdam& adam) {
  const std::vector<torch::Tensor>& parameters = adam.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (const ParamState* moments = FindParamState<ParamState>(optimizer, parameters[i])) {
      adam.SetMoments(i, AdamMoments{moments->step(), moments->exp_avg(), moments->exp_avg_sq()});
    }
  }
}

template <typename ParamState>
void ExportMoments(const CapturableAdam& adam, torch::optim::Optimizer& optimizer) {
  // As torch::optim: no state before the first step (a checkpoint refuses a step count of 0).
  if (adam.StepCount() == 0) return;
  const std::vector<torch::Tensor>& parameters = adam.parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const AdamMoments moments = adam.Moments(i);
    auto param_state = std::make_unique<ParamState>();
    param_state->step(moments.step);
    param_state->exp_avg(moments.exp_avg);
    param_state->exp_avg_sq(moments.exp_avg_sq);
    SetParamState(optimizer, parameters[i], std::move(param_state));
  }
}

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_OPTIMIZER_STATE_H_
