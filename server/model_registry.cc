#include "server/model_registry.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file_util.h"
#include "spdlog/spdlog.h"

namespace classifier {
ModelRegistry::ModelRegistry(std::string models_dir, Store* store, std::string device,
                             Metrics* metrics)
    : models_dir_(std::move(models_dir)),
      store_(store),
      device_(std::move(device)),
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
    auto registered = std::make_shared<LoadedModel>();
    registered->record = std::move(record);
    const std::string& path = registered->record.weights_path;
    absl::StatusOr<std::string> bytes = ReadWholeFile(path);
    if (!bytes.ok()) {
      registered->load_error =
          absl::StrCat("weights file ", path, " is unreadable: ", bytes.status().message());
    } else if (Sha256Hex(*bytes) != registered->record.sha256) {
      registered->load_error = absl::StrCat(
          "weights file ", path, " is corrupt: its SHA-256 differs from the one recorded");
    } else {
      absl::StatusOr<std::unique_ptr<TrainedModel>> network =
          TrainedModel::FromStateDictBytes(*bytes, registered->record.architecture, device_);
      if (network.ok()) {
        registered->network = *std::move(network);
        if (metrics_ != nullptr) metrics_->CountModelLoad();
      } else {
        registered->load_error =
            absl::StrCat("weights file ", path, " does not load: ", network.status().message());
      }
    }
    if (!registered->load_error.empty()) {
      spdlog::error("model {}: {}", registered->record.model_id, registered->load_error);
    }
    models_.push_back(registered);
    by_id_[registered->record.model_id] = registered;
  }
  deployed_id_ = by_id_.count(*deployed) != 0 ? *deployed : "";
  if (metrics_ != nullptr) metrics_->SetModelsLoaded(static_cast<int>(models_.size()));
  spdlog::info("registry: {} models, deployed: {}", models_.size(),
               deployed_id_.empty() ? "none (the newest serves)" : deployed_id_);
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

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Register(
    std::unique_ptr<TrainedModel> network, ModelRecord record) {
  absl::StatusOr<std::string> weights = network->ToStateDictBytes();
  if (!weights.ok()) return weights.status();
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
      LoadedModel{std::move(record), std::shared_ptr<const TrainedModel>(std::move(network)), ""});
  MutexLock lock(&mu_);
  models_.push_back(registered);
  by_id_[registered->record.model_id] = registered;
  if (metrics_ != nullptr) {
    metrics_->CountModelLoad();
    metrics_->SetModelsLoaded(static_cast<int>(models_.size()));
  }
  spdlog::info("model {} registered ({} bytes, sha256 {})", registered->record.model_id,
               registered->record.size_bytes, registered->record.sha256);
  return registered;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Find(
    const std::string& model_id) const {
  auto it = by_id_.find(model_id);
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("no model with model_id \"", model_id, "\""));
  }
  if (it->second->network == nullptr) {
    return absl::DataLossError(
        absl::StrCat("model ", model_id, " cannot serve: ", it->second->load_error));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Resolve(
    const std::string& model_id) const {
  MutexLock lock(&mu_);
  if (!model_id.empty()) return Find(model_id);
  if (!deployed_id_.empty()) return Find(deployed_id_);
  if (models_.empty()) {
    return absl::FailedPreconditionError(
        "no model exists yet: train one first (Train, or `classifier-cli train`)");
  }
  return Find(models_.back()->record.model_id);
}

absl::Status ModelRegistry::Deploy(const std::string& model_id) {
  MutexLock lock(&mu_);
  if (absl::StatusOr<std::shared_ptr<const LoadedModel>> model = Find(model_id); !model.ok()) {
    return model.status();
  }
  if (store_ != nullptr) {
    if (absl::Status stored = store_->SetDeployedModelId(model_id); !stored.ok()) return stored;
  }
  deployed_id_ = model_id;
  if (metrics_ != nullptr) metrics_->CountDeploy();
  spdlog::info("model {} deployed", model_id);
  return absl::OkStatus();
}

absl::Status ModelRegistry::Delete(const std::string& model_id) {
  std::shared_ptr<const LoadedModel> removed;
  {
    MutexLock lock(&mu_);
    auto it = by_id_.find(model_id);
    if (it == by_id_.end()) {
      return absl::NotFoundError(absl::StrCat("no model with model_id \"", model_id, "\""));
    }
    if (model_id == deployed_id_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", model_id, " is deployed and cannot be deleted; deploy another one first"));
    }
    if (store_ != nullptr) {
      if (absl::Status stored = store_->DeleteModel(model_id); !stored.ok()) return stored;
    }
    removed = it->second;
    by_id_.erase(it);
    models_.erase(std::remove(models_.begin(), models_.end(), removed), models_.end());
    if (metrics_ != nullptr) metrics_->SetModelsLoaded(static_cast<int>(models_.size()));
  }
  // Requests in flight keep their network; only the file goes.
  std::error_code ignored;
  std::filesystem::remove(removed->record.weights_path, ignored);
  spdlog::info("model {} deleted", model_id);
  return absl::OkStatus();
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::List() const {
  MutexLock lock(&mu_);
  return models_;
}

std::string ModelRegistry::deployed_model_id() const {
  MutexLock lock(&mu_);
  return deployed_id_;
}

}  // namespace classifier
