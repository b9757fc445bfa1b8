#include "server/model_registry.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1048576.0); }

}  // namespace

ModelRegistry::ModelRegistry(std::string models_dir, Store* store, std::string device,
                             int64_t cache_bytes, Metrics* metrics)
    : models_dir_(std::move(models_dir)),
      store_(store),
      device_(std::move(device)),
      cache_bytes_(cache_bytes),
      metrics_(metrics),
      id_generator_(std::random_device{}()) {}

absl::Status ModelRegistry::LoadFromStore() {
  absl::StatusOr<ModelTotals> totals = store_->GetModelTotals();
  if (!totals.ok()) return totals.status();
  if (totals->largest_bytes > cache_bytes_) {
    return absl::FailedPreconditionError(
        absl::StrCat("--model_cache_mb is too small: model ", totals->largest_model_id,
                     "'s weights take ", Megabytes(totals->largest_bytes),
                     ", more than the whole cache (", Megabytes(cache_bytes_), ")"));
  }
  absl::StatusOr<std::string> deployed = store_->DeployedModelId();
  if (!deployed.ok()) return deployed.status();
  absl::StatusOr<std::optional<ModelRecord>> deployed_record =
      deployed->empty() ? std::optional<ModelRecord>() : store_->GetModel(*deployed);
  if (!deployed_record.ok()) return deployed_record.status();
  MutexLock lock(&mu_);
  registered_ = totals->count;
  deployed_id_ = deployed_record->has_value() ? *deployed : "";
  if (absl::Status newest = RefreshNewestId(); !newest.ok()) return newest;
  PublishCacheMetrics();
  spdlog::info("registry: {} models, deployed: {}; their records and weights load when first used",
               registered_, deployed_id_.empty() ? "none (the newest serves)" : deployed_id_);
  return absl::OkStatus();
}

absl::StatusOr<int> ModelRegistry::RemoveLeftoverFiles(std::filesystem::file_time_type since) {
  namespace fs = std::filesystem;
  absl::StatusOr<int> removed = RemoveTemporaryFiles(models_dir_);
  if (!removed.ok()) return removed.status();
  std::error_code error;
  if (!fs::exists(models_dir_, error)) return *removed;
  std::vector<fs::path> orphans;
  for (fs::directory_iterator it(models_dir_, error), end; !error && it != end;
       it.increment(error)) {
    const fs::path& path = it->path();
    if (path.extension() != ".pth" || !it->is_regular_file(error)) continue;
    // Written before the crashed run began: checked by an earlier start, or by a clean run.
    if (it->last_write_time(error) < since) continue;
    absl::StatusOr<std::optional<ModelRecord>> record = store_->GetModel(path.stem().string());
    if (!record.ok()) return record.status();
    if (!record->has_value()) orphans.push_back(path);
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot list the models folder ", models_dir_, ": ", error.message()));
  }
  for (const fs::path& orphan : orphans) {
    spdlog::warn("removing {}: no stored model names it (a write or a delete a crash cut short)",
                 orphan.string());
    fs::remove(orphan, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", orphan.string(), ": ", error.message()));
    }
  }
  return *removed + static_cast<int>(orphans.size());
}

absl::StatusOr<std::string> ModelRegistry::NewestStoredId() const {
  ModelQuery newest;
  newest.limit = 1;
  absl::StatusOr<std::vector<ModelRecord>> found = store_->ListModels(newest);
  if (!found.ok()) return found.status();
  return found->empty() ? "" : found->front().model_id;
}

