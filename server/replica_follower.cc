#include "server/replica_follower.h"

#include <chrono>

#include "spdlog/spdlog.h"

namespace classifier {

ReplicaFollower::ReplicaFollower(ModelRegistry* models, JobManager* jobs, absl::Duration interval)
    : models_(models), jobs_(jobs), interval_(interval), thread_([this] { Loop(); }) {}

ReplicaFollower::~ReplicaFollower() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  stop_requested_.SignalAll();
  thread_.join();
}

void ReplicaFollower::Loop() {
  const auto interval = absl::ToChronoMilliseconds(interval_);
  absl::Status last = absl::OkStatus();
  for (;;) {
    absl::Status followed = models_->FollowStore();
    // The jobs follow even when the models could not (each round is independent).
    if (absl::Status jobs = jobs_->FollowStore(); followed.ok()) followed = jobs;
    // Said once when it starts failing and once when it recovers, not five times a second.
    if (followed.ok() != last.ok() || followed.code() != last.code()) {
      if (followed.ok()) {
        spdlog::info("replica: following the shared store again");
      } else {
        spdlog::warn("replica: cannot follow the shared store: {}", followed.ToString());
      }
    }
    last = followed;
    const auto next = std::chrono::steady_clock::now() + interval;
    MutexLock lock(&mu_);
    while (!stopping_ && std::chrono::steady_clock::now() < next) {
      stop_requested_.WaitUntil(&mu_, next);
    }
    if (stopping_) return;
  }
}

}  // namespace classifier
