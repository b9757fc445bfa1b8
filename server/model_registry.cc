#include "server/model_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/file_util.h"
#include "spdlog/spdlog.h"

namespace classifier {

ModelRegistry::ModelRegistry(std::string models_dir)
    : models_dir_(std::move(models_dir)), id_generator_(std::random_device{}()) {}

std::string ModelRegistry::NewModelId() {
  // Random rather than sequential, so a restarted server never overwrites an
  // older file.
  std::string id;
  do {
    id = absl::StrFormat("model-%012x", id_generator_() & 0xffffffffffffULL);
  } while (by_id_.count(id) != 0);
  return id;
}

absl::StatusOr<std::shared_ptr<const RegisteredModel>> ModelRegistry::Register(
    std::unique_ptr<TrainedModel> network, ModelRecord record) {
  absl::StatusOr<std::string> weights = network->ToStateDictBytes();
  if (!weights.ok()) return weights.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    record.model_id = NewModelId();
  }
  record.weights_path = absl::StrCat(models_dir_, "/", record.model_id, ".pth");
  record.size_bytes = static_cast<int64_t>(weights->size());
  record.sha256 = Sha256Hex(*weights);
  if (absl::Status written = WriteFileAtomically(record.weights_path, *weights); !written.ok()) {
    return written;
  }
  auto registered = std::make_shared<const RegisteredModel>(
      RegisteredModel{std::move(record), std::shared_ptr<const TrainedModel>(std::move(network))});
  std::lock_guard<std::mutex> lock(mu_);
  models_.push_back(registered);
  by_id_[registered->record.model_id] = registered;
  spdlog::info("model {} registered ({} bytes, sha256 {})", registered->record.model_id,
               registered->record.size_bytes, registered->record.sha256);
  return registered;
}

absl::StatusOr<std::shared_ptr<const RegisteredModel>> ModelRegistry::Resolve(
    const std::string& model_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (model_id.empty()) {
    if (models_.empty()) {
      return absl::FailedPreconditionError(
          "no model exists yet: train one first (Train, or `classifier-cli "
          "train`)");
    }
    return models_.back();
  }
  auto it = by_id_.find(model_id);
  if (it == by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("no model with model_id \"", model_id, "\""));
  }
  return it->second;
}

std::vector<std::shared_ptr<const RegisteredModel>> ModelRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  return models_;
}

}  // namespace classifier
