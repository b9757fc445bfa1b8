#include "server/model_registry.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file_util.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

absl::Status NotFound(const std::string& model_id) {
  return absl::NotFoundError(absl::StrCat("no model with model_id \"", model_id, "\""));
}

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
  if (store_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<ModelRecord>> stored = store_->LoadModels();
  if (!stored.ok()) return stored.status();
  absl::StatusOr<std::string> deployed = store_->DeployedModelId();
  if (!deployed.ok()) return deployed.status();
  MutexLock lock(&mu_);
  for (ModelRecord& record : *stored) {
    if (record.size_bytes > cache_bytes_) {
      return absl::FailedPreconditionError(
          absl::StrCat("--model_cache_mb is too small: model ", record.model_id, "'s weights take ",
                       Megabytes(record.size_bytes), ", more than the whole cache (",
                       Megabytes(cache_bytes_), ")"));
    }
    auto shared = std::make_shared<const ModelRecord>(std::move(record));
    records_.push_back(shared);
    by_id_[shared->model_id] = shared;
  }
  list_snapshot_ = nullptr;
  deployed_id_ = by_id_.count(*deployed) != 0 ? *deployed : "";
  PublishCacheMetrics();
  spdlog::info("registry: {} models, deployed: {}; their weights load when first used",
               records_.size(), deployed_id_.empty() ? "none (the newest serves)" : deployed_id_);
  return absl::OkStatus();
}

std::string ModelRegistry::NewModelId() {
  // Random rather than sequential, so a restarted server never overwrites an older file.
  std::string id;
  do {
    id = absl::StrFormat("model-%012x", id_generator_() & 0xffffffffffffULL);
  } while (by_id_.count(id) != 0);
  return id;
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
  {
    MutexLock lock(&mu_);
    record.model_id = NewModelId();
  }
  record.weights_path = absl::StrCat(models_dir_, "/", record.model_id, ".pth");
  record.size_bytes = static_cast<int64_t>(weights->size());
  record.sha256 = Sha256Hex(*weights);
  if (absl::Status written = WriteFileAtomically(record.weights_path, *weights); !written.ok()) {
    return written;
  }
  if (store_ != nullptr) {
    absl::Status stored = store_->PutModel(record);
    if (!stored.ok()) return stored;
  }
  auto registered = std::make_shared<const LoadedModel>(
      LoadedModel{std::move(record), std::shared_ptr<const TrainedModel>(std::move(network))});
  MutexLock lock(&mu_);
  auto shared = std::make_shared<const ModelRecord>(registered->record);
  records_.push_back(shared);
  by_id_[shared->model_id] = shared;
  list_snapshot_ = nullptr;
  if (metrics_ != nullptr) metrics_->CountModelLoad();
  Cache(registered);
  spdlog::info("model {} registered ({} bytes, sha256 {})", registered->record.model_id,
               registered->record.size_bytes, registered->record.sha256);
  return registered;
}

absl::StatusOr<std::string> ModelRegistry::TargetId(const std::string& model_id) const {
  if (!model_id.empty()) {
    if (by_id_.count(model_id) == 0) return NotFound(model_id);
    return model_id;
  }
  if (!deployed_id_.empty()) return deployed_id_;
  if (records_.empty()) {
    return absl::FailedPreconditionError(
        "no model exists yet: train one first (Train, or `classifier-cli train`)");
  }
  return records_.back()->model_id;
}

