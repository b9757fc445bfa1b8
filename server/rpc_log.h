// One log line per RPC (method, peer, status, duration), counted in the metrics, and the helper
// that ends a unary call with that line.
#ifndef CLASSIFIER_SERVER_RPC_LOG_H_
#define CLASSIFIER_SERVER_RPC_LOG_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "spdlog/common.h"

namespace classifier {

// Made when a call starts, Done when it ends. Copyable: a handler captures it by value into the
// closure that finishes the call on another thread. Borrows the call's context and `metrics`
// (nullable; not counted when null): Done must be called before the call is finished, while the
// context is still alive. Done is const and thread-safe (it only reads; Metrics and spdlog are
// thread-safe) and never blocks on the network.
class RpcLog {
 public:
  // `method`: a string literal. `ok_level`: the level of the line for a successful call
  // (failures are always info): Predict's hot path logs at debug.
  RpcLog(const char* method, ::grpc::CallbackServerContext* context, Metrics* metrics,
         spdlog::level::level_enum ok_level = spdlog::level::info);

  void Done(const ::grpc::Status& status) const;

 private:
  // Constant after construction.
  const char* const method_;
  ::grpc::CallbackServerContext* const context_;
  const absl::Time start_;
  Metrics* const metrics_;
  const spdlog::level::level_enum ok_level_;
};

// Logs `status` with `log` and finishes the unary call with it, through the context's default
// reactor (which gRPC owns); returns that reactor for the handler to return.
::grpc::ServerUnaryReactor* FinishUnary(::grpc::CallbackServerContext* context, const RpcLog& log,
                                        const absl::Status& status);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_RPC_LOG_H_
