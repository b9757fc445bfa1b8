// The models the service knows: their records (in memory, for every model, and in the store),
// their weight files under the state directory, and the networks of the models in use, in a
// cache of bounded size; and which model is deployed (the default of Predict and Evaluate).
//
// Start-up reads records only, never weights: a network is loaded (its file read and its
// SHA-256 checked against the record) the first time a request needs it, once however many
// requests ask at the same moment, and stays in memory while the cache has room. The least
// recently used networks go first; the deployed model's never does.
#ifndef CLASSIFIER_SERVER_MODEL_REGISTRY_H_
#define CLASSIFIER_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/metrics.h"
#include "model/network.h"
#include "server/metrics.h"
#include "server/model_record.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

// A model with its network loaded (see model_record.h); immutable, shared by every request that
// uses it, so a deploy, an eviction or a delete never pulls a network from under a request in
// flight.
struct LoadedModel {
  ModelRecord record;
  std::shared_ptr<const TrainedModel> network;  // Never null.
};

class ModelRegistry {
 public:
  // Weight files go to `models_dir`, records to `store` (may be null: memory only); both must
  // outlive the registry. Networks are loaded onto `device`; those of the models in use stay in
  // memory up to `cache_bytes` of weights (their files' sizes). `metrics` (may be null) hears
  // loads, cache lookups and deploys.
  ModelRegistry(std::string models_dir, Store* store, std::string device, int64_t cache_bytes,
                Metrics* metrics = nullptr);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Reads every stored record (no weights). FAILED_PRECONDITION naming --model_cache_mb when a
  // stored model's weights alone would not fit the cache.
  absl::Status LoadFromStore();

  // Writes the weights (temporary name, fsync, rename), records them and registers the model
  // under a new id, its network in the cache; `record`'s id, path, size and hash are filled in
  // here. Thread-safe, like every method.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Register(std::unique_ptr<TrainedModel> network,
                                                              ModelRecord record);

  // The model named `model_id` with its network, loaded now if it is not in memory; when the id
  // is empty, the deployed model, else the newest. NOT_FOUND for an unknown id,
  // FAILED_PRECONDITION (saying to train one first) when there are none, DATA_LOSS naming the
  // file when its weights are missing, corrupt or do not load.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Resolve(const std::string& model_id);
  // The record alone (no weights read): NOT_FOUND for an unknown id.
  absl::StatusOr<ModelRecord> GetRecord(const std::string& model_id) const;

  // Makes `model_id` the default (its network loaded and kept in memory); persisted.
  // NOT_FOUND / DATA_LOSS as Resolve.
  absl::Status Deploy(const std::string& model_id);
  // Removes a model and its file. FAILED_PRECONDITION for the deployed one.
  absl::Status Delete(const std::string& model_id);
  // Records the model's test-split figures (measured after it was registered, see
  // ClassifierService::DoImport); persisted. NOT_FOUND when it was deleted meanwhile.
  absl::Status SetTestMetrics(const std::string& model_id, const EvaluationResult& test_metrics);

  // FAILED_PRECONDITION naming --model_cache_mb when a network of `architecture` (its weights,
  // as their parameters' float32 bytes) would not fit the cache at all: checked before training
  // (PlanTraining) and before an upload is registered.
  absl::Status CheckFits(const Architecture& architecture) const;

  // Every record, oldest first: an immutable snapshot, shared by every caller until the next
  // change (so a list request costs no copy of 100,000 pointers while nothing changes).
  using RecordList = std::vector<std::shared_ptr<const ModelRecord>>;
  std::shared_ptr<const RecordList> List() const;
  // Empty when none was deployed.
  std::string deployed_model_id() const;
  // Networks in memory now (for tests and the scale benchmark).
  int cached_models() const;

 private:
  using LoadResult = absl::StatusOr<std::shared_ptr<const LoadedModel>>;
  struct CacheEntry {
    std::shared_ptr<const LoadedModel> model;
    std::list<std::string>::iterator recency;  // Into recency_.
  };

  std::string NewModelId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The id Resolve means by `model_id` (the deployed or newest one when empty).
  absl::StatusOr<std::string> TargetId(const std::string& model_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads, checks and builds the record's network; no lock held.
  LoadResult Load(const ModelRecord& record) const;
  void Cache(std::shared_ptr<const LoadedModel> model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Uncache(const std::string& model_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the least recently used networks (never the deployed one) until the cache fits.
  void Evict() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishCacheMetrics() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string models_dir_;
  Store* const store_;
  const std::string device_;
  const int64_t cache_bytes_;
  Metrics* const metrics_;

  mutable Mutex mu_;
  std::vector<std::shared_ptr<const ModelRecord>> records_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  // List()'s snapshot of records_; null after a change, made again by the next List().
  mutable std::shared_ptr<const RecordList> list_snapshot_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const ModelRecord>> by_id_ ABSL_GUARDED_BY(mu_);
  std::string deployed_id_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 id_generator_ ABSL_GUARDED_BY(mu_);
  // The cache: networks by model id, and their ids from most to least recently used.
  std::map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);
  int64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Loads in progress: a request for a model being loaded waits for that load.
  std::map<std::string, std::shared_future<LoadResult>> loading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MODEL_REGISTRY_H_