absl::Status ModelRegistry::RefreshNewestId() {
  absl::StatusOr<std::string> newest = NewestStoredId();
  if (!newest.ok()) return newest.status();
  newest_id_ = *std::move(newest);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ModelRegistry::NewModelId() {
  // Random rather than sequential, so a restarted server never overwrites an older file.
  for (;;) {
    std::string id;
    {
      MutexLock lock(&mu_);
      id = absl::StrFormat("model-%012x", id_generator_() & 0xffffffffffffULL);
    }
    absl::StatusOr<std::optional<ModelRecord>> taken = store_->GetModel(id);
    if (!taken.ok()) return taken.status();
    if (!taken->has_value()) return id;
  }
}

absl::Status ModelRegistry::CheckFits(const Architecture& architecture) const {
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(architecture);
  if (!layout.ok()) return layout.status();
  int64_t bytes = 0;
  for (const ParameterShape& parameter : *layout) {
    int64_t elements = 1;
    for (const int64_t size : parameter.shape) elements *= size;
    bytes += elements * static_cast<int64_t>(sizeof(float));
  }
  if (bytes > cache_bytes_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the network's weights take ", Megabytes(bytes),
                     ", more than the whole model cache (", Megabytes(cache_bytes_),
                     ", --model_cache_mb): raise the flag or choose a smaller "
                     "architecture"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Register(
    std::unique_ptr<TrainedModel> network, ModelRecord record) {
  absl::StatusOr<std::string> weights = network->ToStateDictBytes();
  if (!weights.ok()) return weights.status();
  if (static_cast<int64_t>(weights->size()) > cache_bytes_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the model's weights take ", Megabytes(static_cast<int64_t>(weights->size())),
                     ", more than the whole model cache (", Megabytes(cache_bytes_),
                     ", --model_cache_mb); nothing was registered"));
  }
  record.architecture = network->architecture();
  absl::StatusOr<std::string> model_id = NewModelId();
  if (!model_id.ok()) return model_id.status();
  record.model_id = *std::move(model_id);
  record.created = absl::Now();
  record.weights_path = absl::StrCat(models_dir_, "/", record.model_id, ".pth");
  record.size_bytes = static_cast<int64_t>(weights->size());
  record.sha256 = Sha256Hex(*weights);
  if (absl::Status written = WriteFileAtomically(record.weights_path, *weights); !written.ok()) {
    return written;
  }
  // Committed without the lock (a sync of a few milliseconds that no Predict should wait for):
  // nothing else knows the new id yet.
  if (absl::Status stored = store_->InsertModel(record, *weights); !stored.ok()) {
    // A file no record names would be an orphan that nothing ever deletes.
    std::error_code ignored;
    std::filesystem::remove(record.weights_path, ignored);
    return stored;
  }
  auto registered = std::make_shared<const LoadedModel>(
      LoadedModel{std::move(record), std::shared_ptr<const TrainedModel>(std::move(network))});
  MutexLock lock(&mu_);
  ++registered_;
  // Created now, so the newest unless the clock went back.
  if (absl::Status newest = RefreshNewestId(); !newest.ok()) return newest;
  if (metrics_ != nullptr) metrics_->CountModelLoad();
  Cache(registered);
  spdlog::info("model {} registered ({} bytes, sha256 {})", registered->record.model_id,
               registered->record.size_bytes, registered->record.sha256);
  return registered;
}

absl::StatusOr<std::string> ModelRegistry::TargetId(const std::string& model_id) const {
  if (!model_id.empty()) return model_id;
  if (!deployed_id_.empty()) return deployed_id_;
  if (newest_id_.empty()) {
    return absl::FailedPreconditionError(
        "no model exists yet: train one first (Train, or `classifier-cli train`)");
  }
  return newest_id_;
}

absl::StatusOr<std::string> ModelRegistry::ReadWeights(const ModelRecord& record) const {
  const std::string& path = record.weights_path;
  auto cannot_serve = [&record](const std::string& why) {
    const std::string message = absl::StrCat("model ", record.model_id, " cannot serve: ", why);
    spdlog::error("{}", message);
    return absl::DataLossError(message);
  };
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) {
    // Registered by another replica (its file is on its own disk): the shared store's copy.
    absl::StatusOr<std::optional<std::string>> stored = store_->GetModelWeights(record.model_id);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) {
      return cannot_serve(
          absl::StrCat("weights file ", path, " is unreadable: ", bytes.status().message()));
    }
    bytes = **std::move(stored);
  }
  if (Sha256Hex(*bytes) != record.sha256) {
    return cannot_serve(absl::StrCat("weights file ", path,
                                     " is corrupt: its SHA-256 differs from the one recorded"));
  }
  return bytes;
}

ModelRegistry::LoadResult ModelRegistry::Load(const std::string& model_id) const {
  absl::StatusOr<std::optional<ModelRecord>> stored = store_->GetModel(model_id);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return ModelNotFoundError(model_id);
  const ModelRecord& record = **stored;
  absl::StatusOr<std::string> bytes = ReadWeights(record);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::unique_ptr<TrainedModel>> network =
      TrainedModel::FromStateDictBytes(*bytes, record.architecture, device_);
  if (!network.ok()) {
    const std::string message =
        absl::StrCat("model ", record.model_id, " cannot serve: weights file ", record.weights_path,
                     " does not load: ", network.status().message());
    spdlog::error("{}", message);
    return absl::DataLossError(message);
  }
  if (metrics_ != nullptr) metrics_->CountModelLoad();
  return std::make_shared<const LoadedModel>(
      LoadedModel{record, std::shared_ptr<const TrainedModel>(*std::move(network))});
}

