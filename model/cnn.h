// Private to classifier_model (network.cc, trainer.cc, device.cc): the LibTorch module behind
// TrainedModel. Includes <torch/torch.h>, so never include it from a public header, server/
// or client/.
#ifndef CLASSIFIER_MODEL_CNN_H_
#define CLASSIFIER_MODEL_CNN_H_

#include <torch/torch.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/network.h"

namespace classifier {

// The rows of a batch that one data-parallel rank holds. What is drawn per image (augmentation's
// transforms, dropout's masks) is drawn for the whole batch, in the order one process draws it,
// and these rows are taken: every rank's generator advances alike, and the ranks together use
// exactly the draws one process would.
struct BatchShard {
  int64_t batch_size = 0;  // Images in the whole batch.
  torch::Tensor rows;      // kLong, on the training device: this rank's rows, ascending.
};

// The tutorial's CNN, generalised over Architecture: per entry of conv_channels a
// conv<i> (kernel_size, padding kernel_size / 2), ReLU and 2x2 max-pool, then fc1 from the
// flattened features (NCHW order, as Python's x.reshape(x.shape[0], -1)) to num_classes, or,
// with hidden_units, fc1 to the hidden units, ReLU, and fc2 to num_classes; dropout (training
// only) before the last linear layer.
class CnnImpl : public torch::nn::Module {
 public:
  // `architecture` must have passed ValidateArchitecture.
  explicit CnnImpl(const Architecture& architecture);

  // x: {N, input_channels, image_size, image_size} floats in [0, 1]. Returns {N, num_classes}
  // logits.
  // In training mode with architecture.dropout > 0, the dropout mask is drawn on x's device
  // from `dropout_generator` (one of that device's kind: batch_draws.h), which must then be
  // given; with `shard`, x holds shard's rows of a larger batch, and the mask is drawn for
  // that batch.
  torch::Tensor forward(torch::Tensor x, at::Generator* dropout_generator = nullptr,
                        const BatchShard* shard = nullptr);

  // The convolutions' parameters (weights and biases), e.g. to freeze them.
  std::vector<torch::Tensor> ConvolutionParameters();

  // PyTorch's default initialisation of Conv2d and Linear (weight and bias both
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in))), drawn in order conv1.weight, conv1.bias, ... from
  // `generator` (a CPU generator; the parameters must be on the CPU).
  void Initialize(at::Generator& generator);

  // Moves the module to `device`. On the CPU the conv weights are also stored channels-last,
  // which makes oneDNN's convolutions and the max-pools that follow them two to three times
  // faster for these small layers; the values, the flatten order and the state dict are
  // unchanged.
  void PlaceOn(const torch::Device& device);

 private:
  std::vector<torch::nn::Conv2d> convs_;
  torch::nn::Linear fc1_{nullptr};
  torch::nn::Linear fc2_{nullptr};  // Only with hidden_units.
  double dropout_ = 0;
};
TORCH_MODULE(Cnn);

struct TrainedModel::Impl {
  // Constant after construction: the module is in eval mode on `device` and never modified,
  // so concurrent forward passes are safe.
  Architecture architecture;
  std::string device_name;
  torch::Device device;
  Cnn module;
};

// Turns an exception thrown by LibTorch into a status; `what` says what was being done.
absl::Status StatusFromException(const std::exception& e, const std::string& what);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_CNN_H_
