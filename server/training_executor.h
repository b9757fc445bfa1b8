// Turns a TrainRequest into a trained, evaluated, registered model: the
// JobExecutor that the worker thread runs. Also the one place where a request
// is validated and defaults applied.
#ifndef CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
#define CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_

#include <string>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "model/trainer.h"
#include "server/dataset_catalog.h"
#include "server/job_manager.h"
#include "server/model_registry.h"

namespace classifier {

// The tutorial's configuration: what zero / absent fields mean.
inline constexpr char kDefaultDataset[] = "mnist";
inline constexpr int kDefaultEpochs = 10;
inline constexpr int kMaxEpochs = 1000;
inline constexpr int kDefaultBatchSize = 60;
inline constexpr double kDefaultLearningRate = 1e-3;
inline constexpr int kMaxProgressReportsPerEpoch = 1000;

struct TrainPlan {
  std::string dataset;
  TrainOptions options;
};

// Validates `request` against the catalog and applies the defaults.
// INVALID_ARGUMENT names the field and its allowed range; NOT_FOUND names an
// unknown dataset or a missing file.
absl::StatusOr<TrainPlan> PlanTraining(const v1::TrainRequest& request,
                                       const DatasetCatalog& catalog, const std::string& device);

class TrainingExecutor : public JobExecutor {
 public:
  // Every pointer must outlive the executor.
  TrainingExecutor(DatasetCatalog* catalog, ModelRegistry* registry, std::string device);

  v1::JobEvent::Started Describe(const v1::TrainRequest& request) const override;
  JobOutcome Execute(Job& job) override;

 private:
  DatasetCatalog* const catalog_;
  ModelRegistry* const registry_;
  const std::string device_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_TRAINING_EXECUTOR_H_
