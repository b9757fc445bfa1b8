// The models the service knows: their records (in the store, read when asked for), their weight
// files under the state directory, and the networks of the models in use, in a cache of bounded
// size; and which model is deployed (the default of Predict and Evaluate).
//
// Start-up reads neither records nor weights, only totals, so it costs the same at any count: a
// network is loaded (its record read, its file read and its SHA-256 checked against the record)
// the first time a request needs it, once however many requests ask at the same moment, and
// stays in memory with its record while the cache has room. The least recently used networks go
// first; the deployed model's never does.
#ifndef CLASSIFIER_SERVER_MODEL_REGISTRY_H_
#define CLASSIFIER_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <filesystem>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <optional>
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
// uses it, so a deploy, an eviction or a delete never pulls a network from under a request in
// flight.
struct LoadedModel {
  ModelRecord record;
  std::shared_ptr<const TrainedModel> network;  // Never null.
};

class ModelRegistry {
 public:
  // Weight files go to `models_dir`, records to `store` (not null); both must outlive the
  // registry. Networks are loaded onto `device`; those of the models in use stay in
  // memory up to `cache_bytes` of weights (their files' sizes). `metrics` (may be null) hears
  // loads, cache lookups and deploys.
  ModelRegistry(std::string models_dir, Store* store, std::string device, int64_t cache_bytes,
                Metrics* metrics = nullptr);
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // Reads the deployed model's id and the models' totals (no record, no weights).
  // FAILED_PRECONDITION naming --model_cache_mb when a stored model's weights alone would not fit
  // the cache.
  absl::Status LoadFromStore();

  // At start after a crash, before any model is written: removes what it left in the models
  // folder: temporaries of writes that never finished, and weight files written since `since`
  // (the crashed run's start: older ones were checked before) that no stored record names
  // (written just before a crash kept their record out, or left by a delete cut short).
  // Returns how many files went.
  absl::StatusOr<int> RemoveLeftoverFiles(std::filesystem::file_time_type since);

  // Writes the weights (temporary name, fsync, rename), records them and registers the model
  // under a new id, its network in the cache; `record`'s id, created time, path, size and hash
  // are filled in here. Thread-safe, like every method.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Register(std::unique_ptr<TrainedModel> network,
                                                              ModelRecord record);

  // The model named `model_id` with its network, loaded now if it is not in memory; when the id
  // is empty, the deployed model, else the newest. NOT_FOUND for an unknown id,
  // FAILED_PRECONDITION (saying to train one first) when there are none, DATA_LOSS naming the
  // file when its weights are missing, corrupt or do not load.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Resolve(const std::string& model_id);
  // The record alone (no weights read): NOT_FOUND for an unknown id.
  absl::StatusOr<ModelRecord> GetRecord(const std::string& model_id) const;

  // The model's weight file (or, for a model another replica registered, the shared store's
  // copy), checked against the SHA-256 recorded with it: DATA_LOSS naming the file otherwise.
  absl::StatusOr<std::string> ReadWeights(const ModelRecord& record) const;

  // Catches up with what other replicas sharing the store changed: the deployed model (loaded
  // first, then switched to, as Deploy does), the newest, and the models they deleted (out of
  // memory here too); every kRecountInterval, the count of models in the store (the
  // classifier_models_registered metric counts every replica's). Run every few hundred
  // milliseconds by a ReplicaFollower when the store is shared.
  absl::Status FollowStore();
  // How often FollowStore counts the models (a scan of the models' index, too dear for every
  // look).
  static constexpr absl::Duration kRecountInterval = absl::Seconds(5);

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

  // The records `query` asks for, newest first, from the store (Store::ListModels).
  absl::StatusOr<std::vector<ModelRecord>> List(const ModelQuery& query) const;
  // The weight files' bytes, all models together.
  absl::StatusOr<int64_t> StoredBytes() const;
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
  struct PendingLoad {
    std::shared_future<LoadResult> result;
    bool deleted = false;  // Delete ran meanwhile: answer the load, but do not cache it.
  };

  // A fresh id, unused in the store.
  absl::StatusOr<std::string> NewModelId();
  // The id Resolve means by `model_id` (the deployed or newest one when empty).
  absl::StatusOr<std::string> TargetId(const std::string& model_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The newest model's id in the store (empty when there are none); no lock needed.
  absl::StatusOr<std::string> NewestStoredId() const;
  // NewestStoredId() into newest_id_.
  absl::Status RefreshNewestId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the record, reads and checks its file and builds its network; no lock held.
  LoadResult Load(const std::string& model_id) const;
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

  // Held while the store is written for a deploy or a delete, so that neither undoes the other;
  // a Predict of a model in memory never waits for the store.
  mutable Mutex mu_;
  std::string deployed_id_ ABSL_GUARDED_BY(mu_);
  // What an empty model_id means when none is deployed (empty when there are no models).
  std::string newest_id_ ABSL_GUARDED_BY(mu_);
  int64_t registered_ ABSL_GUARDED_BY(mu_) = 0;  // Models in the store, for the metrics.
  // When FollowStore next counts the models in the store.
  absl::Time next_recount_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // FollowStore's place in the shared store's deletion log; -1 until it has one.
  int64_t deletions_seen_ ABSL_GUARDED_BY(mu_) = -1;
  std::mt19937_64 id_generator_ ABSL_GUARDED_BY(mu_);
  // The cache: networks by model id, and their ids from most to least recently used.
  std::map<std::string, CacheEntry> cache_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> recency_ ABSL_GUARDED_BY(mu_);
  int64_t cached_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Loads in progress: a request for a model being loaded waits for that load.
  std::map<std::string, PendingLoad> loading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MODEL_REGISTRY_H_
