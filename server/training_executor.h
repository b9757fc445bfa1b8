// Turns a TrainRequest into a trained, evaluated, registered model: the
// JobExecutor that the worker thread runs. Also the one place where a request
// is validated and defaults applied.
#ifndef CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
#define CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "model/trainer.h"
#include "server/dataset_catalog.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/store.h"

namespace classifier {

// The tutorial's configuration: what zero / absent fields mean.
inline constexpr char kDefaultDataset[] = "mnist";
inline constexpr int kDefaultEpochs = 10;
inline constexpr int kMaxEpochs = 1000;
inline constexpr int kDefaultBatchSize = 60;
inline constexpr double kDefaultLearningRate = 1e-3;
inline constexpr int kMaxProgressReportsPerEpoch = 1000;
inline constexpr double kMaxValidationFraction = 0.5;
inline constexpr int kMaxEarlyStoppingPatience = 1000;
inline constexpr double kMaxWeightDecay = 1.0;
inline constexpr double kDefaultLrGamma = 0.1;
// Datasets of digits, whose meaning flips change: augmentation flips are refused on them.
inline constexpr const char* kDigitDatasets[] = {"mnist"};

// More trials than this in one sweep is RESOURCE_EXHAUSTED: a sweep holds the worker (and the
// queue behind it) for all of its trials.
inline constexpr int kMaxSweepTrials = 16;

// One trial of a sweep: the values it tries (for its TrialStarted event) and its options.
struct TrialPlan {
  v1::JobEvent::TrialStarted started;
  TrainOptions options;
};

struct TrainPlan {
  std::string dataset;
  TrainOptions options;
  // The trials of a sweep, in order; empty for a plain job.
  std::vector<TrialPlan> trials;
};

// Validates `request` against the catalog (and, for init_from_model, the registry; may be null
// when there is none) and applies the defaults. INVALID_ARGUMENT names the field and its allowed
// range; NOT_FOUND names an unknown dataset, model or a missing file; FAILED_PRECONDITION an
// init_from_model of another shape; RESOURCE_EXHAUSTED a sweep of too many trials.
absl::StatusOr<TrainPlan> PlanTraining(const v1::TrainRequest& request,
                                       const DatasetCatalog& catalog, const std::string& device,
                                       const ModelRegistry* registry);

class TrainingExecutor : public JobExecutor {
 public:
  // Every pointer must outlive the executor. With a store, checkpoints are written to
  // `checkpoint_dir` after every epoch (and where an interrupted job stopped) and recorded in
  // the store; without one, jobs cannot resume. `metrics` (may be null) gets each epoch's end.
  TrainingExecutor(DatasetCatalog* catalog, ModelRegistry* registry, Store* store,
                   std::string checkpoint_dir, std::string device, Metrics* metrics = nullptr);

  v1::JobEvent::Started Describe(const v1::TrainRequest& request) const override;
  v1::JobEvent::Resumed ResumePoint(const Job& job) override;
  JobOutcome Execute(Job& job) override;
  void Discard(const Job& job) override;

 private:
  // The job's checkpoint bytes, verified against their recorded SHA-256; nullopt when there
  // is none or it cannot be used (logged, naming the file).
  std::optional<std::string> LoadCheckpoint(const std::string& job_id);
  void SaveCheckpoint(Job& job, const TrainingCheckpoint& checkpoint, int trial);
  JobOutcome Train(Job& job);
  // Runs one training (a plain job, or trial `trial` of a sweep: its events are tagged with
  // it) and registers its model: fills the outcome's model, metrics and summary fields.
  JobOutcome RunTraining(Job& job, const TrainPlan& plan, const TrainOptions& options, int trial,
                         double* validation_accuracy);

  DatasetCatalog* const catalog_;
  ModelRegistry* const registry_;
  Store* const store_;
  const std::string checkpoint_dir_;
  const std::string device_;
  Metrics* const metrics_;

  friend class JobProgressObserver;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
