// The one server-streaming writer of this server: one write in flight, a queue behind it, one
// Finish. WatchJob / Train (JobEventStream), ExportWeights (ChunkStream) and the health Watch
// (HealthService::Watcher) are all made of it.
//
// The pattern is gRPC proposal L67's and examples/cpp/route_guide/route_guide_callback_server.cc's:
// a reactor may have only one StartWrite outstanding, so messages that arrive meanwhile wait in a
// queue and the next write starts only from OnWriteDone; Finish is called exactly once, and
// nothing is written after it.
#ifndef CLASSIFIER_SERVER_QUEUED_WRITER_H_
#define CLASSIFIER_SERVER_QUEUED_WRITER_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "server/mutex.h"

namespace classifier {

// Ownership: made with `new` by a handler and handed to gRPC, which calls OnDone once the call
// is over; OnDone deletes it. A subclass releases what it holds (a job subscription, a health
// registration, a stream slot) in its destructor, which therefore runs on a gRPC thread after
// the last callback.
//
// Threading: Send and FinishWhenDrained are thread-safe and never block on the network (they
// take the writer's own lock, briefly), so they may be called from a job's thread with the job's
// lock held. OnWriteDone and OnCancel run on gRPC's callback threads and never block either.
//
// Lifetime: once Send or FinishWhenDrained has finished the call from a thread of ours (not from
// a gRPC callback, which gRPC waits for), gRPC may run OnDone on another thread before that call
// has returned. So a subclass whose methods are called by our threads waits for them in its
// destructor: JobEventStream unsubscribes under the job's lock, which its callers hold, and the
// health Watcher unregisters under the service's lock.
template <typename Message>
class QueuedWriter : public ::grpc::ServerWriteReactor<Message> {
 public:
  // What a message waiting behind the write in flight is worth.
  enum class Backlog {
    // Every message is written, in the order sent (a job's events).
    kEvery,
    // Only the newest waiting message is kept: for a stream of states (a health status), where a
    // state that was replaced before it could be written is worth nothing.
    kLatest,
  };

  // `on_cancel`: the status the call ends with when the client cancels while no write is in
  // flight. `on_write_failure`: when a write fails, or the client cancelled during it.
  QueuedWriter(Backlog backlog, ::grpc::Status on_cancel, ::grpc::Status on_write_failure)
      : backlog_(backlog),
        on_cancel_(std::move(on_cancel)),
        on_write_failure_(std::move(on_write_failure)) {}
  QueuedWriter(const QueuedWriter&) = delete;
  QueuedWriter& operator=(const QueuedWriter&) = delete;

  // Queues `message`, and writes it at once when no write is in flight. Dropped once the call
  // has finished or FinishWhenDrained was called (no more messages were expected).
  void Send(Message message) {
    MutexLock lock(&mu_);
    if (finished_ || draining_) return;
    if (backlog_ == Backlog::kLatest) queue_.clear();
    queue_.push_back(std::move(message));
    MaybeWrite();
  }

  // No more messages will be sent: ends the call with `status` once every queued message has
  // been written (at once when none is queued or in flight). A later call replaces the status
  // while the call has not finished: a job stream that learns of a shutdown after the job's last
  // event was queued tells the client to re-attach rather than that all went well.
  void FinishWhenDrained(::grpc::Status status) {
    MutexLock lock(&mu_);
    draining_ = true;
    drained_status_ = std::move(status);
    if (!writing_ && queue_.empty()) FinishOnce(drained_status_);
  }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok || cancelled_) {
      FinishOnce(on_write_failure_);
      return;
    }
    if (draining_ && queue_.empty()) {
      FinishOnce(drained_status_);
      return;
    }
    MaybeWrite();
  }

  // The client hung up: only this call ends (the job, the server go on). A write in flight ends
  // first, with ok = false, and OnWriteDone finishes the call.
  void OnCancel() override {
    MutexLock lock(&mu_);
    cancelled_ = true;
    if (!writing_) FinishOnce(on_cancel_);
  }

  // gRPC's last call to this reactor: a subclass's destructor runs here.
  void OnDone() final { delete this; }

 protected:
  // Called once, with the status the call is about to finish with, under the writer's lock (on
  // whichever thread finishes it): must be quick and must not call back into the writer. For the
  // call's log line.
  virtual void OnFinish(const ::grpc::Status& /*status*/) {}

 private:
  void MaybeWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    this->StartWrite(&current_);
  }

  void FinishOnce(const ::grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    queue_.clear();
    OnFinish(status);
    this->Finish(status);
  }

  // Constant after construction.
  const Backlog backlog_;
  const ::grpc::Status on_cancel_;
  const ::grpc::Status on_write_failure_;

  Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written: gRPC reads it until OnWriteDone.
  Message current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // FinishWhenDrained was called; the call ends with `drained_status_` once the queue is empty.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  ::grpc::Status drained_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_QUEUED_WRITER_H_
