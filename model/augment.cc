#include "model/augment.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/augment_torch.h"

namespace classifier {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Uniform in [low, high], one value per image, from `generator`, on its device.
torch::Tensor Uniform(int64_t count, double low, double high, at::Generator& generator) {
  return torch::rand({count}, generator,
                     torch::TensorOptions().dtype(torch::kDouble).device(generator.device())) *
             (high - low) +
         low;
}

}  // namespace

absl::Status ValidateAugmentation(const AugmentationOptions& options) {
  auto in_range = [](double value, double low, double high) {
    return std::isfinite(value) && value >= low && value <= high;
  };
  if (!in_range(options.rotation_degrees, 0, kMaxRotationDegrees)) {
    return absl::InvalidArgumentError(absl::StrCat("augmentation.rotation_degrees must be in [0, ",
                                                   kMaxRotationDegrees, "], got ",
                                                   options.rotation_degrees));
  }
  if (!in_range(options.translation, 0, kMaxTranslation)) {
    return absl::InvalidArgumentError(
        absl::StrCat("augmentation.translation must be in [0, ", kMaxTranslation,
                     "] (a fraction of the side), got ", options.translation));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, double>{"scale_min", options.scale_min},
        std::pair<const char*, double>{"scale_max", options.scale_max}}) {
    if (!in_range(value, kMinScale, kMaxScale)) {
      return absl::InvalidArgumentError(absl::StrCat("augmentation.", name, " must be in [",
                                                     kMinScale, ", ", kMaxScale, "], got ", value));
    }
  }
  if (options.scale_min > options.scale_max) {
    return absl::InvalidArgumentError(absl::StrCat("augmentation.scale_min (", options.scale_min,
                                                   ") must not exceed scale_max (",
                                                   options.scale_max, ")"));
  }
  return absl::OkStatus();
}

bool IsIdentity(const AugmentationOptions& options) {
  return options.rotation_degrees == 0 && options.translation == 0 && options.scale_min == 1 &&
         options.scale_max == 1 && !options.horizontal_flip && !options.vertical_flip;
}

torch::Tensor AugmentImages(const torch::Tensor& images, const AugmentationOptions& options,
                            at::Generator& generator, const BatchShard* shard) {
  const int64_t n = shard != nullptr ? shard->batch_size : images.size(0);
  // Drawn in a fixed order, and only what is enabled.
  const auto on_generator = torch::TensorOptions().dtype(torch::kDouble).device(generator.device());
  const torch::Tensor zeros = torch::zeros({n}, on_generator);
  const torch::Tensor ones = torch::ones({n}, on_generator);
  const double max_angle = options.rotation_degrees * kPi / 180;
  const torch::Tensor angle = max_angle > 0 ? Uniform(n, -max_angle, max_angle, generator) : zeros;
  // In grid_sample's normalised coordinates the side is 2 long.
  const double shift = 2 * options.translation;
  const torch::Tensor tx = shift > 0 ? Uniform(n, -shift, shift, generator) : zeros;
  const torch::Tensor ty = shift > 0 ? Uniform(n, -shift, shift, generator) : zeros;
  const torch::Tensor scale = options.scale_min != options.scale_max
                                  ? Uniform(n, options.scale_min, options.scale_max, generator)
                                  : ones * options.scale_min;
  auto flip = [&](bool enabled) {
    return enabled ? torch::where(Uniform(n, 0, 1, generator) < 0.5, -ones, ones) : ones;
  };
  const torch::Tensor flip_x = flip(options.horizontal_flip);
  const torch::Tensor flip_y = flip(options.vertical_flip);

  // theta maps output coordinates to input ones: the inverse of "flip, zoom, rotate, shift".
  const torch::Tensor cos = torch::cos(angle) / scale;
  const torch::Tensor sin = torch::sin(angle) / scale;
  torch::Tensor theta = torch::stack({torch::stack({cos * flip_x, sin * flip_x, -tx}, /*dim=*/1),
                                      torch::stack({-sin * flip_y, cos * flip_y, -ty}, /*dim=*/1)},
                                     /*dim=*/1);
  if (shard != nullptr) theta = theta.index_select(/*dim=*/0, shard->rows.to(theta.device()));
  // A copy to the device only when the generator is elsewhere (the trainer's is not).
  theta = theta.to(images.device(), images.scalar_type());
  namespace F = torch::nn::functional;
  const torch::Tensor grid = F::affine_grid(theta, images.sizes(), /*align_corners=*/false);
  return F::grid_sample(images, grid,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kZeros)
                            .align_corners(false));
}

ImageBatch AugmentBatch(const ImageBatch& batch, int side, const AugmentationOptions& options,
                        uint64_t seed) {
  const int64_t count = static_cast<int64_t>(batch.labels.size());
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const torch::Tensor images = torch::from_blob(const_cast<float*>(batch.pixels.data()),
                                                {count, 1, side, side}, torch::kFloat)
                                   .clone();
  const torch::Tensor augmented = AugmentImages(images, options, generator).contiguous();
  ImageBatch out;
  out.pixels.assign(augmented.data_ptr<float>(), augmented.data_ptr<float>() + augmented.numel());
  out.labels = batch.labels;
  return out;
}

}  // namespace classifier
