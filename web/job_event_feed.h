// One job's events as a server-sent event stream (text/event-stream), read from the server's
// own WatchJob over the in-process channel, so the page gets exactly what a gRPC watcher gets:
// the job's log from a sequence number on (a page opened mid-job sees the earlier epochs too),
// then live events, then the end.
//
// Each event is `id: <sequence>`, `event: job_event`, `data: <JobEvent as JSON>`; the id lets
// a reconnecting EventSource (Last-Event-ID) or the page resume after the last event it saw.
// The stream ends with `event: end` (the job is over) or `event: error` (data: the error
// JSON of http_status.h). A comment line every keepalive interval without an event keeps
// proxies from closing an idle connection and finds a reader that went away.
#ifndef CLASSIFIER_WEB_JOB_EVENT_FEED_H_
#define CLASSIFIER_WEB_JOB_EVENT_FEED_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "classifier/v1/classifier.grpc.pb.h"

namespace classifier {

class JobEventFeed {
 public:
  // Starts WatchJob(request) on `stub` (which must outlive this), with `authorization` (the
  // HTTP header's value, or empty) as the call's metadata.
  JobEventFeed(v1::Classifier::Stub* stub, const v1::WatchJobRequest& request,
               const std::string& authorization, absl::Duration keepalive);
  // Cancels the call if it is still open and waits until gRPC has let go of it.
  ~JobEventFeed();
  JobEventFeed(const JobEventFeed&) = delete;
  JobEventFeed& operator=(const JobEventFeed&) = delete;

  // Waits up to the keepalive interval and sets `chunk` to what comes next: an event, a
  // keepalive comment, or the end. False once the end has been given (call no more). Only one
  // thread may call it.
  bool Next(std::string* chunk);

  // Ends the call from any thread because the web server stops; Next then gives the end: an
  // error event, UNAVAILABLE, saying to reconnect (a client retries that; the job goes on).
  void Cancel();

 private:
  enum class Step { kStarting, kReading, kFinishing, kDone };

  // Waits for the operation in flight until `deadline`; false on timeout.
  bool Await(absl::Time deadline, bool* ok);

  ::grpc::ClientContext context_;
  ::grpc::CompletionQueue queue_;
  std::unique_ptr<::grpc::ClientAsyncReader<v1::JobEvent>> reader_;
  const absl::Duration keepalive_;
  // Touched only by the thread calling Next (and the destructor).
  Step step_ = Step::kStarting;
  v1::JobEvent event_;
  ::grpc::Status status_;
  int64_t last_sequence_ = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace classifier

#endif  // CLASSIFIER_WEB_JOB_EVENT_FEED_H_
