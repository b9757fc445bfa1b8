#include "server/job.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

}  // namespace

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

Job::Job(StoredJob stored, JobEventStore* store, bool runs_elsewhere)
    : id_(std::move(stored.job_id)), request_(std::move(stored.request)), store_(store) {
  MutexLock lock(&mu_);
  runs_elsewhere_ = runs_elsewhere;
  if (stored.summary.has_value() && store_ != nullptr) {
    snapshot_ = *std::move(stored.summary);
    archived_ = true;
    return;
  }
  snapshot_.set_job_id(id_);
  *snapshot_.mutable_request() = request_;
  for (v1::JobEvent& event : stored.events) {
    ApplyToSnapshot(event);
    events_.push_back(std::move(event));
  }
  if (snapshot_.state() == v1::JOB_STATE_RUNNING && !runs_elsewhere_) {
    snapshot_.set_state(v1::JOB_STATE_INTERRUPTED);
  }
}

Job::Job(std::string id, v1::TrainRequest request, int queue_position, JobEventStore* store)
    : id_(std::move(id)), request_(std::move(request)), store_(store) {
  {
    MutexLock lock(&mu_);
    snapshot_.set_job_id(id_);
    *snapshot_.mutable_request() = request_;
  }
  v1::JobEvent queued;
  queued.mutable_queued()->set_position(queue_position);
  Append(std::move(queued));
}

int64_t Job::Append(v1::JobEvent event) {
  MutexLock lock(&mu_);
  return AppendLocked(std::move(event));
}

int64_t Job::AppendLocked(v1::JobEvent event) {
  if (IsTerminal(snapshot_.state()) || abandoned()) return 0;
  event.set_job_id(id_);
  event.set_sequence(static_cast<int64_t>(events_.size()) + 1);
  *event.mutable_time() = Now();
  // Kept to undo the event should the store refuse it as another replica's (below).
  const v1::Job before = store_ != nullptr ? snapshot_ : v1::Job();
  ApplyToSnapshot(event);
  const bool final_event = IsTerminal(snapshot_.state());
  if (store_ != nullptr) {
    // Durable before anyone sees it, so a watcher never sees an event a restart would lose; the
    // final one with the job's summary, in one transaction.
    absl::Status stored =
        final_event ? store_->AppendFinalEvent(event, snapshot_) : store_->AppendEvent(event);
    if (IsJobTakenOver(stored)) {
      // Another replica runs the job now: this one stops it and records nothing more.
      spdlog::warn("job {}: {}", id_, std::string(stored.message()));
      snapshot_ = before;
      Abandon();
      return 0;
    }
    if (!stored.ok()) {
      // Not recorded here either: a watcher must not see what a restart would not have.
      snapshot_ = before;
      PauseLocked(stored);
      return 0;
    }
  }
  return RecordLocked(std::move(event));
}

void Job::Pause(const absl::Status& reason) {
  MutexLock lock(&mu_);
  PauseLocked(reason);
}

void Job::PauseLocked(const absl::Status& reason) {
  if (pause_reason_.ok()) {
    spdlog::error(
        "job {} paused (it goes on from its last checkpoint once this can be written): "
        "{}",
        id_, std::string(reason.message()));
    pause_reason_ = reason;
  }
  Interrupt();
}

absl::Status Job::pause_reason() const {
  MutexLock lock(&mu_);
  return pause_reason_;
}

void Job::EndPausedRun() {
  MutexLock lock(&mu_);
  if (pause_reason_.ok() || IsTerminal(snapshot_.state())) return;
  snapshot_.set_state(v1::JOB_STATE_INTERRUPTED);
  snapshot_.set_error(absl::StrCat("paused: ", pause_reason_.message(),
                                   "; it goes on from its last checkpoint once this can be "
                                   "written"));
}

void Job::ClearPause() {
  MutexLock lock(&mu_);
  if (pause_reason_.ok()) return;
  pause_reason_ = absl::OkStatus();
  if (!IsTerminal(snapshot_.state())) snapshot_.clear_error();
  interrupting_.store(false);
  cancel_requested_.store(!cancel_reason_.empty());
}

