#include "server/job_manager.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace classifier {

JobManager::JobManager(JobExecutor* executor, Store* store, int max_queued_jobs,
                       std::vector<StoredJob> recovered, Metrics* metrics,
                       std::function<void(bool training)> on_training, ReplicaIdentity replica,
                       absl::Duration paused_job_retry)
    : executor_(executor),
      store_(store),
      max_queued_jobs_(max_queued_jobs),
      replica_(std::move(replica)),
      metrics_(metrics),
      on_training_(std::move(on_training)),
      paused_job_retry_(paused_job_retry),
      id_generator_(std::random_device{}()) {
  std::vector<std::shared_ptr<Job>> waiting;
  MutexLock follow(&follow_mu_);
  MutexLock lock(&mu_);
  for (StoredJob& stored : recovered) {
    newest_position_ = std::max(newest_position_, stored.position);
    // A shared store's job is this replica's when it owns it; one of no replica (written before
    // leases, or by the bulk path) waits to be claimed like an orphan.
    const bool ours = following() ? stored.owner == replica_.id : true;
    const std::string owner = stored.owner;
    auto job = std::make_shared<Job>(std::move(stored), store_, /*runs_elsewhere=*/!ours);
    // Finished before the store kept summaries: record it now, so the next start reads one row.
    if (ours) job->Archive();
    jobs_in_order_.push_back(job);
    jobs_by_id_[job->id()] = job;
    const v1::JobState state = job->state();
    if (!ours) {
      if (!IsTerminal(state)) {
        followed_.insert(job->id());
        spdlog::info("job {} belongs to replica {}: followed here, run there", job->id(),
                     owner.empty() ? "(none yet)" : owner);
      }
    } else if (state == v1::JOB_STATE_INTERRUPTED) {
      queue_.push_back(job);  // Interrupted jobs first, in their order.
      spdlog::info("job {} was running when the server stopped: it resumes first", job->id());
    } else if (state == v1::JOB_STATE_QUEUED) {
      waiting.push_back(job);
    }
  }
  queue_.insert(queue_.end(), waiting.begin(), waiting.end());
  UpdateJobCounts();
  if (!jobs_in_order_.empty()) {
    spdlog::info("recovered {} jobs from the store, {} to run", jobs_in_order_.size(),
                 queue_.size());
  }
  worker_ = std::thread([this] { WorkerLoop(); });
}

JobManager::~JobManager() { Shutdown("server shutting down"); }

absl::StatusOr<int> JobManager::DeleteFinishedBefore(absl::Time cutoff) {
  std::vector<std::shared_ptr<Job>> expired;
  {
    MutexLock lock(&mu_);
    for (const std::shared_ptr<Job>& job : jobs_in_order_) {
      if (job->FinishedBefore(cutoff)) expired.push_back(job);
    }
  }
  if (expired.empty()) return 0;
  std::vector<std::string> ids;
  ids.reserve(expired.size());
  for (const std::shared_ptr<Job>& job : expired) ids.push_back(job->id());
  // The store first: if that fails, nothing is forgotten and the next round tries again.
  if (store_ != nullptr) {
    if (absl::Status deleted = store_->DeleteJobs(ids); !deleted.ok()) return deleted;
  }
  {
    MutexLock lock(&mu_);
    for (const std::string& id : ids) jobs_by_id_.erase(id);
    jobs_in_order_.erase(std::remove_if(jobs_in_order_.begin(), jobs_in_order_.end(),
                                        [this](const std::shared_ptr<Job>& job) {
                                          mu_.AssertHeld();
                                          return jobs_by_id_.count(job->id()) == 0;
                                        }),
                         jobs_in_order_.end());
  }
  for (const std::shared_ptr<Job>& job : expired) executor_->Forget(*job);
  return static_cast<int>(expired.size());
}

std::string JobManager::NewJobId() {
  // Random rather than sequential, so ids never repeat across restarts.
  std::string id;
  do {
    id = absl::StrFormat("job-%012x", id_generator_() & 0xffffffffffffULL);
  } while (jobs_by_id_.count(id) != 0);
  return id;
}

