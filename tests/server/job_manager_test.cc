// The job queue and worker with a scripted executor: order, events,
// cancellation, limits.
#include "server/job_manager.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using std::chrono_literals::operator""ms;

// Runs a job as `epochs` epoch_end events; blocks while `hold` is set, so tests
// can observe a running job; stops when the job is cancelled.
class ScriptedExecutor : public JobExecutor {
 public:
  v1::JobEvent::Started Describe(const v1::TrainRequest& request) const override {
    v1::JobEvent::Started started;
    started.set_device("test-device");
    started.set_epochs(request.epochs());
    return started;
  }

  v1::JobEvent::Resumed ResumePoint(const Job& /*job*/) override { return {}; }
  void Discard(const Job& /*job*/) override {}
  void Forget(const Job& job) override {
    std::lock_guard<std::mutex> lock(mu_);
    forgotten_.push_back(job.id());
  }

  JobOutcome Execute(Job& job) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      order_.push_back(job.id());
    }
    for (int epoch = 1; epoch <= job.request().epochs(); ++epoch) {
      while (hold_.load() && !job.cancel_requested()) std::this_thread::sleep_for(1ms);
      if (job.cancel_requested())
        return JobOutcome{v1::JOB_STATE_CANCELLED, "", {}, false, "stop", false, 0, 0, "", 0};
      v1::JobEvent event;
      event.mutable_epoch_end()->set_epoch(epoch);
      job.Append(event);
    }
    return JobOutcome{
        v1::JOB_STATE_SUCCEEDED, "model-" + job.id(), {}, false, "", false, 0, 0, "", 0};
  }

  std::vector<std::string> order() {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }
  std::vector<std::string> forgotten() {
    std::lock_guard<std::mutex> lock(mu_);
    return forgotten_;
  }
  std::atomic<bool> hold_{false};

 private:
  std::mutex mu_;
  std::vector<std::string> order_;
  std::vector<std::string> forgotten_;
};

// Collects events pushed by a job.
class CollectingSink : public JobEventSink {
 public:
  void OnEvent(const v1::JobEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
    changed_.notify_all();
  }
  void OnDetached(const std::string& /*reason*/) override {}
  std::vector<v1::JobEvent> WaitForFinished() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::seconds(30),
                      [this] { return !events_.empty() && events_.back().has_finished(); });
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<v1::JobEvent> events_;
};

v1::TrainRequest Request(int epochs) {
  v1::TrainRequest request;
  request.set_dataset("mnist");
  request.set_epochs(epochs);
  return request;
}

void WaitForState(const Job& job, v1::JobState state) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (job.state() != state && absl::Now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(job.state(), state);
}

TEST(JobManagerTest, RunsJobsInOrderWithGapFreeEvents) {
  ScriptedExecutor executor;
  JobManager manager(&executor, /*store=*/nullptr, /*max_queued_jobs=*/10);
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::unique_ptr<CollectingSink>> sinks;
  executor.hold_ = true;
  for (int i = 0; i < 3; ++i) {
    auto job = manager.Submit(Request(2 + i));
    ASSERT_TRUE(job.ok()) << job.status();
    sinks.push_back(std::make_unique<CollectingSink>());
    (*job)->Subscribe(sinks.back().get(), 1);
    jobs.push_back(*job);
  }
  executor.hold_ = false;
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::vector<v1::JobEvent> events = sinks[i]->WaitForFinished();
    jobs[i]->Unsubscribe(sinks[i].get());
    // queued, started, one epoch_end per epoch, finished.
    ASSERT_EQ(events.size(), 2 + (2 + i) + 1);
    for (size_t k = 0; k < events.size(); ++k) {
      EXPECT_EQ(events[k].sequence(), static_cast<int64_t>(k + 1));
      EXPECT_EQ(events[k].job_id(), jobs[i]->id());
    }
    EXPECT_TRUE(events.front().has_queued());
    EXPECT_EQ(events.front().queued().position(), static_cast<int>(i));
    EXPECT_TRUE(events[1].has_started());
    EXPECT_EQ(events[1].started().device(), "test-device");
    EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED);
    EXPECT_EQ(events.back().finished().model_id(), "model-" + jobs[i]->id());
    EXPECT_EQ(jobs[i]->Snapshot().state(), v1::JOB_STATE_SUCCEEDED);
  }
  EXPECT_EQ(executor.order(),
            (std::vector<std::string>{jobs[0]->id(), jobs[1]->id(), jobs[2]->id()}));
}

