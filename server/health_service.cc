#include "server/health_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/queued_writer.h"

namespace classifier {

using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;

namespace {

HealthCheckResponse::ServingStatus ToServingStatus(bool serving) {
  return serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

}  // namespace

// Streams the current status, then every change. Only the newest status waits behind the write
// in flight: a status replaced before it could be written is worth nothing to a watcher. Deletes
// itself in OnDone (QueuedWriter), leaving the service's list on the way.
class HealthService::Watcher : public QueuedWriter<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, HealthCheckResponse::ServingStatus initial)
      : QueuedWriter(Backlog::kLatest,
                     ::grpc::Status(::grpc::StatusCode::CANCELLED, "watch cancelled"),
                     ::grpc::Status(::grpc::StatusCode::CANCELLED, "stream closed")),
        service_(service) {
    Send(initial);
  }
  // On a gRPC thread, after the last callback: SetServing never reaches this watcher again.
  ~Watcher() override { service_->Unregister(this); }

  // Called with the service's lock held; never blocks.
  void Send(HealthCheckResponse::ServingStatus status) {
    HealthCheckResponse response;
    response.set_status(status);
    QueuedWriter::Send(std::move(response));
  }

 private:
  HealthService* const service_;
};

HealthService::HealthService(std::vector<std::string> services)
    : services_(services.begin(), services.end()) {}

void HealthService::SetServing(bool serving) {
  MutexLock lock(&mu_);
  if (serving_ == serving) return;
  serving_ = serving;
  for (Watcher* watcher : watchers_) watcher->Send(ToServingStatus(serving));
}

bool HealthService::serving() const {
  MutexLock lock(&mu_);
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
  MutexLock lock(&mu_);
  const bool known = request->service().empty() || services_.count(request->service()) != 0;
  // The protocol says: an unknown service is reported as SERVICE_UNKNOWN, not
  // an error.
  auto* watcher =
      new Watcher(this, known ? ToServingStatus(serving_) : HealthCheckResponse::SERVICE_UNKNOWN);
  if (known) watchers_.insert(watcher);
  return watcher;
}

void HealthService::Unregister(Watcher* watcher) {
  MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

}  // namespace classifier
