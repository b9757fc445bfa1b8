// The trained network as the rest of the service sees it: a small interface with the LibTorch
// tensors behind it, so that server/ and client/ never include <torch/torch.h>.
#ifndef CLASSIFIER_MODEL_NETWORK_H_
#define CLASSIFIER_MODEL_NETWORK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/dataset.h"
#include "base/metrics.h"

namespace classifier {

// The network's shape. The defaults are exactly the tutorial's CNN:
//   conv1 1->8 3x3 pad 1, ReLU, maxpool 2; conv2 8->16 3x3 pad 1, ReLU, maxpool 2; fc1 784->10
// with parameter names conv1.weight, conv1.bias, conv2.weight, conv2.bias, fc1.weight, fc1.bias.
struct Architecture {
  int input_channels = 1;
  int image_size = 28;
  int num_classes = 10;
  std::vector<int> conv_channels = {8, 16};
  int kernel_size = 3;
  // 0 = none (the tutorial's). Otherwise fc1 maps the features to this many units, then ReLU,
  // and fc2 maps them to the classes.
  int hidden_units = 0;
  // Probability of zeroing each input of the last linear layer while training (inverted
  // dropout, drawn from the trainer's generator); 0 = none. Inference never drops.
  double dropout = 0;
};

// The same network shape: equal fields, dropout aside (it changes training, not the weights).
bool SameShape(const Architecture& a, const Architecture& b);

// "conv [8, 16] kernel 3, hidden 128, 10 classes": for messages.
std::string DescribeArchitecture(const Architecture& architecture);

// Checks that the architecture is well formed and that its convolutions fit the image size
// (each conv + maxpool 2 halves the side, which must stay at least 1). INVALID_ARGUMENT naming
// the field (architecture.kernel_size, ...) otherwise.
absl::Status ValidateArchitecture(const Architecture& architecture);

// One tensor of the state dict: its key and shape.
struct ParameterShape {
  std::string name;
  std::vector<int64_t> shape;
};

// The state dict's keys and shapes for `architecture`, in the network's order: for the defaults
// conv1.weight {8,1,3,3}, conv1.bias {8}, conv2.weight {16,8,3,3}, conv2.bias {16},
// fc1.weight {10,784}, fc1.bias {10}. INVALID_ARGUMENT when ValidateArchitecture fails.
absl::StatusOr<std::vector<ParameterShape>> StateDictLayout(const Architecture& architecture);

// The architecture whose state dict `bytes` is (its conv<i>/fc1/fc2 keys and shapes), for
// images of `image_size` with `input_channels`: what an imported file of unknown shape holds.
// INVALID_ARGUMENT naming the key when the file is not a state dict of this family of networks.
absl::StatusOr<Architecture> InferArchitecture(const std::string& bytes, int image_size = 28,
                                               int input_channels = 1);

// One tensor of the state dict with its values, for writers of other formats (ONNX) that must
// not depend on LibTorch.
struct ParameterValues {
  std::string name;            // The state dict key, e.g. "conv1.weight".
  std::vector<int64_t> shape;  // e.g. {8, 1, 3, 3}.
  // float32, row-major in `shape` (a conv weight is [out, in, kernel, kernel]), whatever the
  // memory layout of the tensor behind it.
  std::vector<float> values;
};

// A trained model, ready for inference. Immutable after creation: Predict and Evaluate are
// safe to call from several threads at once.
class TrainedModel {
 public:
  // Loads a state dict in the format ToStateDictBytes writes (a pickled dict of tensors, as
  // Python's torch.save of a plain dict), or the file Python's
  // torch.save(model.state_dict(), path) writes (pickle protocols 2-5, any floating dtype,
  // converted to float32). Wrong keys or shapes are INVALID_ARGUMENT naming them; so is any
  // file that is not such a state dict (never a crash, whatever the bytes).
  static absl::StatusOr<std::unique_ptr<TrainedModel>> FromStateDictBytes(
      const std::string& bytes, const Architecture& architecture, const std::string& device);

  ~TrainedModel();
  TrainedModel(const TrainedModel&) = delete;
  TrainedModel& operator=(const TrainedModel&) = delete;

  // A file that Python's torch.load opens as a dict of tensors with the parameter names above,
  // which the tutorial's CNN accepts in load_state_dict. Tensors are written from the CPU.
  absl::StatusOr<std::string> ToStateDictBytes() const;

  // A copy of every parameter, in the order and with the keys and shapes of StateDictLayout.
  absl::StatusOr<std::vector<ParameterValues>> Parameters() const;

  // `pixels` holds count * image_size^2 grey values in [0, 1] (not checked here: the caller
  // validates). Returns count * num_classes softmax probabilities, image after image.
  absl::StatusOr<std::vector<float>> PredictProbabilities(const std::vector<float>& pixels,
                                                          int64_t count) const;

  // Accuracy, mean cross-entropy, per-class precision / recall / F1 and the confusion matrix
  // over every image of `dataset`.
  absl::StatusOr<EvaluationResult> Evaluate(const Dataset& dataset) const;

  const Architecture& architecture() const;
  const std::string& device() const;

  // Opaque: the module and its device live in model/ only.
  struct Impl;
  explicit TrainedModel(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_NETWORK_H_
