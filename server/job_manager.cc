#include "server/job_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace classifier {

JobManager::JobManager(JobExecutor* executor, Store* store, int max_queued_jobs,
                       std::vector<StoredJob> recovered, Metrics* metrics,
                       std::function<void(bool training)> on_training, std::string replica_id)
    : executor_(executor),
      store_(store),
      max_queued_jobs_(max_queued_jobs),
      replica_id_(std::move(replica_id)),
      metrics_(metrics),
      on_training_(std::move(on_training)),
      id_generator_(std::random_device{}()) {
  std::vector<std::shared_ptr<Job>> waiting;
  for (StoredJob& stored : recovered) {
    const bool ours = stored.owner.empty() || stored.owner == replica_id_;
    const std::string owner = stored.owner;
    auto job = std::make_shared<Job>(std::move(stored), store_);
    // Finished before the store kept summaries: record it now, so the next start reads one row.
    job->Archive();
    jobs_in_order_.push_back(job);
    jobs_by_id_[job->id()] = job;
    const v1::JobState state = job->state();
    if (!ours) {
      if (state == v1::JOB_STATE_INTERRUPTED || state == v1::JOB_STATE_QUEUED) {
        spdlog::info("job {} belongs to replica {}: listed here, run there", job->id(), owner);
      }
    } else if (state == v1::JOB_STATE_INTERRUPTED) {
      queue_.push_back(job);  // Interrupted jobs first, in their order.
      spdlog::info("job {} was running when the server stopped: it resumes first", job->id());
    } else if (state == v1::JOB_STATE_QUEUED) {
      waiting.push_back(job);
    }
  }
  queue_.insert(queue_.end(), waiting.begin(), waiting.end());
  {
    MutexLock lock(&mu_);
    UpdateJobCounts();
  }
  if (!recovered.empty()) {
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
    if (absl::Status stored = store_->InsertJob(job_id, request, replica_id_); !stored.ok())
      return stored;
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

absl::StatusOr<std::shared_ptr<Job>> JobManager::Get(const std::string& job_id) const {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id is required");
  MutexLock lock(&mu_);
  auto it = jobs_by_id_.find(job_id);
  if (it == jobs_by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("no job with job_id \"", job_id, "\""));
  }
  return it->second;
}

std::vector<std::shared_ptr<Job>> JobManager::List() const {
  MutexLock lock(&mu_);
  return jobs_in_order_;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  absl::StatusOr<std::shared_ptr<Job>> job = Get(job_id);
  if (!job.ok()) return job.status();
  if ((*job)->Cancel("cancelled by request")) {
    bool removed = false;
    {
      MutexLock lock(&mu_);
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        if (*it == *job) {
          queue_.erase(it);
          UpdateJobCounts();
          removed = true;
          break;
        }
      }
    }
    if (removed) executor_->Discard(**job);
  }
  spdlog::info("job {} cancel requested", job_id);
  return (*job)->Snapshot();
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
      while (!shutting_down_ && queue_.empty()) work_available_.Wait(&mu_);
      if (shutting_down_) return;
      job = queue_.front();
      queue_.pop_front();
      running_ = job;
      UpdateJobCounts();
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
    if (!run) executor_->Discard(*job);
    if (run) {
      const JobOutcome outcome = executor_->Execute(*job);
      if (outcome.state == v1::JOB_STATE_INTERRUPTED) {
        spdlog::info("job {} interrupted; it resumes from its checkpoint after a restart",
                     job->id());
        MutexLock lock(&mu_);
        running_.reset();
        UpdateJobCounts();
        continue;
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
      final_event->set_error(outcome.state == v1::JOB_STATE_CANCELLED &&
                                     !job->cancel_reason().empty()
                                 ? absl::StrCat(job->cancel_reason(), ": ", outcome.error)
                                 : outcome.error);
      const std::string log_error = final_event->error();
      // Counted first: whoever sees the final event (a Train stream ending) sees the count too.
      if (metrics_ != nullptr) metrics_->CountFinishedJob(v1::JobState_Name(outcome.state));
      job->Append(std::move(finished));
      spdlog::info("job {} ended {}{}{}", job->id(), v1::JobState_Name(outcome.state),
                   log_error.empty() ? "" : ": ", log_error);
    }
    MutexLock lock(&mu_);
    running_.reset();
    UpdateJobCounts();
  }
}

}  // namespace classifier
