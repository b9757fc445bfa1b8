// What the files of classifier-cli's commands share: deadlines, the exit code and message of
// each kind of failure, and one handler per command for RunCommand's table (commands.cc).
// Private to client/: the public interface is client/commands.h.
#ifndef CLASSIFIER_CLIENT_COMMAND_UTIL_H_
#define CLASSIFIER_CLIENT_COMMAND_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/args.h"
#include "client/commands.h"

namespace classifier::cli {

// Sets the call's deadline: --timeout when given, else `default_seconds` from now.
void SetDeadline(grpc::ClientContext* context, const Invocation& invocation,
                 double default_seconds);

// Write "error: ..." to env.err and return the exit code of that kind of failure:
// kExitServerError, kExitUsage, kExitLocalError.
int RpcFailed(const CommandEnvironment& env, const grpc::Status& status);
int UsageFailed(const CommandEnvironment& env, const absl::Status& status);
int LocalFailed(const CommandEnvironment& env, const absl::Status& status);

// The whole file; NOT_FOUND when it cannot be opened, DATA_LOSS when reading fails.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

// The commands, one per word of the command line; each returns the process's exit code.
// train_commands.cc: training jobs.
int Train(const Invocation& invocation, const CommandEnvironment& env);
int Watch(const Invocation& invocation, const CommandEnvironment& env);
int Jobs(const Invocation& invocation, const CommandEnvironment& env);
int GetJob(const Invocation& invocation, const CommandEnvironment& env);
int Cancel(const Invocation& invocation, const CommandEnvironment& env);
// model_commands.cc: trained models.
int Evaluate(const Invocation& invocation, const CommandEnvironment& env);
int Predict(const Invocation& invocation, const CommandEnvironment& env);
int Models(const Invocation& invocation, const CommandEnvironment& env);
int Export(const Invocation& invocation, const CommandEnvironment& env);
int Import(const Invocation& invocation, const CommandEnvironment& env);
int Deploy(const Invocation& invocation, const CommandEnvironment& env);
int Delete(const Invocation& invocation, const CommandEnvironment& env);
// dataset_commands.cc: datasets.
int Datasets(const Invocation& invocation, const CommandEnvironment& env);
int Workers(const Invocation& invocation, const CommandEnvironment& env);
int RegisterDataset(const Invocation& invocation, const CommandEnvironment& env);
int Samples(const Invocation& invocation, const CommandEnvironment& env);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_COMMAND_UTIL_H_
