// The job queue and the one worker thread that owns the training device.
//
// Jobs run one at a time in submission order. The worker hands each job to a
// JobExecutor (the glue that trains a model), then appends the job's final
// event from the outcome. Sharing work across several servers later means a
// different executor, not a different queue.
#ifndef CLASSIFIER_SERVER_JOB_MANAGER_H_
#define CLASSIFIER_SERVER_JOB_MANAGER_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.pb.h"
#include "server/job.h"
#include "server/metrics.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

// How a job ended, as the executor reports it.
struct JobOutcome {
  v1::JobState state = v1::JOB_STATE_FAILED;
  std::string model_id;
  v1::Metrics test_metrics;
  bool has_test_metrics = false;
  std::string error;
  // How a successful job ended (see JobEvent.Finished).
  bool stopped_early = false;
  int epochs_completed = 0;
  int best_epoch = 0;
  std::string note;
  // A sweep: its best trial (1-based).
  int best_trial = 0;
};

// Runs one job on the worker thread. Appends progress and epoch_end events to
// the job as it goes, stops soon after job.cancel_requested() turns true, never
// throws.
class JobExecutor {
 public:
  virtual ~JobExecutor() = default;
  // The `started` event for a job about to run: device, training images,
  // epochs. Quick (no data loading): it runs on the worker thread just before
  // Execute.
  virtual v1::JobEvent::Started Describe(const v1::TrainRequest& request) const = 0;
  // Where an interrupted job will continue from (its last checkpoint, or the start).
  virtual v1::JobEvent::Resumed ResumePoint(const Job& job) = 0;
  // Runs the job. An outcome of INTERRUPTED (the job was interrupted, see Job::Interrupt)
  // means the job keeps its checkpoint and gets no final event.
  virtual JobOutcome Execute(Job& job) = 0;
  // The job ended without running (cancelled while waiting): drop what it left behind.
  virtual void Discard(const Job& job) = 0;
  // A finished job is being deleted (retention): remove every file it left.
  virtual void Forget(const Job& job) = 0;
};

// How long the worker waits before it tries a paused job again (Job::Pause): the disk or the
// database is full or gone, which takes an operator, not a tight loop
// (ServerConfig::paused_job_retry).
inline constexpr absl::Duration kDefaultPausedJobRetry = absl::Seconds(10);

// This server among the replicas that share a store (Store::shared()).
struct ReplicaIdentity {
  std::string id;  // Its name among them (STATE/replica_id); empty when the store is not shared.
  // How long its claim on a job lasts unless renewed: a replica that dies loses its jobs to the
  // others this long after its last renewal (ServerConfig::job_lease).
  absl::Duration lease = absl::ZeroDuration();
};

class JobManager {
 public:
  // `executor` and `store` must outlive the manager; with a null store jobs live in memory
  // only. `recovered` are the jobs read back from the store: those that were running resume
  // first, then the queued ones run, in their original order. At most `max_queued_jobs` new
  // jobs wait at once. `metrics` (may be null) gets the queue length and each final state.
  // `on_training` (may be empty) hears whether a job is running whenever that may have
  // changed, under the manager's lock: it must be quick and must not call back.
  //
  // With a shared store, `replica` names this server among the replicas: new jobs are recorded
  // as its own, under a lease that FollowStore renews; of the recovered jobs it runs only its
  // own (their leases renewed before they were read: Store::RenewJobLeases), and follows the
  // others' as their replicas run them (FollowStore), never running a job twice.
  //
  // A job that pauses (Job::Pause: what it must write cannot be) goes back to the front of the
  // queue, and the worker starts nothing for `paused_job_retry`, then tries it again: from its
  // last checkpoint, or, when only its final event was refused, that event alone.
  JobManager(JobExecutor* executor, Store* store, int max_queued_jobs,
             std::vector<StoredJob> recovered = {}, Metrics* metrics = nullptr,
             std::function<void(bool training)> on_training = nullptr, ReplicaIdentity replica = {},
             absl::Duration paused_job_retry = kDefaultPausedJobRetry);
  // Shuts down (see Shutdown) and joins the worker.
  ~JobManager();
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // Queues a validated request. RESOURCE_EXHAUSTED when the queue is full,
  // UNAVAILABLE after Shutdown. Thread-safe, like every method here.
  absl::StatusOr<std::shared_ptr<Job>> Submit(const v1::TrainRequest& request);

