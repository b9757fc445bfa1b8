#include "model/device.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/cnn.h"
#include "model/network.h"

namespace classifier {

absl::StatusOr<std::string> ResolveDevice(const std::string& spec) {
  try {
    if (spec == "cpu") return std::string("cpu");
    if (spec == "auto") return std::string(torch::cuda::is_available() ? "cuda:0" : "cpu");
    int64_t index = 0;
    if (spec != "cuda") {
      const std::string prefix = "cuda:";
      const std::string digits = spec.substr(std::min(spec.size(), prefix.size()));
      if (spec.compare(0, prefix.size(), prefix) != 0 || digits.empty() || digits.size() > 3 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return absl::InvalidArgumentError(absl::StrCat(
            "device \"", spec, "\" is not one of \"auto\", \"cpu\", \"cuda\", \"cuda:N\""));
      }
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"", spec, "\": CUDA is not available on this machine"));
    }
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (index >= count) {
      return absl::FailedPreconditionError(
          absl::StrCat("device \"", spec, "\": this machine has ", count, " CUDA device(s)"));
    }
    return absl::StrCat("cuda:", index);
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("resolving device \"", spec, "\""));
  }
}

absl::StatusOr<std::string> ResolveRankDevice(const std::string& spec, int local_rank) {
  absl::StatusOr<std::string> device = ResolveDevice(spec);
  if (!device.ok() || *device == "cpu" || (spec != "cuda" && spec != "auto")) return device;
  try {
    const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    return absl::StrCat("cuda:", std::max<int64_t>(local_rank, 0) % count);
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("resolving device \"", spec, "\""));
  }
}

absl::Status WarmUpDevice(const std::string& device) {
  if (device == "cpu") return absl::OkStatus();
  try {
    const torch::Device on(device);
    const Architecture tutorial;
    Cnn network(tutorial);
    network->to(on);
    const torch::Tensor images =
        torch::zeros({2, tutorial.input_channels, tutorial.image_size, tutorial.image_size},
                     torch::TensorOptions().device(on));
    const torch::Tensor labels = torch::zeros({2}, torch::dtype(torch::kLong).device(on));
    const torch::Tensor loss =
        torch::nn::functional::cross_entropy(network->forward(images), labels);
    loss.backward();
    (void)loss.item<float>();  // Waits for the device.
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return StatusFromException(e, absl::StrCat("starting device ", device));
  }
}

void SetComputeThreads(int threads) {
  if (threads > 0) at::set_num_threads(threads);
}

}  // namespace classifier
