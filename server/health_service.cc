#include "server/health_service.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace classifier {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

namespace {

HealthCheckResponse::ServingStatus ToServingStatus(bool serving) {
  return serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

}  // namespace

// Streams the current status, then every change, one write in flight at a time.
class HealthService::Watcher : public ::grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, HealthCheckResponse::ServingStatus initial) : service_(service) {
    Send(initial);
  }

  // Called with the service's lock held; never blocks.
  void Send(HealthCheckResponse::ServingStatus status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    pending_ = status;
    has_pending_ = true;
    MaybeWrite();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok || cancelled_) {
      FinishOnce(::grpc::Status(::grpc::StatusCode::CANCELLED, "stream closed"));
      return;
    }
    MaybeWrite();
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    if (!writing_) FinishOnce(::grpc::Status(::grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    service_->Unregister(this);
    delete this;
  }

 private:
  void MaybeWrite() {
    if (writing_ || !has_pending_ || finished_) return;
    response_.set_status(pending_);
    has_pending_ = false;
    writing_ = true;
    StartWrite(&response_);
  }

  void FinishOnce(const ::grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  HealthService* const service_;
  std::mutex mu_;
  HealthCheckResponse response_;
  HealthCheckResponse::ServingStatus pending_ = HealthCheckResponse::UNKNOWN;
  bool has_pending_ = false;
  bool writing_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

HealthService::HealthService(std::vector<std::string> services)
    : services_(services.begin(), services.end()) {}

void HealthService::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (serving_ == serving) return;
  serving_ = serving;
  for (Watcher* watcher : watchers_) watcher->Send(ToServingStatus(serving));
}

bool HealthService::serving() const {
  std::lock_guard<std::mutex> lock(mu_);
  return serving_;
}

::grpc::ServerUnaryReactor* HealthService::Check(::grpc::CallbackServerContext* context,
                                                 const HealthCheckRequest* request,
                                                 HealthCheckResponse* response) {
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!request->service().empty() && services_.count(request->service()) == 0) {
    reactor->Finish(::grpc::Status(::grpc::StatusCode::NOT_FOUND,
                                   absl::StrCat("unknown service \"", request->service(), "\"")));
    return reactor;
  }
  response->set_status(ToServingStatus(serving()));
  reactor->Finish(::grpc::Status::OK);
  return reactor;
}

::grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    ::grpc::CallbackServerContext* /*context*/, const HealthCheckRequest* request) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool known = request->service().empty() || services_.count(request->service()) != 0;
  // The protocol says: an unknown service is reported as SERVICE_UNKNOWN, not
  // an error.
  auto* watcher =
      new Watcher(this, known ? ToServingStatus(serving_) : HealthCheckResponse::SERVICE_UNKNOWN);
  if (known) watchers_.insert(watcher);
  return watcher;
}

void HealthService::Unregister(Watcher* watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(watcher);
}

}  // namespace classifier