void JobManager::UpdateJobCounts() {
  if (metrics_ != nullptr) {
    metrics_->SetJobCounts(static_cast<int>(queue_.size()), running_ ? 1 : 0);
  }
  if (on_training_) on_training_(running_ != nullptr);
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Submit(const v1::TrainRequest& request) {
  MutexLock lock(&mu_);
  if (shutting_down_) return absl::UnavailableError("the server is shutting down");
  if (static_cast<int>(queue_.size()) >= max_queued_jobs_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the job queue is full (", max_queued_jobs_,
                     " jobs waiting, the server's --max_queued_jobs); retry "
                     "when a job has finished"));
  }
  const int position = static_cast<int>(queue_.size()) + (running_ ? 1 : 0);
  const std::string job_id = NewJobId();
  if (store_ != nullptr) {
    if (absl::Status stored = store_->InsertJob(job_id, request, replica_.id, replica_.lease);
        !stored.ok()) {
      return stored;
    }
  }
  auto job = std::make_shared<Job>(job_id, request, position, store_);
  queue_.push_back(job);
  jobs_in_order_.push_back(job);
  jobs_by_id_[job->id()] = job;
  UpdateJobCounts();
  work_available_.Signal();
  spdlog::info("job {} queued (dataset {}, position {})", job->id(), request.dataset(), position);
  return job;
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Get(const std::string& job_id) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is required");
  {
    MutexLock lock(&mu_);
    auto it = jobs_by_id_.find(job_id);
    if (it != jobs_by_id_.end()) return it->second;
  }
  if (following()) {
    // Accepted by another replica since this one last looked.
    absl::StatusOr<std::optional<StoredJob>> stored = store_->LoadJob(job_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) {
      MutexLock lock(&mu_);
      return FollowLocked(**std::move(stored));
    }
  }
  return absl::NotFoundError(absl::StrCat("no job with job_id \"", job_id, "\""));
}

std::vector<std::shared_ptr<Job>> JobManager::List() const {
  MutexLock lock(&mu_);
  return jobs_in_order_;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  absl::StatusOr<std::shared_ptr<Job>> job = Get(job_id);
  if (!job.ok()) return job.status();
  bool elsewhere;
  {
    MutexLock lock(&mu_);
    elsewhere = followed_.count(job_id) != 0;
  }
  if (elsewhere) {
    absl::Status requested = store_->RequestJobCancel(job_id, "cancelled by request");
    // NOT_FOUND: it finished meanwhile, which its snapshot will show.
    if (!requested.ok() && !absl::IsNotFound(requested)) return requested;
    spdlog::info("job {} cancel requested of the replica that runs it", job_id);
    return (*job)->Snapshot();
  }
  CancelOwn(*job, "cancelled by request");
  spdlog::info("job {} cancel requested", job_id);
  return (*job)->Snapshot();
}

void JobManager::CancelOwn(const std::shared_ptr<Job>& job, const std::string& reason) {
  if (!job->Cancel(reason)) return;
  bool removed = false;
  {
    MutexLock lock(&mu_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (*it == job) {
        queue_.erase(it);
        UpdateJobCounts();
        removed = true;
        break;
      }
    }
  }
  if (removed) executor_->Discard(*job);
}

std::shared_ptr<Job> JobManager::FollowLocked(StoredJob stored) {
  auto known = jobs_by_id_.find(stored.job_id);
  if (known != jobs_by_id_.end()) return known->second;
  auto job = std::make_shared<Job>(std::move(stored), store_, /*runs_elsewhere=*/true);
  jobs_in_order_.push_back(job);
  jobs_by_id_[job->id()] = job;
  if (!job->finished()) followed_.insert(job->id());
  return job;
}

absl::Status JobManager::FollowStore() {
  if (!following()) return absl::OkStatus();
  MutexLock follow(&follow_mu_);
  {
    MutexLock lock(&mu_);
    if (shutting_down_) return absl::OkStatus();
  }
  absl::Status status = absl::OkStatus();
  if (absl::Now() >= next_renewal_) {
    status = RenewAndClaim();
  } else {
    // Between renewals, a cheap read so a cancel made on another replica acts quickly.
    absl::StatusOr<std::map<std::string, std::string>> requests =
        store_->CancelRequests(replica_.id);
    if (requests.ok()) {
      ApplyCancelRequests(*requests);
    } else {
      status = requests.status();
    }
  }
  absl::Status followed = FollowOtherReplicas();
  return status.ok() ? followed : status;
}

