// Random affine augmentation of training batches: rotation, translation, scale and flips,
// drawn from the trainer's seeded generator so that a run stays reproducible.
#ifndef CLASSIFIER_MODEL_AUGMENT_H_
#define CLASSIFIER_MODEL_AUGMENT_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace classifier {

inline constexpr double kMaxRotationDegrees = 180;
inline constexpr double kMaxTranslation = 0.5;
inline constexpr double kMinScale = 0.5;
inline constexpr double kMaxScale = 2.0;

// Each image of a batch gets its own transform, drawn uniformly: a rotation in
// [-rotation_degrees, rotation_degrees], a shift in [-translation, translation] times the
// image's side on each axis, a zoom in [scale_min, scale_max] (above 1 enlarges), and each
// enabled flip with probability 1/2. Pixels sampled from outside the image are 0 (background).
struct AugmentationOptions {
  double rotation_degrees = 0;  // [0, 180].
  double translation = 0;       // Fraction of the side, [0, 0.5].
  double scale_min = 1;         // [0.5, 2], <= scale_max.
  double scale_max = 1;         // [0.5, 2].
  bool horizontal_flip = false;
  bool vertical_flip = false;
};

// INVALID_ARGUMENT naming the field (augmentation.rotation_degrees, ...) and its range.
absl::Status ValidateAugmentation(const AugmentationOptions& options);

// True when every option is off: the trainer then draws nothing and changes nothing.
bool IsIdentity(const AugmentationOptions& options);

// A batch of `count` grey images of side x side pixels in [0, 1], row-major, image after image,
// with their labels.
struct ImageBatch {
  std::vector<float> pixels;
  std::vector<int64_t> labels;
};

// Applies the transforms the trainer applies, on the CPU, with a generator seeded by `seed`
// (for tests and tools: the trainer draws from its own generator on its own device). The same
// seed and batch give the same result; the labels are returned unchanged.
ImageBatch AugmentBatch(const ImageBatch& batch, int side, const AugmentationOptions& options,
                        uint64_t seed);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_AUGMENT_H_
