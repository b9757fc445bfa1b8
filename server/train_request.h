// A TrainRequest (the API's protobuf) into the trainer's options, and back into the request a
// job stores. Only the translation lives here, with what the server alone knows (its datasets,
// its models, the API's enum names); every option's default and rule is model/'s
// (model/train_options.h), called once per request at the edge.
#ifndef CLASSIFIER_SERVER_TRAIN_REQUEST_H_
#define CLASSIFIER_SERVER_TRAIN_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.pb.h"
#include "distributed/rank_environment.h"
#include "model/train_options.h"
#include "server/dataset_catalog.h"
#include "server/model_registry.h"

namespace classifier {

// The dataset a request without one trains on.
inline constexpr char kDefaultDataset[] = "mnist";
// `dataset` as a request names it, with the default applied: what a job trains on, what an
// import is measured on, and what ListJobs' dataset filter compares with.
inline std::string DatasetOrDefault(const std::string& dataset) {
  return dataset.empty() ? kDefaultDataset : dataset;
}
// Datasets of digits, whose meaning flips change: augmentation flips are refused on them.
inline constexpr const char* kDigitDatasets[] = {"mnist"};
// More trials than this in one sweep is RESOURCE_EXHAUSTED: a sweep holds the worker (and the
// queue behind it) for all of its trials.
inline constexpr int kMaxSweepTrials = 16;

// One trial of a sweep: the values it tries (for its TrialStarted event) and its options.
struct TrialPlan {
  v1::JobEvent::TrialStarted started;
  TrainOptions options;
  // The trial as a request of its own (the job's, without the sweep, with the trial's values):
  // what the other ranks of a distributed trial are started with.
  v1::TrainRequest request;
};

struct TrainPlan {
  std::string dataset;
  // Resolved (ResolveTrainOptions): defaults applied, every rule checked.
  TrainOptions options;
  // The trials of a sweep, in order; empty for a plain job.
  std::vector<TrialPlan> trials;
  // The ranks to train on (distributed.world_size; 1 = this process alone).
  int world_size = 1;
};

// Where a plan takes init_from_model's weights from: the registry, or, for a rank other than 0
// of a distributed job (classifier-rank), from rank 0, which sends every rank its starting state
// when the run starts (TrainOptions::initial_weights_from_rank0).
enum class InitFromModel { kFromRegistry, kFromRankZero };

// Translates `request` and resolves its options against the dataset (and, for init_from_model,
// the registry; may be null when there is none). INVALID_ARGUMENT names the field and its
// allowed range; NOT_FOUND names an unknown dataset or model; FAILED_PRECONDITION an
// init_from_model of another shape; RESOURCE_EXHAUSTED a sweep of too many trials.
absl::StatusOr<TrainPlan> PlanTraining(const v1::TrainRequest& request,
                                       const DatasetCatalog& catalog, const std::string& device,
                                       ModelRegistry* registry,
                                       InitFromModel init = InitFromModel::kFromRegistry);

// Trials in the sweep's cross product; an empty list keeps the request's own value (one entry).
// Each list is shorter than 2^31, so the product fits.
int64_t SweepTrials(const v1::Sweep& sweep);

// `request` with `plan`'s resolved values written in (dataset, epochs, batch_size, optimizer,
// the schedule, the architecture...): what a job stores, so that GetJob shows what runs and the
// worker, planning the stored request again, applies no default of its own.
v1::TrainRequest ResolvedRequest(const v1::TrainRequest& request, const TrainPlan& plan);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_TRAIN_REQUEST_H_