TEST(JobManagerTest, SubscribeReplaysFromAnySequence) {
  ScriptedExecutor executor;
  JobManager manager(&executor, /*store=*/nullptr, 10);
  auto job = manager.Submit(Request(4));
  ASSERT_TRUE(job.ok());
  CollectingSink all;
  (*job)->Subscribe(&all, 1);
  const std::vector<v1::JobEvent> events = all.WaitForFinished();
  (*job)->Unsubscribe(&all);
  for (int64_t from = 1; from <= static_cast<int64_t>(events.size()) + 1; ++from) {
    CollectingSink replay;
    (*job)->Subscribe(&replay, from);
    (*job)->Unsubscribe(&replay);
    std::vector<v1::JobEvent> got = from <= static_cast<int64_t>(events.size())
                                        ? replay.WaitForFinished()
                                        : std::vector<v1::JobEvent>{};
    ASSERT_EQ(got.size(), events.size() - (from - 1)) << "from " << from;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].SerializeAsString(), events[from - 1 + k].SerializeAsString());
    }
  }
}

TEST(JobManagerTest, CancelQueuedJobEndsAtOnceAndNeverRuns) {
  ScriptedExecutor executor;
  executor.hold_ = true;
  JobManager manager(&executor, /*store=*/nullptr, 10);
  auto first = manager.Submit(Request(3));
  auto second = manager.Submit(Request(3));
  ASSERT_TRUE(first.ok() && second.ok());
  WaitForState(**first, v1::JOB_STATE_RUNNING);
  auto cancelled = manager.Cancel((*second)->id());
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  executor.hold_ = false;
  WaitForState(**first, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(executor.order(), std::vector<std::string>{(*first)->id()});
  EXPECT_EQ((*second)->Snapshot().last_sequence(),
            2);  // queued, finished: never started.
}

TEST(JobManagerTest, CancelRunningJobStopsIt) {
  ScriptedExecutor executor;
  executor.hold_ = true;
  JobManager manager(&executor, /*store=*/nullptr, 10);
  auto job = manager.Submit(Request(5));
  ASSERT_TRUE(job.ok());
  WaitForState(**job, v1::JOB_STATE_RUNNING);
  auto snapshot = manager.Cancel((*job)->id());
  ASSERT_TRUE(snapshot.ok());
  WaitForState(**job, v1::JOB_STATE_CANCELLED);
}

TEST(JobManagerTest, TellsWhetherAJobIsTraining) {
  // The server turns the batcher's idle polling off through this while a job trains.
  ScriptedExecutor executor;
  executor.hold_ = true;
  std::mutex mu;
  std::vector<bool> heard;
  JobManager manager(&executor, /*store=*/nullptr, 10, {}, /*metrics=*/nullptr, [&](bool training) {
    std::lock_guard<std::mutex> lock(mu);
    heard.push_back(training);
  });
  auto job = manager.Submit(Request(2));
  ASSERT_TRUE(job.ok());
  WaitForState(**job, v1::JOB_STATE_RUNNING);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(heard.empty());
    EXPECT_TRUE(heard.back()) << "a running job was not reported";
  }
  executor.hold_ = false;
  WaitForState(**job, v1::JOB_STATE_SUCCEEDED);
  // The worker reports the end just after the job's final state.
  for (int i = 0; i < 5000; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!heard.back()) break;
    }
    std::this_thread::sleep_for(1ms);
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_FALSE(heard.back()) << "the end of the job was not reported";
}

TEST(JobManagerTest, FullQueueIsResourceExhausted) {
  ScriptedExecutor executor;
  executor.hold_ = true;
  JobManager manager(&executor, /*store=*/nullptr, /*max_queued_jobs=*/2);
  auto running = manager.Submit(Request(1));
  ASSERT_TRUE(running.ok());
  WaitForState(**running, v1::JOB_STATE_RUNNING);
  ASSERT_TRUE(manager.Submit(Request(1)).ok());
  ASSERT_TRUE(manager.Submit(Request(1)).ok());
  auto refused = manager.Submit(Request(1));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("max_queued_jobs"), absl::string_view::npos);
  executor.hold_ = false;
}

