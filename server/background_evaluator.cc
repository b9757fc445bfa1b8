#include "server/background_evaluator.h"

#include <utility>

#include "model/compute_threads.h"
#include "spdlog/spdlog.h"

namespace classifier {

BackgroundEvaluator::BackgroundEvaluator(DatasetCatalog* datasets, ModelRegistry* models,
                                         int max_pending)
    : datasets_(datasets), models_(models), max_pending_(max_pending), thread_([this] {
        SetThreadComputeThreads(1);
        Loop();
      }) {}

BackgroundEvaluator::~BackgroundEvaluator() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (!pending_.empty()) {
      spdlog::info("{} evaluation(s) of imported models dropped at shutdown", pending_.size());
    }
    pending_.clear();
  }
  changed_.SignalAll();
  thread_.join();
}

bool BackgroundEvaluator::Submit(std::string model_id, std::string dataset,
                                 std::shared_ptr<const TrainedModel> network) {
  {
    MutexLock lock(&mu_);
    if (stopping_ || static_cast<int>(pending_.size()) >= max_pending_) {
      spdlog::warn(
          "model {}: not evaluated in the background ({} evaluations already wait); Evaluate "
          "measures it",
          model_id, pending_.size());
      return false;
    }
    pending_.push_back(Pending{std::move(model_id), std::move(dataset), std::move(network)});
  }
  changed_.SignalAll();
  return true;
}

void BackgroundEvaluator::Loop() {
  for (;;) {
    Pending next;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && pending_.empty()) changed_.Wait(&mu_);
      if (stopping_) return;
      next = std::move(pending_.front());
      pending_.pop_front();
    }
    Evaluate(next);
  }
}

void BackgroundEvaluator::Evaluate(const Pending& pending) {
  absl::StatusOr<std::shared_ptr<const Dataset>> test =
      datasets_->Load(pending.dataset, Split::kTest);
  absl::StatusOr<EvaluationResult> result = test.ok()
                                                ? pending.network->Evaluate(**test)
                                                : absl::StatusOr<EvaluationResult>(test.status());
  if (!result.ok()) {
    spdlog::warn("model {}: not evaluated on {}: {}", pending.model_id, pending.dataset,
                 result.status().ToString());
    return;
  }
  // NOT_FOUND when the model was deleted meanwhile: nothing to record.
  if (absl::Status recorded = models_->SetTestMetrics(pending.model_id, *result);
      !recorded.ok() && !absl::IsNotFound(recorded)) {
    spdlog::warn("model {}: test figures not recorded: {}", pending.model_id, recorded.ToString());
  }
}

}  // namespace classifier
