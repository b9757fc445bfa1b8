#include "model/capturable_adam.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace classifier {
namespace {

// Parameters of the tutorial's shapes, one of them channels-last as PlaceOn stores the conv
// weights on the CPU.
std::vector<torch::Tensor> MakeParameters(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> parameters = {
      torch::randn({8, 1, 3, 3}), torch::randn({8}),
      torch::randn({16, 8, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast),
      torch::randn({10, 784})};
  for (torch::Tensor& parameter : parameters) parameter.set_requires_grad(true);
  return parameters;
}

std::vector<torch::Tensor> Clones(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> clones;
  for (const torch::Tensor& parameter : parameters) {
    clones.push_back(parameter.detach().clone().set_requires_grad(true));
  }
  return clones;
}

// The same gradient for both sets at each step, drawn from a generator seeded by the step and
// the parameter (not computed from the parameters, so that rounding differences do not feed
// back into the gradients), scaled by the step so that the moments see several magnitudes.
void SetGradients(std::vector<torch::Tensor>& parameters, int step) {
  for (size_t i = 0; i < parameters.size(); ++i) {
    torch::NoGradGuard no_grad;
    at::Generator generator = at::detail::createCPUGenerator(static_cast<uint64_t>(step * 31 + i));
    const torch::Tensor grad =
        torch::randn(parameters[i].sizes(), generator, torch::kFloat) * (step % 3 + 1);
    if (parameters[i].grad().defined()) {
      parameters[i].mutable_grad().copy_(grad);
    } else {
      parameters[i].mutable_grad() = grad.clone();
    }
  }
}

double MaxDifference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  }
  return worst;
}

struct Case {
  bool decoupled;
  double weight_decay;
};

class CapturableAdamTest : public ::testing::TestWithParam<Case> {};

// 40 steps with a learning-rate change half way, against torch::optim's own optimizer: the
// parameters agree to float rounding at every step (lr 1e-2 moves them by up to 0.4).
TEST_P(CapturableAdamTest, StepsAsTorchOptim) {
  const Case c = GetParam();
  std::vector<torch::Tensor> reference = MakeParameters(7);
  std::vector<torch::Tensor> ours = Clones(reference);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (c.decoupled) {
    optimizer = std::make_unique<torch::optim::AdamW>(
        reference, torch::optim::AdamWOptions(1e-2).weight_decay(c.weight_decay));
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(
        reference, torch::optim::AdamOptions(1e-2).weight_decay(c.weight_decay));
  }
  CapturableAdamOptions options;
  options.learning_rate = 1e-2;
  options.weight_decay = c.weight_decay;
  options.decoupled_weight_decay = c.decoupled;
  CapturableAdam adam(ours, options);

  for (int step = 0; step < 40; ++step) {
    if (step == 20) {
      optimizer->param_groups()[0].options().set_lr(3e-3);
      adam.SetLearningRate(3e-3);
    }
    SetGradients(reference, step);
    SetGradients(ours, step);
    optimizer->step();
    adam.Step();
    ASSERT_LT(MaxDifference(ours, reference), 1e-5) << "after step " << step + 1;
  }
  EXPECT_EQ(adam.StepCount(), 40);
  // And the parameters did move: the comparison is not between two unchanged sets.
  EXPECT_GT(MaxDifference(ours, MakeParameters(7)), 0.1);
}

INSTANTIATE_TEST_SUITE_P(AdamAndAdamW, CapturableAdamTest,
                         ::testing::Values(Case{false, 0}, Case{false, 0.05}, Case{true, 0.05}));

// Moments taken from one optimizer and given to another continue the run exactly as the first
// would have: what a checkpoint written mid-run and restored relies on.
TEST(CapturableAdamMoments, MovedMomentsContinueTheRun) {
  std::vector<torch::Tensor> first = MakeParameters(3);
  CapturableAdam adam(first, CapturableAdamOptions{});
  for (int step = 0; step < 5; ++step) {
    SetGradients(first, step);
    adam.Step();
  }
  std::vector<torch::Tensor> second = Clones(first);
  CapturableAdam resumed(second, CapturableAdamOptions{});
  for (size_t i = 0; i < first.size(); ++i) {
    const AdamMoments moments = adam.Moments(i);
    EXPECT_EQ(moments.step, 5);
    EXPECT_TRUE(moments.exp_avg.abs().sum().item<double>() > 0);
    resumed.SetMoments(i, moments);
  }
  EXPECT_EQ(resumed.StepCount(), 5);
  for (int step = 5; step < 10; ++step) {
    SetGradients(first, step);
    SetGradients(second, step);
    adam.Step();
    resumed.Step();
  }
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(first[i].equal(second[i])) << "parameter " << i;
  }
}

// The parameters become views of one buffer (values and identity kept) with gradients that
// view another; ZeroGrad zeroes them all, and a backward pass accumulates into them.
TEST(CapturableAdamMoments, ParametersAndGradientsViewFlatBuffers) {
  std::vector<torch::Tensor> parameters = MakeParameters(5);
  const std::vector<torch::Tensor> before = Clones(parameters);
  std::vector<const void*> identities;
  for (const torch::Tensor& parameter : parameters) {
    identities.push_back(parameter.unsafeGetTensorImpl());
  }
  CapturableAdam adam(parameters, CapturableAdamOptions{});
  for (size_t i = 0; i < parameters.size(); ++i) {
    EXPECT_EQ(parameters[i].unsafeGetTensorImpl(), identities[i]);
    EXPECT_TRUE(parameters[i].equal(before[i])) << "parameter " << i;
    EXPECT_TRUE(parameters[i].requires_grad());
    ASSERT_TRUE(parameters[i].grad().defined());
  }
  // Consecutive in one buffer.
  EXPECT_EQ(parameters[1].data_ptr<float>(), parameters[0].data_ptr<float>() + 8 * 9);

  torch::Tensor loss = torch::zeros({});
  for (const torch::Tensor& parameter : parameters) loss = loss + parameter.sum() * 2;
  loss.backward();
  for (const torch::Tensor& parameter : parameters) {
    EXPECT_TRUE(parameter.grad().equal(torch::full_like(parameter, 2)));
  }
  adam.ZeroGrad();
  for (const torch::Tensor& parameter : parameters) {
    EXPECT_TRUE(parameter.grad().equal(torch::zeros_like(parameter)));
  }
}

}  // namespace
}  // namespace classifier
