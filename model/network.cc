#include "model/network.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/image.h"
#include "model/cnn.h"
#include "model/device.h"
#include "model/state_dict.h"

namespace classifier {
namespace {

// Bounds for ValidateArchitecture: generous for MNIST-like data, small enough that a
// malformed request cannot ask for gigabytes of parameters.
constexpr int kMaxInputChannels = 64;
constexpr int kMaxImageSize = 4096;
constexpr int kMinClasses = 2;
constexpr int kMaxClasses = 256;  // Labels are bytes.
constexpr size_t kMaxConvLayers = 8;
constexpr int kMaxConvChannels = 1024;
constexpr int kMaxKernelSize = 15;
constexpr int64_t kMaxFcInputs = int64_t{1} << 20;
constexpr int kMaxHiddenUnits = 4096;
constexpr double kMaxDropout = 0.9;
// Inference runs in chunks: on the CPU a batch much bigger than this falls out of the caches
// and gets slower per image (measured: 512 images at once halve the throughput); on a GPU
// bigger chunks keep it busy.
constexpr int64_t kCpuChunk = 128;
constexpr int64_t kCudaChunk = 8192;

int64_t ChunkFor(const torch::Device& device) { return device.is_cuda() ? kCudaChunk : kCpuChunk; }

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape.begin(), shape.end(), ", "), "]");
}

absl::Status OutOfRange(const std::string& field, int64_t value, int64_t low, int64_t high) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be between ", low, " and ", high, ", got ", value));
}

// A dataset must be grey images of the architecture's size, with labels it can predict.
absl::Status CheckDatasetFits(const Dataset& dataset, const Architecture& architecture) {
  if (architecture.input_channels != 1) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.input_channels is ",
                                                   architecture.input_channels,
                                                   " but datasets hold grey images (1 channel)"));
  }
  if (dataset.rows != architecture.image_size || dataset.cols != architecture.image_size) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset's images are ", dataset.rows, "x",
                                                   dataset.cols, " but architecture.image_size is ",
                                                   architecture.image_size));
  }
  if (static_cast<int64_t>(dataset.pixels.size()) != dataset.size() * dataset.image_size()) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset holds ", dataset.pixels.size(),
                                                   " pixels for ", dataset.size(), " images of ",
                                                   dataset.rows, "x", dataset.cols));
  }
  const auto max_label = std::max_element(dataset.labels.begin(), dataset.labels.end());
  if (max_label != dataset.labels.end() && *max_label >= architecture.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("the dataset has label ", int{*max_label},
                                                   " but architecture.num_classes is ",
                                                   architecture.num_classes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status StatusFromException(const std::exception& e, const std::string& what) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return absl::InternalError(absl::StrCat(what, ": ", error->what_without_backtrace()));
  }
  if (dynamic_cast<const std::bad_alloc*>(&e) != nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat(what, ": out of memory"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", e.what()));
}

absl::Status ValidateArchitecture(const Architecture& a) {
  if (a.input_channels < 1 || a.input_channels > kMaxInputChannels) {
    return OutOfRange("architecture.input_channels", a.input_channels, 1, kMaxInputChannels);
  }
  if (a.image_size < 1 || a.image_size > kMaxImageSize) {
    return OutOfRange("architecture.image_size", a.image_size, 1, kMaxImageSize);
  }
  if (a.num_classes < kMinClasses || a.num_classes > kMaxClasses) {
    return OutOfRange("architecture.num_classes", a.num_classes, kMinClasses, kMaxClasses);
  }
  if (a.conv_channels.size() > kMaxConvLayers) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.conv_channels has ",
                                                   a.conv_channels.size(), " layers; at most ",
                                                   kMaxConvLayers));
  }
  if (a.kernel_size < 1 || a.kernel_size > kMaxKernelSize || a.kernel_size % 2 == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture.kernel_size must be odd and between 1 and ", kMaxKernelSize,
                     ", got ", a.kernel_size));
  }
  int64_t side = a.image_size;
  for (size_t i = 0; i < a.conv_channels.size(); ++i) {
    const int channels = a.conv_channels[i];
    if (channels < 1 || channels > kMaxConvChannels) {
      return OutOfRange(absl::StrCat("architecture.conv_channels[", i, "]"), channels, 1,
                        kMaxConvChannels);
    }
    if (side < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "architecture.conv_channels: ", a.conv_channels.size(),
          " conv layers do not fit architecture.image_size ", a.image_size,
          " (each 2x2 max-pool halves the side; conv", i + 1, " would get a side of ", side, ")"));
    }
    side /= 2;
  }
  const int64_t channels = a.conv_channels.empty() ? a.input_channels : a.conv_channels.back();
  if (channels * side * side > kMaxFcInputs) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture: fc1 would have ", channels * side * side, " inputs; at most ",
                     kMaxFcInputs, " (use more conv layers or fewer channels)"));
  }
  if (a.hidden_units < 0 || a.hidden_units > kMaxHiddenUnits) {
    return OutOfRange("architecture.hidden_units", a.hidden_units, 0, kMaxHiddenUnits);
  }
  if (!std::isfinite(a.dropout) || a.dropout < 0 || a.dropout > kMaxDropout) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.dropout must be in [0, ",
                                                   kMaxDropout, "] (0 = none), got ", a.dropout));
  }
  return absl::OkStatus();
}

