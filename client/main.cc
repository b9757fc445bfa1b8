// classifier-cli: the command-line client of the classifier service.
//
//   classifier-cli [--server HOST:PORT] [--timeout SECONDS] [--tls_ca FILE] [--token_file FILE]
//                  COMMAND [FLAGS] [ARGS]
//
// Commands, flags, the exact output of each command and the exit codes are documented in
// client/README.md (scripts and the end-to-end tests parse that output).
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "client/args.h"
#include "client/channel.h"
#include "client/commands.h"

int main(int argc, char** argv) {
  using namespace classifier::cli;  // NOLINT(build/namespaces): a .cc file's main.
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << Usage();
    return kExitUsage;
  }
  const char* server_from_environment = std::getenv(kServerEnvironmentVariable);
  absl::StatusOr<Invocation> invocation =
      ParseArgs(args, server_from_environment == nullptr ? "" : server_from_environment);
  if (!invocation.ok()) {
    std::cerr << "error: " << invocation.status().message()
              << "\nRun 'classifier-cli --help' for usage.\n";
    return kExitUsage;
  }
  for (const std::string& deprecation : invocation->deprecations) {
    std::cerr << "warning: " << deprecation << "\n";
  }
  if (invocation->help) {
    const CommandSpec* command = FindCommand(invocation->command);
    std::cout << (command == nullptr ? Usage() : CommandUsage(*command));
    return kExitOk;
  }

  const char* token_from_environment = std::getenv(kTokenEnvironmentVariable);
  absl::StatusOr<ChannelOptions> channel_options = ChannelOptionsFrom(
      *invocation, token_from_environment == nullptr ? "" : token_from_environment);
  if (!channel_options.ok()) {
    std::cerr << "error: " << channel_options.status().message() << "\n";
    return kExitLocalError;
  }
  const std::shared_ptr<grpc::Channel> channel = MakeChannel(*channel_options);
  const std::unique_ptr<classifier::v1::Classifier::Stub> classifier =
      classifier::v1::Classifier::NewStub(channel);
  const std::unique_ptr<grpc::health::v1::Health::Stub> health =
      grpc::health::v1::Health::NewStub(channel);
  CommandEnvironment environment;
  environment.classifier = classifier.get();
  environment.health = health.get();
  environment.out = &std::cout;
  environment.err = &std::cerr;
  environment.terminal = isatty(STDOUT_FILENO) == 1;
  return RunCommand(*invocation, environment);
}