absl::Status JobManager::RenewAndClaim() {
  // The jobs this replica ran before asking: a job submitted while the renewal runs is not
  // in its answer, yet is ours.
  std::vector<std::string> ours_before;
  {
    MutexLock lock(&mu_);
    for (const std::shared_ptr<Job>& job : jobs_in_order_) {
      if (followed_.count(job->id()) == 0 && !job->finished()) ours_before.push_back(job->id());
    }
  }
  const absl::Time asked = absl::Now();
  absl::StatusOr<JobLeaseRenewal> renewal = store_->RenewJobLeases(replica_.id, replica_.lease);
  if (!renewal.ok()) return renewal.status();
  next_renewal_ = asked + replica_.lease / 4;
  for (const std::string& job_id : ours_before) {
    if (renewal->held.count(job_id) == 0) Release(job_id);
  }
  ApplyCancelRequests(renewal->cancel_requests);
  // Leased to this replica yet followed: it claimed the job while a run it had lost was still
  // stopping (Adopt left it then). It runs here now.
  std::vector<std::string> leased_but_followed;
  {
    MutexLock lock(&mu_);
    for (const std::string& job_id : renewal->held) {
      if (followed_.count(job_id) != 0) leased_but_followed.push_back(job_id);
    }
  }
  for (const std::string& job_id : leased_but_followed) {
    absl::StatusOr<std::optional<StoredJob>> stored = store_->LoadJob(job_id);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) Adopt(**std::move(stored));
  }
  absl::StatusOr<std::vector<StoredJob>> claimed =
      store_->ClaimExpiredJobs(replica_.id, replica_.lease);
  if (!claimed.ok()) return claimed.status();
  for (StoredJob& job : *claimed) Adopt(std::move(job));
  return absl::OkStatus();
}

void JobManager::ApplyCancelRequests(const std::map<std::string, std::string>& requests) {
  for (const auto& [job_id, reason] : requests) {
    std::shared_ptr<Job> job;
    {
      MutexLock lock(&mu_);
      auto it = jobs_by_id_.find(job_id);
      if (it == jobs_by_id_.end() || followed_.count(job_id) != 0) continue;
      job = it->second;
    }
    if (job->finished() || job->cancel_requested()) continue;
    spdlog::info("job {} cancelled on another replica", job_id);
    CancelOwn(job, reason);
  }
}

void JobManager::Adopt(StoredJob claimed) {
  const std::string job_id = claimed.job_id;
  const std::string cancel_reason = claimed.cancel_reason;
  std::shared_ptr<Job> job;
  {
    MutexLock lock(&mu_);
    auto known = jobs_by_id_.find(job_id);
    if (known != jobs_by_id_.end() && followed_.count(job_id) == 0) {
      return;  // Already run here (its lease had lapsed, yet nobody else took it).
    }
    if (known != jobs_by_id_.end()) {
      job = known->second;
      job->AppendFollowed(claimed.events);  // What it did since this replica last looked.
      job->TakeOver();
    } else {
      job = std::make_shared<Job>(std::move(claimed), store_);
      jobs_in_order_.push_back(job);
      jobs_by_id_[job_id] = job;
    }
    followed_.erase(job_id);
    // After Shutdown, the lease given up below goes to another replica.
    if (shutting_down_) return;
    if (job->state() == v1::JOB_STATE_INTERRUPTED) {
      queue_.push_front(job);  // It was running: it goes on first.
    } else if (job->state() == v1::JOB_STATE_QUEUED) {
      queue_.push_back(job);
    }
    UpdateJobCounts();
    work_available_.Signal();
  }
  spdlog::info("job {} taken over: the replica that held it let its lease run out", job_id);
  if (!cancel_reason.empty()) CancelOwn(job, cancel_reason);
}

void JobManager::Release(const std::string& job_id) {
  std::shared_ptr<Job> job;
  bool running = false;
  {
    MutexLock lock(&mu_);
    auto it = jobs_by_id_.find(job_id);
    if (it == jobs_by_id_.end()) return;
    job = it->second;
    // Finished while the renewal ran (a finished job holds no lease): nothing moved.
    if (job->finished()) return;
    queue_.erase(std::remove(queue_.begin(), queue_.end(), job), queue_.end());
    running = running_ == job;
    UpdateJobCounts();
  }
  spdlog::warn(
      "job {} was taken over by another replica (this one's lease ran out): "
      "it stops here",
      job_id);
  job->Abandon();
  // A running one is followed once the worker has stopped it (WorkerLoop).
  if (!running) FollowFromStore(job);
}