int64_t Job::RecordLocked(v1::JobEvent event) {
  const bool final_event = IsTerminal(snapshot_.state());
  events_.push_back(std::move(event));
  const v1::JobEvent& appended = events_.back();
  for (JobEventSink* sink : sinks_) sink->OnEvent(appended);
  const int64_t sequence = appended.sequence();
  if (final_event && store_ != nullptr) {
    // From now on the store serves the events (EventsFrom); memory keeps the snapshot.
    std::vector<v1::JobEvent>().swap(events_);
    archived_ = true;
  }
  return sequence;
}

void Job::AppendFollowed(const std::vector<v1::JobEvent>& events) {
  MutexLock lock(&mu_);
  for (const v1::JobEvent& event : events) {
    if (IsTerminal(snapshot_.state())) return;
    const int64_t next = static_cast<int64_t>(events_.size()) + 1;
    if (event.sequence() < next) continue;
    if (event.sequence() > next || event.job_id() != id_) return;
    ApplyToSnapshot(event);
    RecordLocked(event);
  }
}

void Job::TakeOver() {
  MutexLock lock(&mu_);
  runs_elsewhere_ = false;
  if (snapshot_.state() == v1::JOB_STATE_RUNNING) snapshot_.set_state(v1::JOB_STATE_INTERRUPTED);
}

void Job::Abandon() {
  abandoned_.store(true);
  Interrupt();
}

int64_t Job::last_sequence() const {
  MutexLock lock(&mu_);
  return snapshot_.last_sequence();
}

std::vector<v1::JobEvent> Job::EventsFrom(int64_t from_sequence) const {
  const int64_t first = std::max<int64_t>(from_sequence, 1);
  if (!archived_) {
    if (first > static_cast<int64_t>(events_.size())) return {};
    return std::vector<v1::JobEvent>(events_.begin() + (first - 1), events_.end());
  }
  absl::StatusOr<std::vector<v1::JobEvent>> stored = store_->LoadEvents(id_, first);
  if (!stored.ok()) {
    spdlog::error("job {}: cannot read its events: {}", id_, stored.status().ToString());
    return {};
  }
  return *std::move(stored);
}

bool Job::archived() const {
  MutexLock lock(&mu_);
  return archived_;
}

void Job::Archive() {
  MutexLock lock(&mu_);
  if (archived_ || store_ == nullptr || !IsTerminal(snapshot_.state())) return;
  if (absl::Status stored = store_->PutJobSummary(id_, snapshot_); !stored.ok()) {
    spdlog::warn("job {}: {}", id_, stored.ToString());
    return;
  }
  std::vector<v1::JobEvent>().swap(events_);
  archived_ = true;
}

void Job::ApplyToSnapshot(const v1::JobEvent& event) {
  snapshot_.set_last_sequence(event.sequence());
  switch (event.event_case()) {
    case v1::JobEvent::kQueued:
      snapshot_.set_state(v1::JOB_STATE_QUEUED);
      *snapshot_.mutable_created_time() = event.time();
      break;
    case v1::JobEvent::kStarted:
      snapshot_.set_state(v1::JOB_STATE_RUNNING);
      *snapshot_.mutable_start_time() = event.time();
      break;
    case v1::JobEvent::kResumed:
      snapshot_.set_state(v1::JOB_STATE_RUNNING);
      break;
    case v1::JobEvent::kEpochEnd:
      *snapshot_.mutable_latest_epoch() = event.epoch_end();
      break;
    case v1::JobEvent::kFinished: {
      const v1::JobEvent::Finished& finished = event.finished();
      snapshot_.set_state(finished.state());
      snapshot_.set_model_id(finished.model_id());
      if (finished.has_test_metrics()) *snapshot_.mutable_test_metrics() = finished.test_metrics();
      snapshot_.set_error(finished.error());
      *snapshot_.mutable_end_time() = event.time();
      break;
    }
    case v1::JobEvent::kProgress:
    case v1::JobEvent::kCheckpointSaved:
    case v1::JobEvent::kTrialStarted:
    case v1::JobEvent::kTrialFinished:
    case v1::JobEvent::EVENT_NOT_SET:
      break;
  }
}

bool Job::BeginRunning(const v1::JobEvent::Started& started) {
  MutexLock lock(&mu_);
  if (snapshot_.state() != v1::JOB_STATE_QUEUED) return false;
  v1::JobEvent event;
  *event.mutable_started() = started;
  return AppendLocked(std::move(event)) != 0;
}

