// Private to classifier_model: the LibTorch side of model/augment.h. Includes <torch/torch.h>,
// so never include it from a public header, server/ or client/.
#ifndef CLASSIFIER_MODEL_AUGMENT_TORCH_H_
#define CLASSIFIER_MODEL_AUGMENT_TORCH_H_

#include <torch/torch.h>

#include "model/augment.h"
#include "model/cnn.h"

namespace classifier {

// `images`: {N, C, H, W} floats on any device. Draws each image's transform from `generator`
// on the generator's device (in a fixed order, so the same generator state gives the same
// batch; the trainer's is on the images' device, so nothing is copied: batch_draws.h) and
// resamples on the images' device with affine_grid + grid_sample (bilinear, zeros outside).
// With `shard`, `images` are shard's rows of a larger batch: the transforms are drawn for that
// batch and the rows' ones applied.
torch::Tensor AugmentImages(const torch::Tensor& images, const AugmentationOptions& options,
                            at::Generator& generator, const BatchShard* shard = nullptr);

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_AUGMENT_TORCH_H_