void JobManager::FollowFromStore(const std::shared_ptr<Job>& job) {
  absl::StatusOr<std::optional<StoredJob>> stored = store_->LoadJob(job->id());
  MutexLock lock(&mu_);
  jobs_by_id_.erase(job->id());
  jobs_in_order_.erase(std::remove(jobs_in_order_.begin(), jobs_in_order_.end(), job),
                       jobs_in_order_.end());
  job->DetachWatchers("the job moved to another replica: watch it again");
  if (stored.ok() && stored->has_value()) {
    FollowLocked(**std::move(stored));
  } else {
    spdlog::error("job {}: cannot read it back from the store: {}", job->id(),
                  stored.ok() ? "gone" : stored.status().ToString());
  }
}

absl::Status JobManager::FollowOtherReplicas() {
  // Positions are handed out when a job is inserted but become visible when it commits, so a
  // job can appear behind a newer one: look again at the last few positions every time.
  constexpr int64_t kReorderWindow = 256;
  absl::StatusOr<std::vector<JobPosition>> positions =
      store_->JobsAfter(std::max<int64_t>(0, newest_position_ - kReorderWindow));
  if (!positions.ok()) return positions.status();
  for (const JobPosition& position : *positions) {
    newest_position_ = std::max(newest_position_, position.position);
    {
      MutexLock lock(&mu_);
      if (jobs_by_id_.count(position.job_id) != 0) continue;
    }
    absl::StatusOr<std::optional<StoredJob>> stored = store_->LoadJob(position.job_id);
    if (!stored.ok()) return stored.status();
    if (!stored->has_value()) continue;  // Deleted meanwhile.
    MutexLock lock(&mu_);
    FollowLocked(**std::move(stored));
  }
  std::vector<std::shared_ptr<Job>> followed;
  {
    MutexLock lock(&mu_);
    for (const std::string& job_id : followed_) {
      auto it = jobs_by_id_.find(job_id);
      if (it != jobs_by_id_.end()) followed.push_back(it->second);
    }
  }
  for (const std::shared_ptr<Job>& job : followed) {
    absl::StatusOr<std::vector<v1::JobEvent>> events =
        store_->LoadEvents(job->id(), job->last_sequence() + 1);
    if (!events.ok()) return events.status();
    job->AppendFollowed(*events);
    if (job->finished()) {
      MutexLock lock(&mu_);
      followed_.erase(job->id());
    }
  }
  return absl::OkStatus();
}

void JobManager::Shutdown(const std::string& reason) {
  std::deque<std::shared_ptr<Job>> queued;
  std::shared_ptr<Job> running;
  {
    MutexLock lock(&mu_);
    shutting_down_ = true;
    queued.swap(queue_);
    running = running_;
    UpdateJobCounts();
    work_available_.SignalAll();
  }
  if (store_ == nullptr) {
    for (const auto& job : queued) job->Cancel(reason);
    if (running) running->Cancel(reason);
    if (worker_.joinable()) worker_.join();
    return;
  }
  if (running) running->Interrupt();
  if (worker_.joinable()) worker_.join();
  if (following()) {
    // After any round under way (which may have claimed a job), so nothing stays leased here.
    MutexLock follow(&follow_mu_);
    if (absl::Status released = store_->ReleaseJobLeases(replica_.id); !released.ok()) {
      spdlog::warn(
          "cannot give this replica's jobs up to the others (they take them over when "
          "its leases run out): {}",
          released.ToString());
    }
  }
  // Jobs that go on after a restart: their streams end here, without a final event.
  for (const auto& job : List()) {
    if (!job->finished()) job->DetachWatchers(reason);
  }
}

void JobManager::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      MutexLock lock(&mu_);
      while (!shutting_down_ && (queue_.empty() || absl::Now() < retry_after_)) {
        if (queue_.empty()) {
          work_available_.Wait(&mu_);
        } else {
          work_available_.WaitUntil(&mu_, absl::ToChronoTime(retry_after_));
        }
      }
      if (shutting_down_) return;
      job = queue_.front();
      queue_.pop_front();
      running_ = job;
      // Under the lock that Shutdown takes to find the running job, so its Interrupt comes after.
      job->ClearPause();
      UpdateJobCounts();
    }
    RunJob(job);
    MutexLock lock(&mu_);
    if (running_ == job) running_.reset();  // Requeue has already, for a paused job.
    UpdateJobCounts();
  }
}