bool Job::BeginResuming(const v1::JobEvent::Resumed& resumed) {
  MutexLock lock(&mu_);
  if (snapshot_.state() != v1::JOB_STATE_INTERRUPTED) return false;
  // A run stores its checkpoint, then announces it; one killed between the two left a
  // checkpoint the log does not show. The announcement comes now, so that `resumed` always
  // follows the checkpoint_saved it resumes from.
  const v1::JobEvent* last_saved = nullptr;
  for (auto it = events_.rbegin(); it != events_.rend() && last_saved == nullptr; ++it) {
    if (it->has_checkpoint_saved()) last_saved = &*it;
  }
  const bool has_position = resumed.epoch() > 0 || resumed.batch() > 0;
  if (has_position &&
      (last_saved == nullptr || last_saved->checkpoint_saved().epoch() != resumed.epoch() ||
       last_saved->checkpoint_saved().batch() != resumed.batch())) {
    v1::JobEvent saved;
    if (!events_.empty()) saved.set_trial(events_.back().trial());
    saved.mutable_checkpoint_saved()->set_epoch(resumed.epoch());
    saved.mutable_checkpoint_saved()->set_batch(resumed.batch());
    if (AppendLocked(std::move(saved)) == 0) return false;
  }
  v1::JobEvent event;
  *event.mutable_resumed() = resumed;
  return AppendLocked(std::move(event)) != 0;
}

void Job::Interrupt() {
  interrupting_.store(true);
  cancel_requested_.store(true);
}

void Job::DetachWatchers(const std::string& reason) {
  MutexLock lock(&mu_);
  for (JobEventSink* sink : sinks_) sink->OnDetached(reason);
  sinks_.clear();
}

bool Job::Cancel(const std::string& reason) {
  MutexLock lock(&mu_);
  if (IsTerminal(snapshot_.state())) return false;
  // The first reason stands (an interrupt or pause asks for a stop without one).
  if (cancel_reason_.empty()) cancel_reason_ = reason;
  cancel_requested_.store(true);
  if (snapshot_.state() == v1::JOB_STATE_RUNNING) return false;
  // Still queued (or waiting to resume): end it now; the worker skips it since BeginRunning sees a
  // terminal state.
  v1::JobEvent finished;
  finished.mutable_finished()->set_state(v1::JOB_STATE_CANCELLED);
  finished.mutable_finished()->set_error(cancel_reason_);
  return AppendLocked(std::move(finished)) != 0;
}

std::string Job::cancel_reason() const {
  MutexLock lock(&mu_);
  return cancel_reason_;
}

void Job::Subscribe(JobEventSink* sink, int64_t from_sequence) {
  MutexLock lock(&mu_);
  if (archived_) {
    // Finished: nothing more will be appended, so the replay is the whole stream.
    for (const v1::JobEvent& event : EventsFrom(from_sequence)) sink->OnEvent(event);
  } else {
    const size_t first = static_cast<size_t>(std::max<int64_t>(from_sequence, 1) - 1);
    for (size_t i = first; i < events_.size(); ++i) sink->OnEvent(events_[i]);
  }
  sinks_.push_back(sink);
}

void Job::Unsubscribe(JobEventSink* sink) {
  MutexLock lock(&mu_);
  sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), sink), sinks_.end());
}

v1::JobState Job::state() const {
  MutexLock lock(&mu_);
  return snapshot_.state();
}

bool Job::finished() const { return IsTerminal(state()); }

Job::Listing Job::listing() const {
  MutexLock lock(&mu_);
  return Listing{snapshot_.state(), google::protobuf::util::TimeUtil::TimestampToNanoseconds(
                                        snapshot_.created_time())};
}

bool Job::FinishedBefore(absl::Time cutoff) const {
  MutexLock lock(&mu_);
  return IsTerminal(snapshot_.state()) && google::protobuf::util::TimeUtil::TimestampToNanoseconds(
                                              snapshot_.end_time()) < absl::ToUnixNanos(cutoff);
}

v1::Job Job::Snapshot() const {
  MutexLock lock(&mu_);
  return snapshot_;
}

std::vector<v1::JobEvent> Job::Events() const {
  MutexLock lock(&mu_);
  return EventsFrom(1);
}

}  // namespace classifier