TEST(JobManagerTest, UnknownJobIsNotFound) {
  ScriptedExecutor executor;
  JobManager manager(&executor, /*store=*/nullptr, 2);
  EXPECT_EQ(manager.Get("job-nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.Cancel("job-nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(JobManagerTest, ShutdownEndsEveryJobAndRefusesNewOnes) {
  ScriptedExecutor executor;
  executor.hold_ = true;
  JobManager manager(&executor, /*store=*/nullptr, 10);
  auto running = manager.Submit(Request(3));
  auto queued = manager.Submit(Request(3));
  ASSERT_TRUE(running.ok() && queued.ok());
  WaitForState(**running, v1::JOB_STATE_RUNNING);
  manager.Shutdown("test shutdown");
  EXPECT_EQ((*running)->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ((*queued)->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ((*queued)->Snapshot().error(), "test shutdown");
  EXPECT_EQ(manager.Submit(Request(1)).status().code(), absl::StatusCode::kUnavailable);
}

TEST(JobManagerTest, RetentionDeletesFinishedJobsOnlyFromMemoryTheStoreAndTheDisk) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path() + "/state.db");
  ASSERT_TRUE(store.ok()) << store.status();
  ScriptedExecutor executor;
  JobManager manager(&executor, store->get(), /*max_queued_jobs=*/10);
  absl::StatusOr<std::shared_ptr<Job>> done = manager.Submit(Request(1));
  ASSERT_TRUE(done.ok());
  WaitForState(**done, v1::JOB_STATE_SUCCEEDED);
  executor.hold_ = true;
  absl::StatusOr<std::shared_ptr<Job>> running = manager.Submit(Request(1));
  absl::StatusOr<std::shared_ptr<Job>> queued = manager.Submit(Request(1));
  ASSERT_TRUE(running.ok() && queued.ok());
  WaitForState(**running, v1::JOB_STATE_RUNNING);

  // A cutoff before the job ended keeps it; one after deletes it, and only it.
  EXPECT_EQ(*manager.DeleteFinishedBefore(absl::Now() - absl::Hours(1)), 0);
  EXPECT_EQ(*manager.DeleteFinishedBefore(absl::Now() + absl::Hours(1)), 1);
  EXPECT_EQ(manager.Get((*done)->id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(manager.Get((*running)->id()).ok());
  EXPECT_TRUE(manager.Get((*queued)->id()).ok());
  EXPECT_EQ(manager.List().size(), 2u);
  EXPECT_EQ(executor.forgotten(), std::vector<std::string>{(*done)->id()});
  absl::StatusOr<std::vector<StoredJob>> stored = (*store)->LoadJobs();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 2u);
  EXPECT_EQ((*stored)[0].job_id, (*running)->id());
  executor.hold_ = false;
  manager.Shutdown("test over");
}

// A job's event store that refuses every write while `failing` is set, as a full disk does.
class FlakyEventStore : public JobEventStore {
 public:
  absl::Status AppendEvent(const v1::JobEvent& event) override {
    if (failing) return absl::ResourceExhaustedError("cannot write /state/classifier.db: full");
    events.push_back(event);
    return absl::OkStatus();
  }
  absl::Status AppendFinalEvent(const v1::JobEvent& event, const v1::Job& /*summary*/) override {
    return AppendEvent(event);
  }
  absl::Status PutJobSummary(const std::string& /*job_id*/, const v1::Job& /*summary*/) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<v1::JobEvent>> LoadEvents(const std::string& /*job_id*/,
                                                       int64_t from_sequence) override {
    return std::vector<v1::JobEvent>(events.begin() + (from_sequence - 1), events.end());
  }
  bool failing = false;
  std::vector<v1::JobEvent> events;
};

std::vector<int64_t> Sequences(const std::vector<v1::JobEvent>& events) {
  std::vector<int64_t> sequences;
  for (const v1::JobEvent& event : events) sequences.push_back(event.sequence());
  return sequences;
}

TEST(JobTest, AnEventTheStoreRefusesIsNotRecordedAndPausesTheJob) {
  FlakyEventStore store;
  Job job("job-1", Request(3), /*queue_position=*/0, &store);
  CollectingSink sink;
  job.Subscribe(&sink, 1);
  v1::JobEvent::Started started;
  ASSERT_TRUE(job.BeginRunning(started));
  v1::JobEvent epoch;
  epoch.mutable_epoch_end()->set_epoch(1);
  ASSERT_EQ(job.Append(epoch), 3);

  store.failing = true;
  epoch.mutable_epoch_end()->set_epoch(2);
  EXPECT_EQ(job.Append(epoch), 0) << "refused by the store: not recorded";
  EXPECT_EQ(job.last_sequence(), 3);
  EXPECT_EQ(job.Events().size(), 3u);
  EXPECT_EQ(job.Snapshot().latest_epoch().epoch(), 1) << "the snapshot is undone too";
  EXPECT_EQ(job.pause_reason().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(job.interrupting() && job.cancel_requested()) << "it stops at its next batch";
  EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING) << "until its executor has stopped";
  job.EndPausedRun();
  EXPECT_EQ(job.state(), v1::JOB_STATE_INTERRUPTED);
  EXPECT_THAT(job.Snapshot().error(), ::testing::HasSubstr("paused: cannot write /state/"));

  // Still failing: the retry's resumed event is refused, and the job stays paused.
  job.ClearPause();
  EXPECT_FALSE(job.interrupting() || job.cancel_requested());
  EXPECT_FALSE(job.BeginResuming(v1::JobEvent::Resumed()));
  EXPECT_FALSE(job.pause_reason().ok());
  job.EndPausedRun();

  // The disk has room again: the job resumes and ends, with the store and memory alike.
  store.failing = false;
  job.ClearPause();
  EXPECT_TRUE(job.pause_reason().ok());
  EXPECT_TRUE(job.Snapshot().error().empty());
  ASSERT_TRUE(job.BeginResuming(v1::JobEvent::Resumed()));
  EXPECT_EQ(job.Append(epoch), 5);
  v1::JobEvent finished;
  finished.mutable_finished()->set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.Append(finished), 6);
  job.Unsubscribe(&sink);
  const std::vector<v1::JobEvent> seen = sink.WaitForFinished();
  EXPECT_EQ(Sequences(seen), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(Sequences(store.events), Sequences(seen));
  EXPECT_TRUE(seen[3].has_resumed());
  EXPECT_EQ(seen[4].epoch_end().epoch(), 2);
}

// A run killed after storing a checkpoint and before announcing it: the resume announces it
// first, so `resumed` always follows the checkpoint_saved it resumes from; a checkpoint the log
// already shows is not announced twice.
TEST(JobTest, AResumeAnnouncesACheckpointTheKilledRunDidNot) {
  FlakyEventStore store;
  Job job("job-1", Request(3), /*queue_position=*/0, &store);
  ASSERT_TRUE(job.BeginRunning(v1::JobEvent::Started()));
  v1::JobEvent saved;
  saved.mutable_checkpoint_saved()->set_epoch(1);
  ASSERT_EQ(job.Append(saved), 3);
  auto interrupt = [&job] {
    job.Pause(absl::UnavailableError("the run stopped"));
    job.EndPausedRun();
    job.ClearPause();
  };
  interrupt();
  v1::JobEvent::Resumed at_epoch_2;
  at_epoch_2.set_epoch(2);
  ASSERT_TRUE(job.BeginResuming(at_epoch_2));
  std::vector<v1::JobEvent> events = job.Events();
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3].checkpoint_saved().epoch(), 2) << "announced now";
  EXPECT_EQ(events[3].checkpoint_saved().batch(), 0);
  EXPECT_EQ(events[4].resumed().epoch(), 2);

  interrupt();
  ASSERT_TRUE(job.BeginResuming(at_epoch_2));
  events = job.Events();
  ASSERT_EQ(events.size(), 6u) << "the log shows that checkpoint already";
  EXPECT_TRUE(events[5].has_resumed());

  interrupt();
  ASSERT_TRUE(job.BeginResuming(v1::JobEvent::Resumed()));
  EXPECT_EQ(job.Events().size(), 7u) << "no checkpoint: nothing to announce";
}

TEST(JobTest, ACancelTheStoreRefusesIsKeptForTheRetry) {
  FlakyEventStore store;
  Job job("job-1", Request(3), /*queue_position=*/0, &store);
  store.failing = true;
  EXPECT_FALSE(job.Cancel("cancelled by request")) << "not ended: its final event was refused";
  EXPECT_FALSE(job.finished());
  EXPECT_EQ(job.cancel_reason(), "cancelled by request");
  job.ClearPause();
  EXPECT_TRUE(job.cancel_requested()) << "a cancel outlives the pause";
  store.failing = false;
  EXPECT_TRUE(job.Cancel("asked again"));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(job.Snapshot().error(), "cancelled by request") << "the first reason stands";
  EXPECT_TRUE(store.events.back().has_finished());
}

// Pauses each job the first `pauses` times it runs (as a checkpoint the disk refuses does),
// after one epoch, and runs it to the end otherwise.
class PausingExecutor : public ScriptedExecutor {
 public:
  explicit PausingExecutor(int pauses) : pauses_left_(pauses) {}
  v1::JobEvent::Resumed ResumePoint(const Job& /*job*/) override {
    v1::JobEvent::Resumed resumed;
    resumed.set_epoch(1);
    return resumed;
  }
  JobOutcome Execute(Job& job) override {
    ++runs;
    if (pauses_left_ > 0) {
      --pauses_left_;
      v1::JobEvent event;
      event.mutable_epoch_end()->set_epoch(1);
      job.Append(event);
      job.Pause(absl::ResourceExhaustedError("cannot save its checkpoint: /state/x: full"));
      return JobOutcome{v1::JOB_STATE_INTERRUPTED, "", {}, false, "", false, 0, 0, "", 0};
    }
    return ScriptedExecutor::Execute(job);
  }
  std::atomic<int> runs{0};

 private:
  std::atomic<int> pauses_left_;
};

TEST(JobManagerTest, APausedJobIsTriedAgainAfterTheRetryIntervalAndEndsWithEveryEventStored) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path() + "/state.db");
  ASSERT_TRUE(store.ok()) << store.status();
  PausingExecutor executor(/*pauses=*/2);
  JobManager manager(&executor, store->get(), /*max_queued_jobs=*/10, {}, nullptr, nullptr, {},
                     /*paused_job_retry=*/absl::Milliseconds(100));
  absl::StatusOr<std::shared_ptr<Job>> job = manager.Submit(Request(2));
  ASSERT_TRUE(job.ok()) << job.status();
  CollectingSink sink;
  (*job)->Subscribe(&sink, 1);
  const std::vector<v1::JobEvent> events = sink.WaitForFinished();
  (*job)->Unsubscribe(&sink);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(executor.runs.load(), 3);
  int resumed = 0;
  for (const v1::JobEvent& event : events) resumed += event.has_resumed() ? 1 : 0;
  EXPECT_EQ(resumed, 2);
  absl::StatusOr<std::vector<v1::JobEvent>> stored = (*store)->LoadEvents((*job)->id(), 1);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(Sequences(*stored), Sequences(events));
  EXPECT_TRUE((*job)->Snapshot().error().empty());
}