void JobManager::Requeue(const std::shared_ptr<Job>& job) {
  job->EndPausedRun();
  MutexLock lock(&mu_);
  running_.reset();
  if (shutting_down_) return;  // It resumes after the restart, as the store has it.
  queue_.push_front(job);
  retry_after_ = absl::Now() + paused_job_retry_;
  UpdateJobCounts();
  spdlog::info("job {} waits {} before it is tried again", job->id(),
               absl::FormatDuration(paused_job_retry_));
}

void JobManager::RunJob(const std::shared_ptr<Job>& job) {
  std::optional<v1::JobEvent> unstored_final;
  {
    MutexLock lock(&mu_);
    auto it = unstored_final_events_.find(job->id());
    if (it != unstored_final_events_.end()) {
      unstored_final = std::move(it->second);
      unstored_final_events_.erase(it);
    }
  }
  if (unstored_final.has_value()) {
    if (job->Append(*unstored_final) == 0 && job->paused()) {
      MutexLock lock(&mu_);
      unstored_final_events_[job->id()] = *std::move(unstored_final);
    }
    if (job->paused()) Requeue(job);
    return;
  }
  const std::string cancel_reason = job->cancel_reason();
  if (!cancel_reason.empty()) {
    // Cancelled while it waited, when the store refused the final event: end it now.
    if (job->Cancel(cancel_reason) || job->finished()) {
      executor_->Discard(*job);
    } else if (job->paused()) {
      Requeue(job);
    }
    return;
  }
  bool run = false;
  if (job->state() == v1::JOB_STATE_INTERRUPTED) {
    const v1::JobEvent::Resumed resumed = executor_->ResumePoint(*job);
    run = job->BeginResuming(resumed);
    if (run) {
      spdlog::info("job {} resumed at epoch {}, batch {}", job->id(), resumed.epoch(),
                   resumed.batch());
    }
  } else {
    const v1::JobEvent::Started started = executor_->Describe(job->request());
    run = job->BeginRunning(started);
    if (run) spdlog::info("job {} started on {}", job->id(), started.device());
  }
  if (!run) {
    if (job->paused()) {
      Requeue(job);
    } else {
      executor_->Discard(*job);
    }
    return;
  }
  const JobOutcome outcome = executor_->Execute(*job);
  if (job->abandoned()) {
    // Another replica runs it now (Release): whatever it ended with here is not its end.
    FollowFromStore(job);
    return;
  }
  if (outcome.state == v1::JOB_STATE_INTERRUPTED) {
    if (job->paused()) {
      Requeue(job);
    } else {
      spdlog::info("job {} interrupted; it resumes from its checkpoint after a restart", job->id());
    }
    return;
  }
  v1::JobEvent finished;
  v1::JobEvent::Finished* final_event = finished.mutable_finished();
  final_event->set_state(outcome.state);
  final_event->set_model_id(outcome.model_id);
  if (outcome.has_test_metrics) *final_event->mutable_test_metrics() = outcome.test_metrics;
  final_event->set_stopped_early(outcome.stopped_early);
  final_event->set_epochs_completed(outcome.epochs_completed);
  final_event->set_best_trial(outcome.best_trial);
  final_event->set_best_epoch(outcome.best_epoch);
  final_event->set_note(outcome.note);
  // A cancelled job says who cancelled it, then where it stopped.
  final_event->set_error(outcome.state == v1::JOB_STATE_CANCELLED && !job->cancel_reason().empty()
                             ? absl::StrCat(job->cancel_reason(), ": ", outcome.error)
                             : outcome.error);
  const std::string log_error = final_event->error();
  // Counted first: whoever sees the final event (a Train stream ending) sees the count too.
  if (metrics_ != nullptr) metrics_->CountFinishedJob(v1::JobState_Name(outcome.state));
  if (job->Append(finished) == 0 && job->paused()) {
    {
      MutexLock lock(&mu_);
      unstored_final_events_[job->id()] = std::move(finished);
    }
    Requeue(job);
    return;
  }
  spdlog::info("job {} ended {}{}{}", job->id(), v1::JobState_Name(outcome.state),
               log_error.empty() ? "" : ": ", log_error);
}

}  // namespace classifier
