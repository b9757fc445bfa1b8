// The subcommands of classifier-cli, written against the generated stub interfaces so that
// tests can run them against an in-process server.
#ifndef CLASSIFIER_CLIENT_COMMANDS_H_
#define CLASSIFIER_CLIENT_COMMANDS_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "client/args.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace classifier::cli {

// Deadlines of unary calls unless --timeout says otherwise; streams have none.
inline constexpr double kDefaultTimeoutSeconds = 60;
inline constexpr double kEvaluateTimeoutSeconds = 600;  // A whole split, possibly on a CPU.
inline constexpr double kHealthTimeoutSeconds = 5;      // A healthcheck must answer fast.

// `import` sends the file in messages of this many bytes: well under gRPC's default 4 MiB
// message limit, big enough that the per-message overhead does not matter.
inline constexpr size_t kImportChunkBytes = size_t{1} << 20;

// What a command talks to and writes to. Not owned; all must outlive RunCommand.
struct CommandEnvironment {
  v1::Classifier::StubInterface* classifier = nullptr;
  grpc::health::v1::Health::StubInterface* health = nullptr;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Whether `out` is a terminal: progress within an epoch is then redrawn in place.
  bool terminal = false;
};

// Runs the command `invocation` names and returns the process's exit code (kExit* in
// args.h). Results go to `out`; errors to `err` as "error: ...".
int RunCommand(const Invocation& invocation, const CommandEnvironment& environment);

// The requests the flags describe; INVALID_ARGUMENT (a usage error) for a value outside the
// allowed words, e.g. --optimizer sgd.
absl::StatusOr<v1::TrainRequest> BuildTrainRequest(const Invocation& invocation);
absl::StatusOr<v1::EvaluateRequest> BuildEvaluateRequest(const Invocation& invocation);
// --format pytorch (the default) or onnx.
absl::StatusOr<v1::ExportWeightsRequest> BuildExportRequest(const Invocation& invocation);

// "error: NOT_FOUND: no job \"x\"" (no newline).
std::string FormatRpcError(const grpc::Status& status);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_COMMANDS_H_