TEST(JobManagerTest, APausedJobShowsWhyAndCanBeCancelledWhileItWaits) {
  testing::TempDir dir;
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(dir.path() + "/state.db");
  ASSERT_TRUE(store.ok()) << store.status();
  PausingExecutor executor(/*pauses=*/1);
  JobManager manager(&executor, store->get(), /*max_queued_jobs=*/10, {}, nullptr, nullptr, {},
                     /*paused_job_retry=*/absl::Hours(1));
  absl::StatusOr<std::shared_ptr<Job>> paused = manager.Submit(Request(2));
  ASSERT_TRUE(paused.ok()) << paused.status();
  WaitForState(**paused, v1::JOB_STATE_INTERRUPTED);
  EXPECT_THAT((*paused)->Snapshot().error(),
              ::testing::HasSubstr("paused: cannot save its checkpoint: /state/x: full"));
  // Nothing else starts while the job waits: the disk it needs is the others' too.
  absl::StatusOr<std::shared_ptr<Job>> queued = manager.Submit(Request(1));
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_TRUE(manager.Cancel((*paused)->id()).ok());
  EXPECT_EQ((*paused)->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ((*queued)->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(executor.runs.load(), 1) << "the paused job never ran again";
  manager.Shutdown("test over");
}

}  // namespace
}  // namespace classifier
