// What a data-parallel trainer needs from its group of ranks: one sum over every rank per step.
// The trainer knows nothing of how the ranks talk (distributed/ implements this on PyTorch's
// c10d); one process trains alone with none. Includes <torch/torch.h>: never include it from
// server/ or client/ headers.
#ifndef CLASSIFIER_MODEL_COLLECTIVE_H_
#define CLASSIFIER_MODEL_COLLECTIVE_H_

#include <torch/torch.h>

#include "absl/status/status.h"

namespace classifier {

class Collective {
 public:
  virtual ~Collective() = default;

  // This process's rank, in [0, world_size()).
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Replaces `values` (a contiguous float tensor on the trainer's device), on every rank, by
  // its sum over every rank. Blocks until every rank has called it. UNAVAILABLE naming the
  // cause when a rank is gone or does not answer within the group's timeout; the group is
  // unusable after an error.
  virtual absl::Status SumInPlace(torch::Tensor& values) = 0;

  // Replaces `values` (a contiguous tensor of the same shape and type on every rank), on every
  // rank, by rank `root`'s. Blocks until every rank has called it. Errors as SumInPlace's.
  virtual absl::Status BroadcastInPlace(torch::Tensor& values, int root) = 0;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_COLLECTIVE_H_
