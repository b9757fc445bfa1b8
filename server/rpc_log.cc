#include "server/rpc_log.h"

#include "absl/time/clock.h"
#include "server/status_util.h"
#include "spdlog/spdlog.h"

namespace classifier {

RpcLog::RpcLog(const char* method, ::grpc::CallbackServerContext* context, Metrics* metrics,
               spdlog::level::level_enum ok_level)
    : method_(method),
      context_(context),
      start_(absl::Now()),
      metrics_(metrics),
      ok_level_(ok_level) {}

void RpcLog::Done(const ::grpc::Status& status) const {
  const absl::Duration elapsed = absl::Now() - start_;
  if (metrics_ != nullptr) {
    metrics_->ObserveRpc(method_, static_cast<int>(status.error_code()),
                         absl::ToDoubleSeconds(elapsed));
  }
  const spdlog::level::level_enum level = status.ok() ? ok_level_ : spdlog::level::info;
  // The peer is a fresh string: only made for a line that is written (not, by default, for
  // every successful Predict).
  if (!spdlog::should_log(level)) return;
  const double ms = absl::ToDoubleMilliseconds(elapsed);
  if (status.ok()) {
    spdlog::log(level, "rpc {} from {}: OK in {:.1f} ms", method_, context_->peer(), ms);
  } else {
    spdlog::log(level, "rpc {} from {}: code {} in {:.1f} ms: {}", method_, context_->peer(),
                static_cast<int>(status.error_code()), ms, status.error_message());
  }
}

::grpc::ServerUnaryReactor* FinishUnary(::grpc::CallbackServerContext* context, const RpcLog& log,
                                        const absl::Status& status) {
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ::grpc::Status grpc_status = ToGrpcStatus(status);
  log.Done(grpc_status);
  reactor->Finish(grpc_status);
  return reactor;
}

}  // namespace classifier