bool SameShape(const Architecture& a, const Architecture& b) {
  return a.input_channels == b.input_channels && a.image_size == b.image_size &&
         a.num_classes == b.num_classes && a.conv_channels == b.conv_channels &&
         a.kernel_size == b.kernel_size && a.hidden_units == b.hidden_units;
}

std::string DescribeArchitecture(const Architecture& a) {
  std::string text =
      absl::StrCat("conv [", absl::StrJoin(a.conv_channels, ", "), "] kernel ", a.kernel_size);
  if (a.hidden_units > 0) absl::StrAppend(&text, ", hidden ", a.hidden_units);
  absl::StrAppend(&text, ", ", a.num_classes, " classes");
  if (a.image_size != 28 || a.input_channels != 1) {
    absl::StrAppend(&text, ", ", a.input_channels, "x", a.image_size, "x", a.image_size, " images");
  }
  return text;
}

absl::StatusOr<std::vector<ParameterShape>> StateDictLayout(const Architecture& architecture) {
  if (absl::Status status = ValidateArchitecture(architecture); !status.ok()) return status;
  try {
    // The real module, so that the layout can never drift from what is registered.
    Cnn module(architecture);
    std::vector<ParameterShape> layout;
    for (const auto& item : module->named_parameters()) {
      const c10::IntArrayRef sizes = item.value().sizes();
      layout.push_back({item.key(), std::vector<int64_t>(sizes.begin(), sizes.end())});
    }
    return layout;
  } catch (const std::exception& e) {
    return StatusFromException(e, "building the network");
  }
}

absl::StatusOr<Architecture> InferArchitecture(const std::string& bytes, int image_size,
                                               int input_channels) {
  try {
    absl::StatusOr<std::map<std::string, at::Tensor>> tensors = ReadStateDict(bytes);
    if (!tensors.ok()) return tensors.status();
    auto shape_of = [&tensors](const std::string& key) -> std::optional<c10::IntArrayRef> {
      const auto found = tensors->find(key);
      if (found == tensors->end()) return std::nullopt;
      return found->second.sizes();
    };
    Architecture a;
    a.image_size = image_size;
    a.input_channels = input_channels;
    a.conv_channels.clear();
    for (size_t i = 1; i <= kMaxConvLayers; ++i) {
      const std::string key = absl::StrCat("conv", i, ".weight");
      const std::optional<c10::IntArrayRef> shape = shape_of(key);
      if (!shape.has_value()) break;
      if (shape->size() != 4 || (*shape)[2] != (*shape)[3]) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" has shape ",
                                                       ShapeString(*shape),
                                                       "; a conv weight is [out, in, k, k]"));
      }
      a.conv_channels.push_back(static_cast<int>((*shape)[0]));
      a.kernel_size = static_cast<int>((*shape)[2]);
    }
    const std::optional<c10::IntArrayRef> fc1 = shape_of("fc1.weight");
    if (!fc1.has_value() || fc1->size() != 2) {
      return absl::InvalidArgumentError(
          "state dict has no 2-d \"fc1.weight\": not a state dict of this service's CNN");
    }
    const std::optional<c10::IntArrayRef> fc2 = shape_of("fc2.weight");
    if (fc2.has_value()) {
      if (fc2->size() != 2) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"fc2.weight\" has shape ",
                                                       ShapeString(*fc2),
                                                       "; a linear weight is [out, in]"));
      }
      a.hidden_units = static_cast<int>((*fc1)[0]);
      a.num_classes = static_cast<int>((*fc2)[0]);
    } else {
      a.num_classes = static_cast<int>((*fc1)[0]);
    }
    // The keys and every shape are then checked by loading against this architecture.
    if (absl::Status status = ValidateArchitecture(a); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the state dict's shapes describe no valid network (", status.message(), ")"));
    }
    return a;
  } catch (const std::exception& e) {
    return StatusFromException(e, "reading the state dict");
  }
}

