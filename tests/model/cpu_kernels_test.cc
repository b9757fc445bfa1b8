// The hand-written CPU kernels of classifier_model against LibTorch's own operators: the fused
// ReLU + 2x2 max-pool (model/relu_pool.h) and the single-input-channel convolution
// (model/single_channel_conv.h), values and gradients; a few Adam steps of the tutorial's CNN
// built both ways; then the service's forward (TrainedModel::PredictProbabilities, which uses
// both on the CPU) against a plain LibTorch forward of its own parameters.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/dataset.h"
#include "gtest/gtest.h"
#include "model/network.h"
#include "model/relu_pool.h"
#include "model/rowwise_linear.h"
#include "model/single_channel_conv.h"
#include "model/trainer.h"

namespace classifier {
namespace {

constexpr double kTolerance = 1e-5;

at::Tensor Reference(const at::Tensor& x) {
  return torch::max_pool2d(torch::relu(x), /*kernel_size=*/2);
}

// Values in a small integer grid, so that windows hold ties, zeros and all-negative sets.
at::Tensor TiedInput(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  return torch::randint(-3, 4, shape, generator, torch::kFloat).div_(2);
}

struct Case {
  std::vector<int64_t> shape;
  bool channels_last;
};

class ReluPoolTest : public ::testing::TestWithParam<Case> {};

TEST_P(ReluPoolTest, ValuesAndGradientsEqualLibTorch) {
  const Case& c = GetParam();
  for (const bool tied : {true, false}) {
    at::Tensor input =
        tied ? TiedInput(c.shape, 7) : torch::randn(c.shape, at::detail::createCPUGenerator(8));
    if (c.channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor fused_in = input.clone().requires_grad_(true);
    const at::Tensor reference_in = input.clone().requires_grad_(true);
    const at::Tensor fused = ReluMaxPool2x2(fused_in);
    const at::Tensor reference = Reference(reference_in);
    ASSERT_EQ(fused.sizes(), reference.sizes());
    EXPECT_TRUE(torch::equal(fused, reference)) << "tied " << tied;

    const at::Tensor weights = torch::randn(reference.sizes(), at::detail::createCPUGenerator(9));
    (fused * weights).sum().backward();
    (reference * weights).sum().backward();
    EXPECT_TRUE(torch::equal(fused_in.grad(), reference_in.grad())) << "tied " << tied;

    torch::NoGradGuard no_grad;  // The inference path keeps no winners.
    EXPECT_TRUE(torch::equal(ReluMaxPool2x2(input), reference.detach()));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ReluPoolTest,
                         ::testing::Values(Case{{4, 8, 28, 28}, true}, Case{{4, 16, 14, 14}, true},
                                           Case{{3, 8, 28, 28}, false}, Case{{2, 5, 7, 9}, true},
                                           Case{{2, 3, 7, 9}, false}, Case{{1, 1, 2, 2}, false}));

TEST(ReluPool, NanPropagates) {
  at::Tensor input = torch::ones({1, 2, 4, 4});
  input[0][1][2][3] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor fused = ReluMaxPool2x2(input);
  EXPECT_TRUE(std::isnan(fused[0][1][1][1].item<float>()));
  EXPECT_EQ(torch::isnan(fused).sum().item<int64_t>(), 1);
}

struct ConvCase {
  int64_t channels, kernel, height, width;
  bool channels_last_weight;
};

class SingleChannelConvTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(SingleChannelConvTest, ValuesAndGradientsMatchLibTorch) {
  const ConvCase& c = GetParam();
  at::Generator generator = at::detail::createCPUGenerator(11);
  const at::Tensor x = torch::rand({5, 1, c.height, c.width}, generator);
  at::Tensor weight = torch::randn({c.channels, 1, c.kernel, c.kernel}, generator);
  if (c.channels_last_weight) {
    weight = torch::empty_like(weight, at::MemoryFormat::ChannelsLast).copy_(weight);
  }
  const at::Tensor bias = torch::randn({c.channels}, generator);
  const int64_t padding = c.kernel / 2;
  ASSERT_TRUE(SingleChannelConvApplies(x, weight, padding));

  const at::Tensor w1 = weight.detach().clone().requires_grad_(true);
  const at::Tensor b1 = bias.clone().requires_grad_(true);
  const at::Tensor w2 = weight.detach().clone().requires_grad_(true);
  const at::Tensor b2 = bias.clone().requires_grad_(true);
  const at::Tensor ours = SingleChannelConv(x, w1, b1, padding);
  const at::Tensor reference = torch::conv2d(x, w2, b2, /*stride=*/1, padding);
  ASSERT_EQ(ours.sizes(), reference.sizes());
  EXPECT_TRUE(torch::allclose(ours, reference, /*rtol=*/0, /*atol=*/kTolerance))
      << (ours - reference).abs().max().item<float>();

  const at::Tensor weights = torch::randn(reference.sizes(), generator);
  (ours * weights).sum().backward();
  (reference * weights).sum().backward();
  // Gradients sum ~5 * H * W products: compare relative to their size.
  for (auto [got, want] : {std::pair{w1.grad(), w2.grad()}, {b1.grad(), b2.grad()}}) {
    ASSERT_EQ(got.sizes(), want.sizes());
    const double scale = std::max(1.0, want.abs().max().item<double>());
    EXPECT_LE((got - want).abs().max().item<double>(), kTolerance * scale);
  }
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(SingleChannelConv(x, weight, bias, padding), reference.detach(),
                              /*rtol=*/0, /*atol=*/kTolerance));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SingleChannelConvTest,
                         ::testing::Values(ConvCase{8, 3, 28, 28, true},
                                           ConvCase{8, 3, 28, 28, false},
                                           ConvCase{16, 3, 9, 7, false},
                                           ConvCase{24, 3, 1, 2, true},
                                           ConvCase{8, 3, 14, 5, true}));

TEST(SingleChannelConv, FallsBackWhereItDoesNotApply) {
  const at::Tensor x = torch::rand({2, 2, 8, 8});  // Two input channels.
  const at::Tensor weight = torch::randn({4, 2, 3, 3});
  const at::Tensor bias = torch::randn({4});
  EXPECT_FALSE(SingleChannelConvApplies(x, weight, 1));
  EXPECT_TRUE(
      torch::equal(SingleChannelConv(x, weight, bias, 1), torch::conv2d(x, weight, bias, 1, 1)));
  const at::Tensor grey = torch::rand({2, 1, 8, 8});
  EXPECT_FALSE(
      SingleChannelConvApplies(grey.clone().requires_grad_(true), torch::randn({8, 1, 3, 3}), 1));
  EXPECT_FALSE(SingleChannelConvApplies(grey, torch::randn({6, 1, 3, 3}), 1));  // 6 channels.
  EXPECT_FALSE(SingleChannelConvApplies(grey, torch::randn({8, 1, 5, 5}), 2));  // 5x5.
  const at::Tensor five = torch::randn({8, 1, 5, 5});
  EXPECT_TRUE(torch::equal(SingleChannelConv(grey, five, torch::zeros({8}), 2),
                           torch::conv2d(grey, five, torch::zeros({8}), 1, 2)));
}

TEST(RowwiseLinear, MatchesLibTorchAndNeverDependsOnTheBatch) {
  at::Generator generator = at::detail::createCPUGenerator(12);
  const at::Tensor x = torch::randn({37, 784}, generator);
  const at::Tensor weight = torch::randn({10, 784}, generator);
  const at::Tensor bias = torch::randn({10}, generator);
  torch::NoGradGuard no_grad;
  const at::Tensor all = RowwiseLinear(x, weight, bias);
  const at::Tensor reference = torch::linear(x, weight, bias);
  EXPECT_TRUE(torch::allclose(all, reference, /*rtol=*/0, /*atol=*/1e-3))
      << (all - reference).abs().max().item<float>();  // Sums of 784 products near 28.
  for (int64_t row : {0, 5, 36}) {
    EXPECT_TRUE(
        torch::equal(RowwiseLinear(x.slice(0, row, row + 1), weight, bias), all[row].unsqueeze(0)))
        << "row " << row;
    EXPECT_TRUE(torch::equal(RowwiseLinear(x.slice(0, row, 37), weight, bias)[0], all[row]));
  }
}

// The tutorial's CNN as plain LibTorch modules, or (`fused`) with the hand-written kernels.
struct TinyCnn {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 8, 3).padding(1)};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(8, 16, 3).padding(1)};
  torch::nn::Linear fc1{16 * 7 * 7, 10};