  // NOT_FOUND naming the id when there is no such job. With a shared store, a job another
  // replica accepted since the last FollowStore is read from the store.
  absl::StatusOr<std::shared_ptr<Job>> Get(const std::string& job_id);
  // Oldest first.
  std::vector<std::shared_ptr<Job>> List() const;
  // Cancels a queued or running job (see Job::Cancel); returns its snapshot
  // afterwards. A job another replica runs is cancelled by that replica, which the request
  // reaches through the store within one of its FollowStore rounds.
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id);

  // A shared store's replica keeping up with the others (called every ReplicaFollower interval):
  // renews the leases on its jobs (every quarter lease), stops running any job another replica
  // took over, takes over the jobs whose replicas' leases ran out (they resume here from their
  // checkpoints), applies cancel requests made on other replicas, learns of the others' new jobs
  // and appends their new events, so GetJob, ListJobs and WatchJob here show every job live.
  // A no-op without a shared store or after Shutdown.
  absl::Status FollowStore();

  // Deletes the jobs that finished before `cutoff`: from the lists, the store (their events
  // too) and, through the executor, the files they left. Queued and running jobs are never
  // touched. Watchers holding a deleted job keep their stream. Returns how many went.
  absl::StatusOr<int> DeleteFinishedBefore(absl::Time cutoff);

  // Refuses new jobs and waits for the worker to stop. With a store, the running job is
  // interrupted at its next batch (checkpointed; it resumes after a restart), queued jobs stay
  // queued, and their watchers are detached; a shared store's replica then gives its leases up,
  // so another replica takes its jobs over at once. Without a store, every job is cancelled
  // with `reason` and ends with a final event. Idempotent.
  void Shutdown(const std::string& reason);

 private:
  void WorkerLoop();
  // Runs one job the worker took from the queue, to its end or until it stops without one.
  void RunJob(const std::shared_ptr<Job>& job) ABSL_LOCKS_EXCLUDED(mu_);
  // A paused job goes back to the front of the queue; the worker waits paused_job_retry_.
  void Requeue(const std::shared_ptr<Job>& job) ABSL_LOCKS_EXCLUDED(mu_);
  bool following() const { return store_ != nullptr && store_->shared(); }
  // Records a job read from the store that another replica runs; returns it. A job already
  // known is returned as it is.
  std::shared_ptr<Job> FollowLocked(StoredJob stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a job this replica claimed (Store::ClaimExpiredJobs) here.
  void Adopt(StoredJob claimed) ABSL_LOCKS_EXCLUDED(mu_);
  // Stops running a job another replica took over, and follows it from the store instead.
  void Release(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces a job this replica no longer runs with the store's version of it, followed.
  void FollowFromStore(const std::shared_ptr<Job>& job) ABSL_LOCKS_EXCLUDED(mu_);
  // Cancels one of this replica's own jobs (see Cancel).
  void CancelOwn(const std::shared_ptr<Job>& job, const std::string& reason)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The FollowStore parts.
  absl::Status RenewAndClaim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(follow_mu_);
  void ApplyCancelRequests(const std::map<std::string, std::string>& requests)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status FollowOtherReplicas() ABSL_EXCLUSIVE_LOCKS_REQUIRED(follow_mu_);
  std::string NewJobId() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Publishes the queued and running counts to metrics_ and on_training_.
  void UpdateJobCounts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  JobExecutor* const executor_;
  Store* const store_;
  const int max_queued_jobs_;
  const ReplicaIdentity replica_;
  Metrics* const metrics_;
  const std::function<void(bool training)> on_training_;
  const absl::Duration paused_job_retry_;

  mutable Mutex mu_;
  CondVar work_available_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Job> running_ ABSL_GUARDED_BY(mu_);
  // After a job paused: the worker starts nothing before this.
  absl::Time retry_after_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Final events the store refused, by job id: appended when the job's turn comes again (its
  // model exists: training it again would make a twin).
  std::map<std::string, v1::JobEvent> unstored_final_events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Job>> jobs_in_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Job>> jobs_by_id_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 id_generator_ ABSL_GUARDED_BY(mu_);
  // The jobs another replica runs, which this one follows (shared stores only).
  std::set<std::string> followed_ ABSL_GUARDED_BY(mu_);

  // FollowStore's own state; one round at a time. Taken before mu_, never while holding it.
  Mutex follow_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Time next_renewal_ ABSL_GUARDED_BY(follow_mu_) = absl::InfinitePast();
  // The newest store position seen (Store::JobsAfter).
  int64_t newest_position_ ABSL_GUARDED_BY(follow_mu_) = 0;

  // Last member: started after everything above exists, joined first.
  std::thread worker_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_JOB_MANAGER_H_
