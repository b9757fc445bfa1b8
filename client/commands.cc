#include "client/commands.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/command_util.h"

namespace classifier::cli {

using grpc::ClientContext;

void SetDeadline(ClientContext* context, const Invocation& invocation, double default_seconds) {
  const double seconds =
      invocation.timeout_seconds > 0 ? invocation.timeout_seconds : default_seconds;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

int RpcFailed(const CommandEnvironment& env, const grpc::Status& status) {
  *env.err << FormatRpcError(status) << "\n";
  return kExitServerError;
}

int UsageFailed(const CommandEnvironment& env, const absl::Status& status) {
  *env.err << "error: " << status.message() << "\n";
  return kExitUsage;
}

int LocalFailed(const CommandEnvironment& env, const absl::Status& status) {
  *env.err << "error: " << status.message() << "\n";
  return kExitLocalError;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, n);
  if (std::ferror(file.get())) {
    return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  return bytes;
}

namespace {

int Health(const Invocation& invocation, const CommandEnvironment& env) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(invocation.String("service"));
  grpc::health::v1::HealthCheckResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kHealthTimeoutSeconds);
  const grpc::Status status = env.health->Check(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitServerError;
}

}  // namespace

std::string FormatRpcError(const grpc::Status& status) {
  std::string out = absl::StrCat(
      "error: ", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
  if (!status.error_message().empty()) absl::StrAppend(&out, ": ", status.error_message());
  // gRPC's own size check ("Received message larger than max (SIZE vs. LIMIT)") names the limit
  // in bytes, but neither where it is set nor what to do about it.
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      absl::StrContains(status.error_message(), "larger than max")) {
    absl::StrAppend(&out,
                    "\nhint: that limit is the server's --max_message_bytes (a request) or this "
                    "client's 4 MiB (an answer); send fewer or smaller images per predict call. "
                    "Model weights never need one big message: `export` and `import` stream them "
                    "in 1 MiB chunks (ExportWeights / ImportWeights)");
  }
  return out;
}

int RunCommand(const Invocation& invocation, const CommandEnvironment& environment) {
  using Handler = int (*)(const Invocation&, const CommandEnvironment&);
  static const auto* const handlers = new std::map<std::string, Handler, std::less<>>{
      {"health", Health},     {"train", Train},       {"watch", Watch},
      {"jobs", Jobs},         {"job", GetJob},        {"cancel", Cancel},
      {"evaluate", Evaluate}, {"predict", Predict},   {"models", Models},
      {"export", Export},     {"import", Import},     {"deploy", Deploy},
      {"delete", Delete},     {"datasets", Datasets}, {"register-dataset", RegisterDataset},
      {"samples", Samples},   {"workers", Workers},
  };
  auto it = handlers->find(invocation.command);
  if (it == handlers->end()) {
    return UsageFailed(environment, absl::InvalidArgumentError(absl::StrCat(
                                        "unknown command '", invocation.command, "'")));
  }
  return it->second(invocation, environment);
}

}  // namespace classifier::cli