  std::vector<at::Tensor> Parameters() {
    return {conv1->weight, conv1->bias, conv2->weight, conv2->bias, fc1->weight, fc1->bias};
  }
  at::Tensor Forward(at::Tensor x, bool fused) {
    auto pool = [fused](const at::Tensor& t) { return fused ? ReluMaxPool2x2(t) : Reference(t); };
    x = pool(fused ? SingleChannelConv(x, conv1->weight, conv1->bias, /*padding=*/1)
                   : conv1->forward(x));
    x = pool(conv2->forward(x));
    return fc1->forward(x.reshape({x.size(0), -1}));
  }
};

TEST(ReluPool, AdamStepsOfTheTutorialsCnnMatchLibTorch) {
  torch::manual_seed(3);
  TinyCnn fused, reference;
  {
    torch::NoGradGuard no_grad;
    const std::vector<at::Tensor> from = fused.Parameters();
    const std::vector<at::Tensor> to = reference.Parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  // Channels-last conv weights, as the service places them on the CPU.
  for (TinyCnn* net : {&fused, &reference}) {
    for (torch::nn::Conv2d* conv : {&net->conv1, &net->conv2}) {
      torch::NoGradGuard no_grad;
      at::Tensor weight = torch::empty_like((*conv)->weight, at::MemoryFormat::ChannelsLast);
      weight.copy_((*conv)->weight);
      (*conv)->weight.set_data(weight);
    }
  }
  torch::optim::Adam fused_adam(fused.Parameters(), torch::optim::AdamOptions(1e-3));
  torch::optim::Adam reference_adam(reference.Parameters(), torch::optim::AdamOptions(1e-3));
  at::Generator generator = at::detail::createCPUGenerator(4);
  for (int step = 0; step < 5; ++step) {
    const at::Tensor x = torch::rand({60, 1, 28, 28}, generator);
    const at::Tensor y = torch::randint(0, 10, {60}, generator, torch::kLong);
    for (auto [net, adam] : {std::pair{&fused, &fused_adam}, {&reference, &reference_adam}}) {
      const at::Tensor loss =
          torch::nn::functional::cross_entropy(net->Forward(x, net == &fused), y);
      adam->zero_grad();
      loss.backward();
      adam->step();
    }
  }
  const std::vector<at::Tensor> got = fused.Parameters();
  const std::vector<at::Tensor> want = reference.Parameters();
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(torch::allclose(got[i], want[i], /*rtol=*/0, /*atol=*/kTolerance))
        << "parameter " << i << " differs by " << (got[i] - want[i]).abs().max().item<float>();
  }
}

