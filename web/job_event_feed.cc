#include "web/job_event_feed.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "web/http_status.h"

namespace classifier {
namespace {

// The one operation in flight at a time is the tag; its value only identifies the stream.
void* Tag(JobEventFeed* stream) { return stream; }

}  // namespace

JobEventFeed::JobEventFeed(v1::Classifier::Stub* stub, const v1::WatchJobRequest& request,
                           const std::string& authorization, absl::Duration keepalive)
    : keepalive_(keepalive) {
  if (!authorization.empty()) context_.AddMetadata("authorization", authorization);
  reader_ = stub->PrepareAsyncWatchJob(&context_, request, &queue_);
  reader_->StartCall(Tag(this));
}

JobEventFeed::~JobEventFeed() {
  if (step_ != Step::kDone) {
    context_.TryCancel();
    std::string ignored;
    while (Next(&ignored)) {
    }
  }
  queue_.Shutdown();
  void* tag;
  bool ok;
  while (queue_.Next(&tag, &ok)) {
  }
}

void JobEventFeed::Cancel() {
  stopping_ = true;
  context_.TryCancel();
}

bool JobEventFeed::Await(absl::Time deadline, bool* ok) {
  void* tag;
  return queue_.AsyncNext(&tag, ok, absl::ToChronoTime(deadline)) ==
         ::grpc::CompletionQueue::GOT_EVENT;
}

bool JobEventFeed::Next(std::string* chunk) {
  if (step_ == Step::kDone) return false;
  const absl::Time deadline = absl::Now() + keepalive_;
  for (;;) {
    bool ok = false;
    if (!Await(deadline, &ok)) {
      *chunk = ": keepalive\n\n";
      return true;
    }
    switch (step_) {
      case Step::kStarting:
      case Step::kReading:
        if (step_ == Step::kReading && ok) {
          std::string json;
          google::protobuf::util::JsonPrintOptions options;
          options.always_print_primitive_fields = true;
          (void)google::protobuf::util::MessageToJsonString(event_, &json, options);
          last_sequence_ = event_.sequence();
          *chunk =
              absl::StrCat("id: ", event_.sequence(), "\nevent: job_event\ndata: ", json, "\n\n");
          reader_->Read(&event_, Tag(this));
          return true;
        }
        if (ok) {  // started
          step_ = Step::kReading;
          reader_->Read(&event_, Tag(this));
        } else {  // the stream ended (or never started): its status says how
          step_ = Step::kFinishing;
          reader_->Finish(&status_, Tag(this));
        }
        break;
      case Step::kFinishing:
        step_ = Step::kDone;
        if (status_.ok()) {
          *chunk = "event: end\ndata: {}\n\n";
        } else {
          if (status_.error_code() == ::grpc::StatusCode::CANCELLED && stopping_) {
            status_ = ::grpc::Status(
                ::grpc::StatusCode::UNAVAILABLE,
                absl::StrCat("the web server is stopping; reconnect to follow the job from "
                             "event ",
                             last_sequence_ + 1, " (Last-Event-ID: ", last_sequence_, ")"));
          }
          std::string error = ErrorJson(status_);
          if (!error.empty() && error.back() == '\n') error.pop_back();
          *chunk = absl::StrCat("event: error\ndata: ", error, "\n\n");
        }
        return false;
      case Step::kDone:
        return false;
    }
  }
}

}  // namespace classifier
