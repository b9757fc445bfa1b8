// The trainer's insides, shared by the training loop (trainer.cc) and its checkpoints
// (trainer_checkpoint.cc). Private to classifier_model.
#ifndef CLASSIFIER_MODEL_TRAINER_IMPL_H_
#define CLASSIFIER_MODEL_TRAINER_IMPL_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/capturable_adam.h"
#include "model/cnn.h"
#include "model/collective.h"
#include "model/cuda_graph.h"
#include "model/trainer.h"

namespace classifier {

// Everything that changes while training: what a checkpoint holds. Tensors live on the
// trainer's device; the generator is a CPU generator and, with the seed, the run's only source
// of randomness (each batch's draws come from the seed and the batch's place: batch_draws.h).
struct TrainingState {
  Cnn module{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  // Steps instead of `optimizer` when the run records CUDA graphs (set by Run); `optimizer`
  // then holds its moments only at checkpoints (SyncOptimizer).
  std::unique_ptr<CapturableAdam> capturable_adam;
  at::Generator generator;
  int epochs_done = 0;
  int64_t batches_done = 0;  // In epoch epochs_done + 1.
  // That epoch's permutation, once drawn (always when batches_done > 0). Drawn just before the
  // epoch's first batch, after the stop poll, so that the generator in a checkpoint taken before
  // that batch is the generator at the end of the previous epoch.
  torch::Tensor order;
  double loss_sum = 0;  // Over the batches done: the sum of mean loss * batch size.
  int64_t correct = 0;
  int64_t seen = 0;
  double epoch_seconds = 0;            // Spent on epoch epochs_done + 1 so far.
  double finished_epochs_seconds = 0;  // Spent on the complete epochs, for the ETA.
  double elapsed_seconds = 0;          // Since training started, over every run.
  // With validation: the epoch with the best validation accuracy so far (0 before the first)
  // and that accuracy; with keep_best, a copy of that epoch's parameters, in the order of
  // named_parameters().
  int best_epoch = 0;
  double best_accuracy = -1;
  std::vector<torch::Tensor> best_parameters;
};

// The position and running sums a checkpoint holds, by key: the one list SaveState writes and
// LoadState reads. `visit(key, value)` gets an int&, int64_t& or double& (const when `state` is).
template <typename State, typename Visitor>
void ForEachProgressField(State& state, Visitor&& visit) {
  visit("epoch", state.epochs_done);
  visit("batch", state.batches_done);
  visit("loss_sum", state.loss_sum);
  visit("correct", state.correct);
  visit("seen", state.seen);
  visit("epoch_seconds", state.epoch_seconds);
  visit("finished_epochs_seconds", state.finished_epochs_seconds);
  visit("elapsed_seconds", state.elapsed_seconds);
  visit("best_epoch", state.best_epoch);
  visit("best_accuracy", state.best_accuracy);
}

struct Trainer::Impl {
  Impl(const Dataset& train, TrainOptions options, torch::Device device, Collective* collective)
      : train(train), options(std::move(options)), device(device), collective(collective) {}

  // Constant after construction.
  const Dataset& train;
  const TrainOptions options;
  const torch::Device device;
  // The other ranks of a data-parallel run; null when this process trains alone.
  Collective* const collective;

  // Set by Restore: every Run starts from it. Empty: from scratch.
  std::string checkpoint;
  // DataFingerprint's value, computed on first use.
  std::optional<uint64_t> data_fingerprint;
  // With a validation split: the indices of the images trained on and of the held-out ones,
  // as kLong tensors on the CPU. Undefined without one (every image is trained on).
  torch::Tensor train_index;
  torch::Tensor validation_index;
  TrainingSummary summary;

  int64_t TrainCount() const { return train_index.defined() ? train_index.size(0) : train.size(); }
  // Whether Run records its full-batch steps as a CUDA graph (TrainOptions::cuda_graphs).
  bool RecordsCudaGraphs() const {
    return options.cuda_graphs && collective == nullptr && device.is_cuda() &&
           CudaGraphsAvailable() &&
           (options.optimizer == OptimizerKind::kAdam ||
            options.optimizer == OptimizerKind::kAdamW) &&
           IsIdentity(options.augmentation) && options.architecture.dropout == 0;
  }
  // Makes state.capturable_adam, with the moments of state.optimizer.
  void UseCapturableAdam(TrainingState& state) const;
  // Copies state.capturable_adam's moments, if any, into state.optimizer, for SaveState.
  void SyncOptimizer(TrainingState& state) const;
  // Whether early stopping ends the run after `state`'s epochs.
  bool StopsEarly(const TrainingState& state) const {
    return options.early_stopping_patience > 0 && state.epochs_done > 0 &&
           state.epochs_done - state.best_epoch >= options.early_stopping_patience;
  }

  absl::StatusOr<std::unique_ptr<TrainedModel>> Run(TrainingObserver& observer);

  // The last one may be partial.
  int64_t BatchesPerEpoch() const {
    return (TrainCount() + options.batch_size - 1) / options.batch_size;
  }
  // Identifies the training data, so that a checkpoint is not resumed on other data.
  uint64_t DataFingerprint();
  // Epoch 0: initialised weights, a fresh optimizer, the seeded generator.
  TrainingState NewState() const;
  // Where Run starts: the restored checkpoint, else NewState. With a collective, every rank
  // starts from rank 0's (its checkpoint or its new state, initial weights included), received
  // by broadcast: ranks started later, or without the checkpoint or the weights, join in step.
  absl::StatusOr<TrainingState> StartingState();
  // options.initial_weights' parameters into `module` (on the CPU, before PlaceOn).
  void CopyInitialWeights(CnnImpl& module) const;
  // INVALID_ARGUMENT naming the problem when the bytes are not a checkpoint of this run.
  absl::StatusOr<TrainingState> LoadState(const std::string& bytes);
  TrainingCheckpoint SaveState(const TrainingState& state);
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_TRAINER_IMPL_H_
