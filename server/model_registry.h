// The models the service knows: their weight files under the state directory, their records
// in the store, the loaded networks that Predict and Evaluate share, and which one is
// deployed (the default of Predict and Evaluate).
#ifndef CLASSIFIER_SERVER_MODEL_REGISTRY_H_
#define CLASSIFIER_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/metrics.h"
#include "model/network.h"
#include "server/metrics.h"
#include "server/model_record.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

// A model with its network loaded (see model_record.h); immutable, shared by every request that
// uses it, so a deploy or a delete never pulls a network from under a request in flight.
struct LoadedModel {
  ModelRecord record;
  // Null when the weights file was missing or corrupt at start-up: `load_error` says why.
  std::shared_ptr<const TrainedModel> network;
  std::string load_error;
};

class ModelRegistry {
 public:
  // Weight files go to `models_dir`, records to `store` (may be null: memory only); both must
  // outlive the registry. Networks are loaded onto `device`. `metrics` (may be null) counts
  // loads and deploys.
  ModelRegistry(std::string models_dir, Store* store, std::string device,
                Metrics* metrics = nullptr);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Reads every stored model and checks its file (exists, SHA-256, loads). A bad file is
  // logged by name and its model answers DATA_LOSS; the others serve as usual.
  absl::Status LoadFromStore();

  // Writes the weights (temporary name, fsync, rename), records them and registers the model
  // under a new id; `record`'s id, path, size and hash are filled in here. Thread-safe, like
  // every method.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Register(std::unique_ptr<TrainedModel> network,
                                                              ModelRecord record);

  // The model named `model_id`; when it is empty, the deployed model, else the newest. NOT_FOUND
  // for an unknown id, FAILED_PRECONDITION (saying to train one first) when there are none,
  // DATA_LOSS naming the file when its weights could not be loaded.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Resolve(const std::string& model_id) const;

  // Makes `model_id` the default; persisted. NOT_FOUND / DATA_LOSS as Resolve.
  absl::Status Deploy(const std::string& model_id);
  // Removes a model and its file. FAILED_PRECONDITION for the deployed one.
  absl::Status Delete(const std::string& model_id);

  // Oldest first.
  std::vector<std::shared_ptr<const LoadedModel>> List() const;
  // Empty when none was deployed.
  std::string deployed_model_id() const;

 private:
  std::string NewModelId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Find(const std::string& model_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string models_dir_;
  Store* const store_;
  const std::string device_;
  Metrics* const metrics_;

  mutable Mutex mu_;
  std::vector<std::shared_ptr<const LoadedModel>> models_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const LoadedModel>> by_id_ ABSL_GUARDED_BY(mu_);
  std::string deployed_id_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 id_generator_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MODEL_REGISTRY_H_
