// The models the service has trained: their weight files under the state
// directory, their metadata, and the loaded networks that Predict and Evaluate
// share.
#ifndef CLASSIFIER_SERVER_MODEL_REGISTRY_H_
#define CLASSIFIER_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/metrics.h"
#include "model/network.h"

namespace classifier {

struct ModelRecord {
  std::string model_id;
  std::string job_id;
  std::string dataset;
  absl::Time created;
  EvaluationResult test_metrics;
  std::string weights_path;  // A PyTorch state dict file.
  int64_t size_bytes = 0;
  std::string sha256;
};

// A registered model with its network; immutable, shared by every request that
// uses it.
struct RegisteredModel {
  ModelRecord record;
  std::shared_ptr<const TrainedModel> network;
};

class ModelRegistry {
 public:
  // Weight files go to `models_dir`, created when needed.
  explicit ModelRegistry(std::string models_dir);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Writes the weights (temporary name, fsync, rename) and registers the model
  // under a new id. `record`'s id, path, size and hash are filled in here.
  // Thread-safe, like every method.
  absl::StatusOr<std::shared_ptr<const RegisteredModel>> Register(
      std::unique_ptr<TrainedModel> network, ModelRecord record);

  // The model named `model_id`, or the newest one when it is empty. NOT_FOUND
  // for an unknown id, FAILED_PRECONDITION (saying to train one first) when
  // there are none.
  absl::StatusOr<std::shared_ptr<const RegisteredModel>> Resolve(const std::string& model_id) const;

  // Oldest first.
  std::vector<std::shared_ptr<const RegisteredModel>> List() const;

 private:
  std::string NewModelId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string models_dir_;  // Constant after construction.

  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const RegisteredModel>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const RegisteredModel>> by_id_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 id_generator_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MODEL_REGISTRY_H_
