// The training loop: shuffled batches, cross-entropy, Adam; reports through an observer.
#ifndef CLASSIFIER_MODEL_TRAINER_H_
#define CLASSIFIER_MODEL_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/dataset.h"
#include "model/network.h"

namespace classifier {

// Validated, defaults applied: the server translates a request into this.
struct TrainOptions {
  int epochs = 10;
  int batch_size = 60;
  double learning_rate = 1e-3;
  uint64_t seed = 0;
  // Progress reports within each epoch, evenly spaced; 0 = only epoch ends.
  int progress_reports_per_epoch = 0;
  // A device ResolveDevice returned.
  std::string device = "cpu";
  Architecture architecture;
};

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
  double elapsed_seconds = 0;  // Since training started.
  double eta_seconds = 0;      // Estimate for the remaining epochs.
};

// Receives reports on the training thread; implementations must be quick and must not throw.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;
  virtual void OnProgress(const ProgressStats& stats) { (void)stats; }
  virtual void OnEpochEnd(const EpochStats& stats) { (void)stats; }
  // Polled before every batch: true stops training at that batch boundary.
  virtual bool StopRequested() { return false; }
};

// Trains one network on one dataset. Not thread-safe: one thread runs it.
class Trainer {
 public:
  // Checks the options against the data (batch size, architecture vs image size...):
  // INVALID_ARGUMENT naming the field. `train` must outlive the trainer.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const Dataset& train,
                                                         const TrainOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs every epoch. The same seed, data and options give bit-identical weights on CPU.
  // Returns CANCELLED when the observer asked to stop, INTERNAL naming the epoch and batch
  // when the loss becomes NaN or infinite.
  absl::StatusOr<std::unique_ptr<TrainedModel>> Run(TrainingObserver& observer);

  struct Impl;

 private:
  explicit Trainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace classifier

#endif  // CLASSIFIER_MODEL_TRAINER_H_
