// Turns a stored (resolved) TrainRequest into a trained, evaluated, registered model: the
// JobExecutor that the worker thread runs. The request's translation is train_request.h's.
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
#include "server/train_request.h"

namespace classifier {

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
