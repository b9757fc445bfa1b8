#include "model/cnn.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "model/relu_pool.h"
#include "model/rowwise_linear.h"
#include "model/single_channel_conv.h"

namespace classifier {
namespace {

// Whether the CPU takes the hand-written first convolution (single_channel_conv.h) and the
// fused ReLU + max-pool (relu_pool.h), or LibTorch's own op for each: the CMake cache variable
// CLASSIFIER_CPU_KERNELS, whose default, per LibTorch line, lives in model/CMakeLists.txt.
#if !defined(CLASSIFIER_CPU_CONV_KERNEL) || !defined(CLASSIFIER_CPU_POOL_KERNEL)
#error "model/CMakeLists.txt defines CLASSIFIER_CPU_CONV_KERNEL and CLASSIFIER_CPU_POOL_KERNEL"
#endif
constexpr bool kHandWrittenFirstConv = CLASSIFIER_CPU_CONV_KERNEL != 0;
constexpr bool kFusedReluPool = CLASSIFIER_CPU_POOL_KERNEL != 0;

}  // namespace

CnnImpl::CnnImpl(const Architecture& architecture) {
  int64_t channels = architecture.input_channels;
  int64_t side = architecture.image_size;
  for (size_t i = 0; i < architecture.conv_channels.size(); ++i) {
    const int64_t out = architecture.conv_channels[i];
    convs_.push_back(register_module(
        absl::StrCat("conv", i + 1),
        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, architecture.kernel_size)
                              .padding(architecture.kernel_size / 2))));
    channels = out;
    side /= 2;  // Odd kernels with padding k/2 keep the side; the max-pool halves it.
  }
  const int64_t features = channels * side * side;
  const int64_t classes = architecture.num_classes;
  if (architecture.hidden_units > 0) {
    fc1_ = register_module("fc1", torch::nn::Linear(features, int64_t{architecture.hidden_units}));
    fc2_ = register_module("fc2", torch::nn::Linear(int64_t{architecture.hidden_units}, classes));
  } else {
    fc1_ = register_module("fc1", torch::nn::Linear(features, classes));
  }
  dropout_ = architecture.dropout;
}

torch::Tensor CnnImpl::forward(torch::Tensor x, at::Generator* dropout_generator,
                               const BatchShard* shard) {
  for (torch::nn::Conv2d& conv : convs_) {
    // On the CPU: the first layer (one input channel) by hand (single_channel_conv.h), and
    // max_pool2d(relu(.), 2) fused (relu_pool.h); see those headers for why.
    const int64_t padding = conv->weight.size(2) / 2;  // As the constructor sets it.
    x = kHandWrittenFirstConv && SingleChannelConvApplies(x, conv->weight, padding)
            ? SingleChannelConv(x, conv->weight, conv->bias, padding)
            : conv->forward(x);
    x = kFusedReluPool ? ReluMaxPool2x2(x)
                       : torch::max_pool2d(torch::relu(x), /*kernel_size=*/{2, 2});
  }
  x = x.reshape({x.size(0), -1});
  torch::nn::Linear& classifier = fc2_ ? fc2_ : fc1_;
  // RowwiseLinear: the same bits for an image whatever its batch (rowwise_linear.h); it
  // steps aside while training.
  if (fc2_) x = torch::relu(RowwiseLinear(x, fc1_->weight, fc1_->bias));
  if (is_training() && dropout_ > 0) {
    TORCH_CHECK(dropout_generator != nullptr, "dropout needs the trainer's generator");
    // Inverted dropout, as torch.nn.Dropout: keep with 1 - p, scale the kept by 1 / (1 - p). The
    // mask comes from the batch's own generator (batch_draws.h), on x's device, so that a seed
    // and a resumed run reproduce it and nothing crosses from the host.
    torch::Tensor keep =
        torch::empty({shard != nullptr ? shard->batch_size : x.size(0), x.size(1)}, x.options())
            .bernoulli_(1.0 - dropout_, *dropout_generator);
    if (shard != nullptr) keep = keep.index_select(/*dim=*/0, shard->rows.to(x.device()));
    x = x * keep.div_(1.0 - dropout_);
  }
  return RowwiseLinear(x, classifier->weight, classifier->bias);
}

std::vector<torch::Tensor> CnnImpl::ConvolutionParameters() {
  std::vector<torch::Tensor> parameters;
  for (torch::nn::Conv2d& conv : convs_) {
    parameters.push_back(conv->weight);
    parameters.push_back(conv->bias);
  }
  return parameters;
}

void CnnImpl::Initialize(at::Generator& generator) {
  torch::NoGradGuard no_grad;
  auto init = [&generator](torch::Tensor& weight, torch::Tensor& bias) {
    // fan_in = in_channels * kernel area for a convolution, in_features for a linear layer.
    const int64_t fan_in = weight.numel() / weight.size(0);
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    weight.uniform_(-bound, bound, generator);
    bias.uniform_(-bound, bound, generator);
  };
  for (torch::nn::Conv2d& conv : convs_) init(conv->weight, conv->bias);
  init(fc1_->weight, fc1_->bias);
  if (fc2_) init(fc2_->weight, fc2_->bias);
}

void CnnImpl::PlaceOn(const torch::Device& device) {
  to(device);
  if (!device.is_cpu()) return;
  torch::NoGradGuard no_grad;
  for (torch::nn::Conv2d& conv : convs_) {
    // Not contiguous(ChannelsLast): for one input channel that keeps the NCHW strides (both
    // layouts are "contiguous"), and oneDNN then picks NCHW for the whole layer.
    torch::Tensor weight =
        torch::empty_like(conv->weight, conv->weight.options(), at::MemoryFormat::ChannelsLast);
    weight.copy_(conv->weight);
    conv->weight.set_data(weight);
  }
}

}  // namespace classifier
