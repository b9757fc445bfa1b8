// One training job: its request, its event log and the watchers that follow it.
//
// The event log is the job's source of truth: state, timestamps and latest
// metrics are derived from the events as they are appended, so that a store can
// later rebuild a job by replaying them. Every event is published to every
// subscribed sink in order, without gaps.
#ifndef CLASSIFIER_SERVER_JOB_H_
#define CLASSIFIER_SERVER_JOB_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.pb.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

// Receives a job's events in sequence order. OnEvent is called with the job's
// lock held: it must be quick and must not block or call back into the job.
class JobEventSink {
 public:
  virtual ~JobEventSink() = default;
  virtual void OnEvent(const v1::JobEvent& event) = 0;
  // The server is stopping before the job ended: no more events will come through this sink
  // (the job goes on after a restart; watchers re-attach with WatchJob).
  virtual void OnDetached(const std::string& reason) = 0;
};

class Job {
 public:
  // A new job: appends the `queued` event (sequence 1). Every event also goes to `store`
  // when there is one (it must outlive the job).
  Job(std::string id, v1::TrainRequest request, int queue_position, JobEventStore* store);
  // A job read back from the store: a finished one from its summary (its events stay in the
  // store), the others with their events replayed. One that was running when the server stopped
  // is INTERRUPTED until the worker resumes it, unless `runs_elsewhere`: another replica sharing
  // the store runs it, and this server only follows its events (AppendFollowed).
  Job(StoredJob stored, JobEventStore* store, bool runs_elsewhere = false);
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const std::string& id() const { return id_; }
  // As the client sent it (defaults not applied).
  const v1::TrainRequest& request() const { return request_; }

  // Stamps `event` with the job id, the next sequence number and the time, stores it,
  // records it, updates the derived state and publishes it to every sink.
  // Returns the sequence number. Events after the `finished` event are dropped
  // (returns 0).
  int64_t Append(v1::JobEvent event);

  // Events another replica appended to the store for a job it runs, in order from the next
  // sequence this job lacks: recorded and published like Append's, but not stored again. Those
  // already here are skipped; a gap ends the batch (the next look reads from there).
  void AppendFollowed(const std::vector<v1::JobEvent>& events);
  // This server runs the job from now on (it claimed it: Store::ClaimExpiredJobs): one another
  // replica was running is INTERRUPTED, to resume from its last checkpoint.
  void TakeOver();
  // Another replica took the job over: this server stops at its next batch without writing
  // anything more of it (no event, no checkpoint), as the job is no longer its own.
  void Abandon();
  bool abandoned() const { return abandoned_.load(std::memory_order_relaxed); }
  // The sequence number of the newest event.
  int64_t last_sequence() const;

  // QUEUED -> RUNNING, appending a `started` event; INTERRUPTED -> RUNNING, appending a
  // `resumed` event (after the `checkpoint_saved` of its position, when a run that was killed
  // had stored that checkpoint but not yet announced it). False when the job is in neither state
  // (cancelled while waiting), or when the store refused the event (the job is paused).
  bool BeginRunning(const v1::JobEvent::Started& started);
  bool BeginResuming(const v1::JobEvent::Resumed& resumed);

  // Cancels: a queued job ends at once (a `finished` CANCELLED event, returns
  // true); a running one is flagged so the worker stops at its next batch
  // boundary (returns false). Finished jobs are left alone. A final event the store refuses
  // pauses the job (returns false): the worker ends it as cancelled when it tries again.
  bool Cancel(const std::string& reason);
  // Asks a running job to stop at its next batch and keep its place (the server is stopping;
  // the job resumes after a restart). Its executor sees interrupting() and ends without a
  // final event.
  void Interrupt();
  bool interrupting() const { return interrupting_.load(std::memory_order_relaxed); }

  // The job cannot keep what it must (an event, its checkpoint, its model: the disk or the
  // database is full or gone), so it pauses rather than fail or lose it: it stops at its next
  // batch like an interrupted job, and the worker tries it again from its last checkpoint
  // (JobManager, --paused_job_retry). `reason` names what could not be written. An event the
  // store refused is not recorded here either, so memory and store never disagree.
  void Pause(const absl::Status& reason);
  // Why the job is paused; OK when it is not.
  absl::Status pause_reason() const;
  bool paused() const { return !pause_reason().ok(); }
  // The executor has stopped it: INTERRUPTED (as the store, which never saw it go further, has
  // it), with the reason as its error until it runs again.
  void EndPausedRun();
  // Before the worker tries a paused job again: clears the reason and the stop the pause asked
  // for (a cancel asked meanwhile stays).
  void ClearPause();
  // Tells every sink the job's stream ends here without a final event, and drops them.
  void DetachWatchers(const std::string& reason);
  bool cancel_requested() const { return cancel_requested_.load(std::memory_order_relaxed); }
  // Why the job was cancelled; empty when it was not.
  std::string cancel_reason() const;

  // Sends every recorded event with sequence >= from_sequence to `sink`, then
  // registers it for the events that follow, all under one lock so nothing is
  // missed or sent twice.
  void Subscribe(JobEventSink* sink, int64_t from_sequence);
  // After this returns, `sink` is never called again.
  void Unsubscribe(JobEventSink* sink);

  v1::JobState state() const;
  bool finished() const;
  // What ListJobs filters and orders by, without copying the snapshot.
  struct Listing {
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    int64_t created_unix_nanos = 0;  // The `queued` event's time.
  };
  Listing listing() const;
  // Whether the job has its final event, stamped before `cutoff`.
  bool FinishedBefore(absl::Time cutoff) const;
  v1::Job Snapshot() const;
  // A copy of every event so far, in sequence order (e.g. what a resumed job already did).
  std::vector<v1::JobEvent> Events() const;

  // Whether the job's events live in the store only (a finished job with a store): memory holds
  // its snapshot alone, and watchers replay the events from the store.
  bool archived() const;
  // A finished job read back with its events (written before summaries were kept): records its
  // summary in the store and drops the events from memory. No-op otherwise.
  void Archive();

 private:
  // Append's body. Returns 0, recording nothing, after the final event, for an abandoned job,
  // and when the store refuses the event (the job is paused).
  int64_t AppendLocked(v1::JobEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PauseLocked(const absl::Status& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records an event already applied to the snapshot (and stored), publishes it to every sink,
  // and archives the job after its final one. Returns its sequence number.
  int64_t RecordLocked(v1::JobEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every event with sequence >= from_sequence, from memory or, archived, from the store.
  std::vector<v1::JobEvent> EventsFrom(int64_t from_sequence) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyToSnapshot(const v1::JobEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const std::string id_;
  const v1::TrainRequest request_;

  JobEventStore* const store_;  // May be null: events live in memory only.

  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> interrupting_{false};
  std::atomic<bool> abandoned_{false};

  mutable Mutex mu_;
  std::vector<v1::JobEvent> events_ ABSL_GUARDED_BY(mu_);  // Empty once archived.
  bool runs_elsewhere_ ABSL_GUARDED_BY(mu_) = false;
  bool archived_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<JobEventSink*> sinks_ ABSL_GUARDED_BY(mu_);
  v1::Job snapshot_ ABSL_GUARDED_BY(mu_);
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  absl::Status pause_reason_ ABSL_GUARDED_BY(mu_);
};

// SUCCEEDED, FAILED, CANCELLED: the job has its final event. (INTERRUPTED is not: the job
// resumes when the server starts again.)
bool IsTerminal(v1::JobState state);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_JOB_H_