// The service's inference forward (fused on the CPU) against LibTorch's functional forward of
// the very parameters the model reports.
TEST(ReluPool, ServiceForwardMatchesLibTorch) {
  Dataset data;
  data.rows = data.cols = 28;
  data.num_classes = 10;
  constexpr int64_t kImages = 120;
  data.pixels.resize(kImages * 28 * 28);
  data.labels.resize(kImages);
  uint32_t state = 1;
  for (uint8_t& pixel : data.pixels)
    pixel = static_cast<uint8_t>((state = state * 69069 + 1) >> 24);
  for (int64_t i = 0; i < kImages; ++i) data.labels[i] = static_cast<uint8_t>(i % 10);
  TrainOptions options;
  options.epochs = 1;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  TrainingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  ASSERT_TRUE(model.ok()) << model.status();

  absl::StatusOr<std::vector<ParameterValues>> parameters = (*model)->Parameters();
  ASSERT_TRUE(parameters.ok()) << parameters.status();
  std::vector<at::Tensor> p;
  for (ParameterValues& values : *parameters) {
    p.push_back(torch::from_blob(values.values.data(), values.shape, torch::kFloat));
  }
  ASSERT_EQ(p.size(), 6u);
  std::vector<float> pixels(data.pixels.begin(), data.pixels.end());
  for (float& pixel : pixels) pixel /= 255.0f;
  const at::Tensor x = torch::from_blob(pixels.data(), {kImages, 1, 28, 28}, torch::kFloat);
  at::Tensor h = Reference(torch::conv2d(x, p[0], p[1], /*stride=*/1, /*padding=*/1));
  h = Reference(torch::conv2d(h, p[2], p[3], /*stride=*/1, /*padding=*/1));
  const at::Tensor want = torch::softmax(torch::linear(h.reshape({kImages, -1}), p[4], p[5]), 1);

  absl::StatusOr<std::vector<float>> got = (*model)->PredictProbabilities(pixels, kImages);
  ASSERT_TRUE(got.ok()) << got.status();
  const at::Tensor got_tensor = torch::from_blob(got->data(), {kImages, 10}, torch::kFloat);
  EXPECT_TRUE(torch::allclose(got_tensor, want, /*rtol=*/0, /*atol=*/kTolerance))
      << (got_tensor - want).abs().max().item<float>();
}

}  // namespace
}  // namespace classifier
