// ClassifierService's worker RPCs: a classifier-worker's session (registered while it lasts,
// streamed the ranks it is to run and heartbeats) and the list of registered workers.
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/classifier_service.h"
#include "server/queued_writer.h"
#include "server/rpc_log.h"
#include "server/status_util.h"
#include "server/stream_reactors.h"
#include "server/worker_registry.h"

namespace classifier {
namespace {

// One worker's session: registered from construction (when the registry takes it) to
// destruction, which unregisters it under the registry's lock, so the registry never sends to
// a deleted stream (see QueuedWriter's lifetime note).
class WorkerSessionStream : public QueuedWriter<v1::WorkerCommand>, public WorkerRegistry::Session {
 public:
  WorkerSessionStream(WorkerRegistry* registry, const v1::Worker& worker, RpcLog log)
      : QueuedWriter(Backlog::kEvery,
                     ::grpc::Status(::grpc::StatusCode::CANCELLED, "the worker hung up"),
                     ::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "the worker's session broke")),
        registry_(registry),
        log_(std::move(log)) {
    if (absl::Status added = registry_->Add(worker, this); !added.ok()) {
      FinishWhenDrained(ToGrpcStatus(added));
    }
  }
  ~WorkerSessionStream() override { registry_->Remove(this); }

  void Send(v1::WorkerCommand command) override {
    QueuedWriter<v1::WorkerCommand>::Send(std::move(command));
  }
  void Close(const absl::Status& status) override { FinishWhenDrained(ToGrpcStatus(status)); }

 private:
  void OnFinish(const ::grpc::Status& status) override { log_.Done(status); }

  WorkerRegistry* const registry_;
  const RpcLog log_;
};

}  // namespace

::grpc::ServerWriteReactor<v1::WorkerCommand>* ClassifierService::WorkerSession(
    ::grpc::CallbackServerContext* context, const v1::WorkerSessionRequest* request) {
  RpcLog log("WorkerSession", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return Refuse<v1::WorkerCommand>(log, admitted);
  }
  if (workers_ == nullptr) {
    return Refuse<v1::WorkerCommand>(
        log, absl::FailedPreconditionError("this server takes no classifier-workers"));
  }
  if (absl::Status checked = WorkerRegistry::Check(*request); !checked.ok()) {
    return Refuse<v1::WorkerCommand>(log, checked);
  }
  v1::Worker worker;
  worker.set_worker_name(request->worker_name().empty() ? context->peer() : request->worker_name());
  worker.set_peer(context->peer());
  worker.set_build_version(request->build_version());
  worker.set_max_ranks(request->max_ranks());
  worker.set_server_address(request->server_address());
  const absl::Time now = absl::Now();
  worker.mutable_connected_time()->set_seconds(absl::ToUnixSeconds(now));
  return new WorkerSessionStream(workers_, worker, std::move(log));
}

::grpc::ServerUnaryReactor* ClassifierService::ListWorkers(
    ::grpc::CallbackServerContext* context, const v1::ListWorkersRequest* /*request*/,
    v1::ListWorkersResponse* response) {
  RpcLog log("ListWorkers", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  if (workers_ != nullptr) {
    for (v1::Worker& worker : workers_->List()) *response->add_workers() = std::move(worker);
  }
  return FinishUnary(context, log, absl::OkStatus());
}

}  // namespace classifier
