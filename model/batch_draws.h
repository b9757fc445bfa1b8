// Where a training batch's random draws come from: augmentation transforms and dropout masks.
#ifndef CLASSIFIER_MODEL_BATCH_DRAWS_H_
#define CLASSIFIER_MODEL_BATCH_DRAWS_H_

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include <cstdint>

namespace classifier {

// A generator on the training device, reseeded for each batch from (seed, epoch, batch).
//
// On the device, because a draw made on the host must be copied over, and a copy from pageable
// memory waits for the device's queue to drain: on an H100 that cost dropout 0.8 ms a batch
// (bench/README.md, session 12). Reseeded per batch, because then a resumed run draws what the
// uninterrupted one did without the generator's state in its checkpoint, and every rank of a
// data-parallel run draws the whole batch's values alike and keeps its own rows. The run's
// CPU generator (initial weights, each epoch's permutation) is left alone.
class BatchDraws {
 public:
  BatchDraws(torch::Device device, uint64_t seed);

  // Reseeds the generator for batch `batch` (1-based) of epoch `epoch` and returns it.
  at::Generator& ForBatch(int epoch, int64_t batch);

 private:
  const uint64_t seed_;
  at::Generator generator_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_BATCH_DRAWS_H_