TrainedModel::TrainedModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TrainedModel::~TrainedModel() = default;

const Architecture& TrainedModel::architecture() const { return impl_->architecture; }
const std::string& TrainedModel::device() const { return impl_->device_name; }

absl::StatusOr<std::unique_ptr<TrainedModel>> TrainedModel::FromStateDictBytes(
    const std::string& bytes, const Architecture& architecture, const std::string& device) {
  if (absl::Status status = ValidateArchitecture(architecture); !status.ok()) return status;
  absl::StatusOr<std::string> device_name = ResolveDevice(device);
  if (!device_name.ok()) return device_name.status();

  try {
    absl::StatusOr<std::map<std::string, at::Tensor>> tensors_or = ReadStateDict(bytes);
    if (!tensors_or.ok()) return tensors_or.status();
    const std::map<std::string, at::Tensor>& tensors = *tensors_or;

    auto impl = std::make_unique<Impl>(
        Impl{architecture, *device_name, torch::Device(*device_name), Cnn(architecture)});
    std::vector<std::string> expected;
    for (const auto& item : impl->module->named_parameters()) expected.push_back(item.key());
    for (const auto& [key, tensor] : tensors) {
      if (std::find(expected.begin(), expected.end(), key) == expected.end()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict has unexpected key \"", key,
                                                       "\"; expected exactly ",
                                                       absl::StrJoin(expected, ", ")));
      }
    }
    torch::NoGradGuard no_grad;
    for (auto& item : impl->module->named_parameters()) {
      const std::string& key = item.key();
      const auto found = tensors.find(key);
      if (found == tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict lacks key \"", key,
                                                       "\"; expected exactly ",
                                                       absl::StrJoin(expected, ", ")));
      }
      const at::Tensor& tensor = found->second;
      if (tensor.sizes() != item.value().sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" has shape ", ShapeString(tensor.sizes()),
                         "; the architecture needs ", ShapeString(item.value().sizes())));
      }
      if (!tensor.is_floating_point()) {
        return absl::InvalidArgumentError(absl::StrCat("state dict key \"", key, "\" has dtype ",
                                                       c10::toString(tensor.scalar_type()),
                                                       "; expected floating point"));
      }
      const at::Tensor values = tensor.to(torch::kCPU, torch::kFloat);
      if (!torch::isfinite(values).all().item<bool>()) {
        return absl::InvalidArgumentError(
            absl::StrCat("state dict key \"", key, "\" holds NaN or infinite values"));
      }
      item.value().copy_(values);
    }
    impl->module->PlaceOn(impl->device);
    impl->module->eval();
    return std::make_unique<TrainedModel>(std::move(impl));
  } catch (const std::exception& e) {
    return StatusFromException(e, "loading the state dict");
  }
}

absl::StatusOr<std::string> TrainedModel::ToStateDictBytes() const {
  try {
    c10::Dict<std::string, at::Tensor> dict;
    for (const auto& item : impl_->module->named_parameters()) {
      dict.insert(item.key(), item.value().detach().to(torch::kCPU).contiguous().clone());
    }
    return WriteStateDict(dict);
  } catch (const std::exception& e) {
    return StatusFromException(e, "writing the state dict");
  }
}

absl::StatusOr<std::vector<ParameterValues>> TrainedModel::Parameters() const {
  try {
    std::vector<ParameterValues> parameters;
    for (const auto& item : impl_->module->named_parameters()) {
      // contiguous() undoes the channels-last layout PlaceOn gives the conv weights on the CPU.
      const at::Tensor tensor = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
      const float* data = tensor.data_ptr<float>();
      parameters.push_back({item.key(),
                            std::vector<int64_t>(tensor.sizes().begin(), tensor.sizes().end()),
                            std::vector<float>(data, data + tensor.numel())});
    }
    return parameters;
  } catch (const std::exception& e) {
    return StatusFromException(e, "copying the parameters");
  }
}