ModelRegistry::LoadResult ModelRegistry::Load(const ModelRecord& record) const {
  const std::string& path = record.weights_path;
  auto cannot_serve = [&record](const std::string& why) {
    const std::string message = absl::StrCat("model ", record.model_id, " cannot serve: ", why);
    spdlog::error("{}", message);
    return absl::DataLossError(message);
  };
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) {
    return cannot_serve(
        absl::StrCat("weights file ", path, " is unreadable: ", bytes.status().message()));
  }
  if (Sha256Hex(*bytes) != record.sha256) {
    return cannot_serve(absl::StrCat("weights file ", path,
                                     " is corrupt: its SHA-256 differs from the one recorded"));
  }
  absl::StatusOr<std::unique_ptr<TrainedModel>> network =
      TrainedModel::FromStateDictBytes(*bytes, record.architecture, device_);
  if (!network.ok()) {
    return cannot_serve(
        absl::StrCat("weights file ", path, " does not load: ", network.status().message()));
  }
  if (metrics_ != nullptr) metrics_->CountModelLoad();
  return std::make_shared<const LoadedModel>(
      LoadedModel{record, std::shared_ptr<const TrainedModel>(*std::move(network))});
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Resolve(
    const std::string& model_id) {
  std::shared_ptr<const ModelRecord> record;
  std::shared_future<LoadResult> other_load;
  std::promise<LoadResult> loaded;
  {
    MutexLock lock(&mu_);
    absl::StatusOr<std::string> target = TargetId(model_id);
    if (!target.ok()) return target.status();
    if (auto cached = cache_.find(*target); cached != cache_.end()) {
      recency_.splice(recency_.begin(), recency_, cached->second.recency);
      if (metrics_ != nullptr) metrics_->CountModelCacheLookup(/*hit=*/true);
      return cached->second.model;
    }
    if (metrics_ != nullptr) metrics_->CountModelCacheLookup(/*hit=*/false);
    if (auto pending = loading_.find(*target); pending != loading_.end()) {
      other_load = pending->second;
    } else {
      record = by_id_.at(*target);
      loading_[*target] = loaded.get_future().share();
    }
  }
  // A load already under way: wait for it rather than read the file twice.
  if (other_load.valid()) return other_load.get();
  // Loaded without the lock, so other models keep serving meanwhile.
  LoadResult result = Load(*record);
  {
    MutexLock lock(&mu_);
    loading_.erase(record->model_id);
    // A model deleted while it loaded is answered but not kept.
    if (result.ok() && by_id_.count(record->model_id) != 0) Cache(*result);
  }
  loaded.set_value(result);
  return result;
}

absl::StatusOr<ModelRecord> ModelRegistry::GetRecord(const std::string& model_id) const {
  MutexLock lock(&mu_);
  auto it = by_id_.find(model_id);
  if (it == by_id_.end()) return NotFound(model_id);
  return *it->second;
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
                          static_cast<int>(records_.size()));
}

absl::Status ModelRegistry::Deploy(const std::string& model_id) {
  if (model_id.empty()) return NotFound(model_id);
  // Loaded first, so the switch never makes a Predict wait for (or fail on) the weights.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = Resolve(model_id);
  if (!model.ok()) return model.status();
  MutexLock lock(&mu_);
  if (by_id_.count(model_id) == 0) return NotFound(model_id);
  if (store_ != nullptr) {
    if (absl::Status stored = store_->SetDeployedModelId(model_id); !stored.ok()) return stored;
  }
  deployed_id_ = model_id;
  Cache(*model);  // Pinned from now on; the previous deployed model may now be evicted.
  if (metrics_ != nullptr) metrics_->CountDeploy();
  spdlog::info("model {} deployed", model_id);
  return absl::OkStatus();
}

absl::Status ModelRegistry::Delete(const std::string& model_id) {
  std::shared_ptr<const ModelRecord> removed;
  {
    MutexLock lock(&mu_);
    auto it = by_id_.find(model_id);
    if (it == by_id_.end()) return NotFound(model_id);
    if (model_id == deployed_id_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", model_id, " is deployed and cannot be deleted; deploy another one first"));
    }
    if (store_ != nullptr) {
      if (absl::Status stored = store_->DeleteModel(model_id); !stored.ok()) return stored;
    }
    removed = it->second;
    by_id_.erase(it);
    records_.erase(std::remove(records_.begin(), records_.end(), removed), records_.end());
    list_snapshot_ = nullptr;
    Uncache(model_id);
    PublishCacheMetrics();
  }
  // Requests in flight keep their network; only the file goes.
  std::error_code ignored;
  std::filesystem::remove(removed->weights_path, ignored);
  spdlog::info("model {} deleted", model_id);
  return absl::OkStatus();
}

absl::Status ModelRegistry::SetTestMetrics(const std::string& model_id,
                                           const EvaluationResult& test_metrics) {
  MutexLock lock(&mu_);
  auto it = by_id_.find(model_id);
  if (it == by_id_.end()) return NotFound(model_id);
  auto updated = std::make_shared<ModelRecord>(*it->second);
  updated->test_metrics = test_metrics;
  if (store_ != nullptr) {
    if (absl::Status stored = store_->PutModel(*updated); !stored.ok()) return stored;
  }
  std::replace(records_.begin(), records_.end(), it->second,
               std::shared_ptr<const ModelRecord>(updated));
  list_snapshot_ = nullptr;
  it->second = updated;
  if (auto cached = cache_.find(model_id); cached != cache_.end()) {
    cached->second.model =
        std::make_shared<const LoadedModel>(LoadedModel{*updated, cached->second.model->network});
  }
  return absl::OkStatus();
}

std::shared_ptr<const ModelRegistry::RecordList> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  if (list_snapshot_ == nullptr) list_snapshot_ = std::make_shared<const RecordList>(records_);
  return list_snapshot_;
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