absl::Status ModelRegistry::FollowStore() {
  int64_t seen;
  {
    MutexLock lock(&mu_);
    seen = deletions_seen_;
  }
  absl::StatusOr<ModelDeletions> deletions = store_->DeletedModelsAfter(seen);
  if (!deletions.ok()) return deletions.status();
  absl::StatusOr<std::string> deployed = store_->DeployedModelId();
  if (!deployed.ok()) return deployed.status();
  bool recount;
  {
    MutexLock lock(&mu_);
    recount = absl::Now() >= next_recount_;
  }
  std::optional<int64_t> count;
  if (recount) {
    absl::StatusOr<ModelTotals> totals = store_->GetModelTotals();
    if (!totals.ok()) return totals.status();
    count = totals->count;
  }
  {
    MutexLock lock(&mu_);
    if (count.has_value()) {
      registered_ = *count;
      next_recount_ = absl::Now() + kRecountInterval;
    }
    deletions_seen_ = deletions->position;
    for (const std::string& model_id : deletions->model_ids) {
      if (auto pending = loading_.find(model_id); pending != loading_.end()) {
        pending->second.deleted = true;
      }
      Uncache(model_id);
    }
    if (!deletions->model_ids.empty() || count.has_value()) PublishCacheMetrics();
    if (absl::Status newest = RefreshNewestId(); !newest.ok()) return newest;
    if (*deployed == deployed_id_ || deployed->empty()) return absl::OkStatus();
  }
  // Another replica deployed a model: load it first, so that no Predict waits for it or fails,
  // then switch, as Deploy does.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = Resolve(*deployed);
  if (!model.ok()) return model.status();
  MutexLock lock(&mu_);
  deployed_id_ = *deployed;
  Cache(*model);
  spdlog::info("model {} deployed (by another replica)", *deployed);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Resolve(
    const std::string& model_id) {
  std::string target;
  std::shared_future<LoadResult> other_load;
  std::promise<LoadResult> loaded;
  // With nothing deployed, the newest serves; other replicas may have registered a newer one
  // than this one has seen, so a shared store is asked, without the lock (a round trip no
  // Predict of a model in memory should wait for). While the store is away, the newest this
  // replica knows serves.
  std::optional<std::string> stored_newest;
  if (model_id.empty() && store_->shared() && deployed_model_id().empty()) {
    absl::StatusOr<std::string> newest = NewestStoredId();
    if (newest.ok()) {
      stored_newest = *std::move(newest);
    } else {
      spdlog::debug("registry: the newest model from the store: {}", newest.status().ToString());
    }
  }
  {
    MutexLock lock(&mu_);
    if (stored_newest.has_value()) newest_id_ = *stored_newest;
    absl::StatusOr<std::string> target_id = TargetId(model_id);
    if (!target_id.ok()) return target_id.status();
    target = *std::move(target_id);
    if (auto cached = cache_.find(target); cached != cache_.end()) {
      recency_.splice(recency_.begin(), recency_, cached->second.recency);
      if (metrics_ != nullptr) metrics_->CountModelCacheLookup(/*hit=*/true);
      return cached->second.model;
    }
    if (metrics_ != nullptr) metrics_->CountModelCacheLookup(/*hit=*/false);
    if (auto pending = loading_.find(target); pending != loading_.end()) {
      other_load = pending->second.result;
    } else {
      loading_[target] = PendingLoad{loaded.get_future().share()};
    }
  }
  // A load already under way: wait for it rather than read the file twice.
  if (other_load.valid()) return other_load.get();
  // Loaded without the lock, so other models keep serving meanwhile.
  LoadResult result = Load(target);
  {
    MutexLock lock(&mu_);
    auto pending = loading_.find(target);
    // A model deleted while it loaded is answered but not kept.
    if (result.ok() && !pending->second.deleted) Cache(*result);
    loading_.erase(pending);
  }
  loaded.set_value(result);
  return result;
}

absl::StatusOr<ModelRecord> ModelRegistry::GetRecord(const std::string& model_id) const {
  {
    MutexLock lock(&mu_);
    if (auto cached = cache_.find(model_id); cached != cache_.end()) {
      return cached->second.model->record;
    }
  }
  absl::StatusOr<std::optional<ModelRecord>> stored = store_->GetModel(model_id);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return ModelNotFoundError(model_id);
  return **std::move(stored);
}

void ModelRegistry::Cache(std::shared_ptr<const LoadedModel> model) {
  const std::string model_id = model->record.model_id;
  Uncache(model_id);
  recency_.push_front(model_id);
  cached_bytes_ += model->record.size_bytes;
  cache_[model_id] = CacheEntry{std::move(model), recency_.begin()};
  Evict();
  PublishCacheMetrics();
}

void ModelRegistry::Uncache(const std::string& model_id) {
  auto it = cache_.find(model_id);
  if (it == cache_.end()) return;
  cached_bytes_ -= it->second.model->record.size_bytes;
  recency_.erase(it->second.recency);
  cache_.erase(it);
}

void ModelRegistry::Evict() {
  auto candidate = recency_.end();
  while (cached_bytes_ > cache_bytes_ && candidate != recency_.begin()) {
    --candidate;
    if (*candidate == deployed_id_) continue;
    const std::string evicted = *candidate;
    candidate = std::next(candidate);  // Stays valid: only the evicted entry is erased.
    Uncache(evicted);
    spdlog::debug("model {} left the cache", evicted);
  }
}

void ModelRegistry::PublishCacheMetrics() {
  if (metrics_ == nullptr) return;
  metrics_->SetModelCache(static_cast<int>(cache_.size()), cached_bytes_,
                          static_cast<int>(registered_));
}

absl::Status ModelRegistry::Deploy(const std::string& model_id) {
  if (model_id.empty()) {
    return absl::InvalidArgumentError("model_id is required: the id of the model to deploy");
  }
  // Loaded first, so the switch never makes a Predict wait for (or fail on) the weights.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = Resolve(model_id);
  if (!model.ok()) return model.status();
  MutexLock lock(&mu_);
  // Deleted since it loaded (Delete holds the lock while it writes the store).
  absl::StatusOr<std::optional<ModelRecord>> still_there = store_->GetModel(model_id);
  if (!still_there.ok()) return still_there.status();
  if (!still_there->has_value()) return ModelNotFoundError(model_id);
  if (absl::Status stored = store_->SetDeployedModelId(model_id); !stored.ok()) return stored;
  deployed_id_ = model_id;
  Cache(*model);  // Pinned from now on; the previous deployed model may now be evicted.
  if (metrics_ != nullptr) metrics_->CountDeploy();
  spdlog::info("model {} deployed", model_id);
  return absl::OkStatus();
}

absl::Status ModelRegistry::Delete(const std::string& model_id) {
  if (model_id.empty()) {
    return absl::InvalidArgumentError("model_id is required: the id of the model to delete");
  }
  std::string weights_path;
  {
    MutexLock lock(&mu_);
    if (model_id == deployed_id_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", model_id, " is deployed and cannot be deleted; deploy another one first"));
    }
    absl::StatusOr<std::optional<ModelRecord>> record = store_->GetModel(model_id);
    if (!record.ok()) return record.status();
    if (!record->has_value()) return ModelNotFoundError(model_id);
    weights_path = (*record)->weights_path;
    if (absl::Status deleted = store_->DeleteModel(model_id); !deleted.ok()) return deleted;
    --registered_;
    if (model_id == newest_id_) {
      if (absl::Status newest = RefreshNewestId(); !newest.ok()) return newest;
    }
    if (auto pending = loading_.find(model_id); pending != loading_.end()) {
      pending->second.deleted = true;
    }
    Uncache(model_id);
    PublishCacheMetrics();
  }
  // Requests in flight keep their network; only the file goes.
  std::error_code ignored;
  std::filesystem::remove(weights_path, ignored);
  spdlog::info("model {} deleted", model_id);
  return absl::OkStatus();
}

absl::Status ModelRegistry::SetTestMetrics(const std::string& model_id,
                                           const EvaluationResult& test_metrics) {
  absl::StatusOr<ModelRecord> record = GetRecord(model_id);
  if (!record.ok()) return record.status();
  record->test_metrics = test_metrics;
  // UpdateModel refuses a model deleted meanwhile rather than write it back; a Delete after it
  // has also taken the network out of the cache, so the cache below is not written back either.
  if (absl::Status stored = store_->UpdateModel(*record); !stored.ok()) return stored;
  MutexLock lock(&mu_);
  if (auto cached = cache_.find(model_id); cached != cache_.end()) {
    cached->second.model =
        std::make_shared<const LoadedModel>(LoadedModel{*record, cached->second.model->network});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ModelRecord>> ModelRegistry::List(const ModelQuery& query) const {
  return store_->ListModels(query);
}

absl::StatusOr<int64_t> ModelRegistry::StoredBytes() const {
  absl::StatusOr<ModelTotals> totals = store_->GetModelTotals();
  if (!totals.ok()) return totals.status();
  return totals->bytes;
}

std::string ModelRegistry::deployed_model_id() const {
  MutexLock lock(&mu_);
  return deployed_id_;
}

int ModelRegistry::cached_models() const {
  MutexLock lock(&mu_);
  return static_cast<int>(cache_.size());
}

}  // namespace classifier
