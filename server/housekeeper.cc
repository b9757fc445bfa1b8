#include "server/housekeeper.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/time/clock.h"
#include "server/free_heap.h"
#include "spdlog/spdlog.h"

namespace classifier {

Housekeeper::Housekeeper(JobManager* jobs, Store* store, const ModelRegistry* models,
                         Metrics* metrics, absl::Duration job_retention)
    : jobs_(jobs),
      store_(store),
      models_(models),
      metrics_(metrics),
      job_retention_(job_retention),
      thread_([this] { Loop(); }) {}

Housekeeper::~Housekeeper() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  stop_requested_.SignalAll();
  thread_.join();
}

absl::Duration Housekeeper::RoundInterval(absl::Duration job_retention) {
  if (job_retention <= absl::ZeroDuration()) return absl::Minutes(1);
  return std::clamp(job_retention / 4, absl::Milliseconds(100), absl::Minutes(1));
}

void Housekeeper::Loop() {
  const auto interval = absl::ToChronoMilliseconds(RoundInterval(job_retention_));
  for (;;) {
    RunRound();
    const auto next = std::chrono::steady_clock::now() + interval;
    MutexLock lock(&mu_);
    while (!stopping_ && std::chrono::steady_clock::now() < next) {
      stop_requested_.WaitUntil(&mu_, next);
    }
    if (stopping_) return;
  }
}

void Housekeeper::RunRound() {
  ReturnFreeHeapToSystem();  // See free_heap.h: RSS follows what is in use, not what was.
  if (job_retention_ > absl::ZeroDuration()) {
    absl::StatusOr<int> deleted = jobs_->DeleteFinishedBefore(absl::Now() - job_retention_);
    if (!deleted.ok()) {
      spdlog::error("retention: cannot delete old jobs: {}", deleted.status().ToString());
    } else if (*deleted > 0) {
      spdlog::info("retention: deleted {} job(s) that finished more than {} ago", *deleted,
                   absl::FormatDuration(job_retention_));
      if (absl::Status reclaimed = store_->ReclaimSpace(); !reclaimed.ok()) {
        spdlog::warn("retention: {}", reclaimed.ToString());
      }
    }
  }
  if (metrics_ != nullptr) {
    absl::StatusOr<int64_t> model_bytes = models_->StoredBytes();
    if (!model_bytes.ok()) {
      spdlog::warn("storage metrics: {}", model_bytes.status().ToString());
      return;
    }
    metrics_->SetStorageBytes(store_->FileBytes(), *model_bytes);
  }
}

}  // namespace classifier
