// Command-line grammar of classifier-cli: `classifier-cli [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS]`.
//
// Hand-parsed rather than with absl flags: every subcommand has its own flags, and absl's
// flags are process-wide globals. Flags are `--name VALUE` or `--name=VALUE` and may appear
// anywhere after the command (global ones also before it); `--` ends the flags. A value is
// checked against its flag's type while parsing, so a typo is a usage error before any RPC.
#ifndef CLASSIFIER_CLIENT_ARGS_H_
#define CLASSIFIER_CLIENT_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace classifier::cli {

// Exit codes, the same for every command (scripts and the Docker healthcheck rely on them).
inline constexpr int kExitOk = 0;
// The server answered with a non-OK status, or is not SERVING.
inline constexpr int kExitServerError = 1;
// Bad command line: unknown command or flag, missing or malformed value.
inline constexpr int kExitUsage = 2;
// A local file could not be read or written, or downloaded weights failed their checks.
inline constexpr int kExitLocalError = 3;
// A training job ended failed, cancelled or interrupted.
inline constexpr int kExitJobFailed = 4;

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";
// Environment variable that overrides kDefaultServer (the --server flag overrides both).
inline constexpr char kServerEnvironmentVariable[] = "CLASSIFIER_SERVER";

enum class FlagType { kBool, kString, kInt32, kInt64, kUint64, kDouble };

struct FlagSpec {
  absl::string_view name;  // Without the leading dashes.
  FlagType type;
  absl::string_view value_name;  // For the usage text, e.g. "N"; empty for booleans.
  absl::string_view help;
};

struct CommandSpec {
  absl::string_view name;
  absl::string_view args_usage;  // e.g. "JOB" or "FILE...".
  int min_args;
  int max_args;  // -1 = unlimited.
  absl::string_view summary;
  std::vector<FlagSpec> flags;
};

// Every subcommand, in the order the usage text lists them.
const std::vector<CommandSpec>& Commands();
// nullptr when there is no such command.
const CommandSpec* FindCommand(absl::string_view name);

// One parsed command line. Flag values have been checked against their types, so the typed
// getters cannot fail; they return `fallback` when the flag was not given.
struct Invocation {
  std::string server;
  double timeout_seconds = 0;  // 0 = the command's default deadline.
  std::string command;         // Empty when only --help was asked for.
  bool help = false;
  std::map<std::string, std::string, std::less<>> flags;
  std::vector<std::string> args;
  // One line per deprecated flag spelling used (see the renamed flags in args.cc), for stderr.
  std::vector<std::string> deprecations;

  bool Has(absl::string_view name) const;
  std::string String(absl::string_view name, absl::string_view fallback = "") const;
  bool Bool(absl::string_view name) const;
  int32_t Int32(absl::string_view name, int32_t fallback = 0) const;
  int64_t Int64(absl::string_view name, int64_t fallback = 0) const;
  uint64_t Uint64(absl::string_view name, uint64_t fallback = 0) const;
  double Double(absl::string_view name, double fallback = 0) const;
};

// Parses argv without the program name. `server_from_environment` is the value of
// CLASSIFIER_SERVER (empty when unset). Errors are INVALID_ARGUMENT with a message meant for
// the user, e.g. "unknown flag --epoch for 'train'".
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv,
                                     absl::string_view server_from_environment);

// The overall usage text: global flags and the list of commands.
std::string Usage();
// One command's usage text: its arguments and flags.
std::string CommandUsage(const CommandSpec& command);

}  // namespace classifier::cli

#endif  // CLASSIFIER_CLIENT_ARGS_H_
