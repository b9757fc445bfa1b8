// The training loop: shuffled (optionally augmented) batches, cross-entropy, Adam / AdamW / SGD,
// an optional validation split; reports and checkpoints through an observer, and resumes from a
// checkpoint.
#ifndef CLASSIFIER_MODEL_TRAINER_H_
#define CLASSIFIER_MODEL_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/dataset.h"
#include "model/augment.h"
#include "model/network.h"
#include "model/train_options.h"

namespace classifier {

class Collective;  // model/collective.h

// The indices of the training images (ascending) and of the held-out ones (ascending) for a
// set of `size` images: round(size * fraction) of them held out, chosen by a generator seeded
// with `seed` (and separate from the trainer's own, so the split does not depend on the rest
// of the options). The same arguments give the same split.
struct ValidationSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};
ValidationSplit SplitForValidation(int64_t size, double fraction, uint64_t seed);

struct ProgressStats {
  int epoch = 0;  // 1-based.
  int epochs = 0;
  int64_t batch = 0;  // Batches done in this epoch, 1-based.
  int64_t batches = 0;
  double train_loss = 0;      // Mean over the epoch so far.
  double train_accuracy = 0;  // Fraction, over the epoch so far.
  double images_per_second = 0;
};

struct EpochStats {
  int epoch = 0;  // 1-based.
  int epochs = 0;
  double train_loss = 0;      // Mean over the epoch's batches, weighted by batch size.
  double train_accuracy = 0;  // Fraction of the epoch's images classified right while training.
  double images_per_second = 0;
  double learning_rate = 0;    // The epoch's, after the schedule.
  double elapsed_seconds = 0;  // Since training started.
  double eta_seconds = 0;      // Estimate for the remaining epochs.
  // On the held-out images after the epoch, when validation_fraction > 0.
  std::optional<double> validation_loss;      // Mean cross-entropy.
  std::optional<double> validation_accuracy;  // Fraction.
};

// How a successful Run ended.
struct TrainingSummary {
  int epochs_completed = 0;
  // Early stopping ended the run before its last epoch.
  bool stopped_early = false;
  // The epoch with the best validation accuracy (0 without validation) and that accuracy.
  int best_epoch = 0;
  double best_validation_accuracy = 0;
  // Whether the returned weights are those of best_epoch (keep_best) rather than the last.
  bool kept_best = false;
};

// A self-contained snapshot of a training run: the weights, the optimizer's state (Adam's and
// AdamW's moments and step counts, SGD's momentum buffers), the
// shuffling generator's state, the position (and, mid-epoch, that epoch's permutation), the
// running sums of the current epoch and the time spent so far. `bytes` is opaque and versioned
// (a magic, a format version, the payload's length and a checksum, then the payload) and safe
// to store in a file; Trainer::Restore reads it back. About 120 KB for the tutorial's network
// at an epoch boundary; a mid-epoch one adds 8 bytes per training image for the permutation.
struct TrainingCheckpoint {
  int epoch = 0;      // Epochs complete.
  int64_t batch = 0;  // Batches done in epoch `epoch + 1`; 0 at an epoch boundary.
  std::string bytes;
};

// The learning rate of `epoch` (1-based) under options' schedule.
double LearningRateForEpoch(const TrainOptions& options, int epoch);

// Receives reports on the training thread; implementations must be quick and must not throw.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void OnProgress(const ProgressStats& stats) { (void)stats; }
  virtual void OnEpochEnd(const EpochStats& stats) { (void)stats; }
  // Polled before every batch: true stops training at that batch boundary.
  virtual bool StopRequested() { return false; }
  // Called after every completed epoch (after OnEpochEnd, the last epoch included) and, when Run
  // stops because StopRequested() turned true, once more with the position where it stopped
  // (usually mid-epoch). The observer decides whether to persist it; the bytes are only valid
  // for the duration of the call unless copied.
  virtual void OnCheckpoint(const TrainingCheckpoint& checkpoint) { (void)checkpoint; }
};

// Trains one network on one dataset. Not thread-safe: one thread runs it.
class Trainer {
 public:
  // Checks the options against the data (CheckTrainOptions, then that every label has an
  // output): INVALID_ARGUMENT naming the field. `train` must outlive the trainer.
  //
  // With a `collective` (which must outlive the trainer), the trainer is one rank of a
  // data-parallel run, and every rank must be created with the same data and options. Every
  // rank draws the same permutation and the same per-image randomness from the same seed; each
  // batch of `batch_size` images (the global batch, as one process would take it) is split by
  // position: rank r takes the batch's images r, r + world_size, ... (so a batch smaller than
  // the world, such as an epoch's last, leaves the highest ranks nothing to do that step: they
  // still take part). Each rank's loss is its images' summed loss over the whole batch's count,
  // and one sum per step (SumInPlace over one flat buffer of every trainable gradient, the
  // batch's loss and right answers, and whether any rank was asked to stop) makes every rank's
  // gradient the gradient of the batch's mean loss: every rank takes the step one process
  // would (to rounding), and all report the same figures. Validation is split by position the
  // same way. A stop asked of any rank stops every rank one batch later, at the same batch;
  // checkpoints hold nothing of a rank's own, so any rank's resumes a run at any world size.
  // Every rank starts from rank 0's state, sent to the others when Run starts: rank 0's
  // restored checkpoint or its initial weights (TrainOptions::initial_weights) are enough, and
  // what the other ranks were given of either is not used.
  // CUDA graphs are not recorded.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const Dataset& train,
                                                         const TrainOptions& options,
                                                         Collective* collective = nullptr);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs every epoch, or, after Restore, the rest of the run from the checkpoint on. With a
  // collective, the collective's error (UNAVAILABLE) when a rank is lost; no checkpoint is
  // taken then. The same
  // seed, data and options give bit-identical weights on CPU (with the same thread count), and
  // so does a run stopped, checkpointed and resumed any number of times. Returns CANCELLED when
  // the observer asked to stop (after OnCheckpoint with the position), INTERNAL naming the
  // epoch and batch when the loss becomes NaN or infinite (no checkpoint is taken then). With
  // early_stopping_patience, Run returns before the last epoch once that many epochs went by
  // without a better validation accuracy (summary().stopped_early); with keep_best, the model
  // returned has the weights of the best epoch.
  absl::StatusOr<std::unique_ptr<TrainedModel>> Run(TrainingObserver& observer);

  // How the last successful Run ended; all zero before one.
  const TrainingSummary& summary() const;

  // Makes every later Run continue from `checkpoint_bytes` (TrainingCheckpoint::bytes written by
  // a Trainer with the same data and options): Run then starts where the checkpoint left off,
  // reports only the epochs after it (a mid-epoch checkpoint's epoch finishes and is reported
  // once, with the sums of its earlier batches), and ends with the weights an uninterrupted run
  // would have produced, bit for bit on CPU. The options must match the checkpoint's exactly
  // (architecture, batch_size, learning_rate, seed, epochs, validation_fraction, keep_best,
  // early_stopping_patience, optimizer, momentum, weight_decay, the learning-rate schedule and
  // augmentation)
  // except progress_reports_per_epoch
  // and device (resuming on another device is allowed, but bit-identity holds only on the
  // same one); so must the training data (its size and a fingerprint of its contents).
  // INVALID_ARGUMENT naming the problem when the bytes are corrupt or truncated (a checksum
  // catches damage before anything parses them), of another format version, or do not match;
  // the trainer is then unchanged.
  absl::Status Restore(const std::string& checkpoint_bytes);

  struct Impl;

 private:
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_TRAINER_H_