absl::StatusOr<std::vector<float>> TrainedModel::PredictProbabilities(
    const std::vector<float>& pixels, int64_t count) const {
  const Architecture& a = impl_->architecture;
  const int64_t per_image = int64_t{a.input_channels} * a.image_size * a.image_size;
  if (count < 0 || static_cast<int64_t>(pixels.size()) != count * per_image) {
    return absl::InvalidArgumentError(
        absl::StrCat("PredictProbabilities got ", pixels.size(), " pixels for ", count,
                     " images of ", a.input_channels, "x", a.image_size, "x", a.image_size));
  }
  std::vector<float> probabilities(static_cast<size_t>(count) * a.num_classes);
  try {
    // This thread's count as set at its start (model/compute_threads.h), else the process
    // default. (at::init_num_threads here would reset a thread's own count to the default, and
    // drop LibTorch's cached oneDNN primitives at every call.)
    at::internal::lazy_init_num_threads();
    c10::InferenceMode inference;
    const int64_t chunk = ChunkFor(impl_->device);
    for (int64_t start = 0; start < count; start += chunk) {
      const int64_t n = std::min(chunk, count - start);
      // from_blob does not copy; the forward pass only reads its input.
      torch::Tensor input =
          torch::from_blob(const_cast<float*>(pixels.data()) + start * per_image,
                           {n, a.input_channels, a.image_size, a.image_size}, torch::kFloat)
              .to(impl_->device);
      const torch::Tensor output = torch::softmax(impl_->module.ptr()->forward(input), /*dim=*/1)
                                       .to(torch::kCPU)
                                       .contiguous();
      std::memcpy(probabilities.data() + start * a.num_classes, output.data_ptr<float>(),
                  sizeof(float) * n * a.num_classes);
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, "predicting");
  }
  return probabilities;
}

absl::StatusOr<EvaluationResult> TrainedModel::Evaluate(const Dataset& dataset) const {
  const Architecture& a = impl_->architecture;
  if (absl::Status status = CheckDatasetFits(dataset, a); !status.ok()) return status;
  const int64_t classes = a.num_classes;
  double loss_sum = 0;
  std::vector<std::vector<int64_t>> confusion(classes, std::vector<int64_t>(classes, 0));
  try {
    // This thread's count as set at its start (model/compute_threads.h), else the process
    // default. (at::init_num_threads here would reset a thread's own count to the default, and
    // drop LibTorch's cached oneDNN primitives at every call.)
    at::internal::lazy_init_num_threads();
    c10::InferenceMode inference;
    const torch::Device& device = impl_->device;
    torch::Tensor counts =
        torch::zeros({classes * classes}, torch::dtype(torch::kLong).device(device));
    torch::Tensor losses = torch::zeros({}, torch::dtype(torch::kDouble).device(device));
    const int64_t chunk = ChunkFor(device);
    const int64_t pixels_per_image = dataset.image_size();
    for (int64_t start = 0; start < dataset.size(); start += chunk) {
      const int64_t n = std::min(chunk, dataset.size() - start);
      const torch::Tensor images =
          torch::from_blob(const_cast<uint8_t*>(dataset.pixels.data()) + start * pixels_per_image,
                           {n, 1, a.image_size, a.image_size}, torch::kUInt8)
              .to(device)
              .to(torch::kFloat)
              .div_(kPixelScale);
      const torch::Tensor labels =
          torch::from_blob(const_cast<uint8_t*>(dataset.labels.data()) + start, {n}, torch::kUInt8)
              .to(device)
              .to(torch::kLong);
      const torch::Tensor logits = impl_->module.ptr()->forward(images);
      losses += torch::nn::functional::cross_entropy(
                    logits, labels,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .to(torch::kDouble);
      counts += torch::bincount(labels * classes + logits.argmax(/*dim=*/1), /*weights=*/{},
                                /*minlength=*/classes * classes);
    }
    loss_sum = losses.item<double>();
    const torch::Tensor host_counts = counts.to(torch::kCPU).contiguous();
    const int64_t* data = host_counts.data_ptr<int64_t>();
    for (int64_t t = 0; t < classes; ++t) {
      for (int64_t p = 0; p < classes; ++p) confusion[t][p] = data[t * classes + p];
    }
  } catch (const std::exception& e) {
    return StatusFromException(e, "evaluating");
  }
  return MetricsFromConfusion(std::move(confusion), loss_sum);
}

}  // namespace classifier
