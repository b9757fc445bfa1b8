#include "distributed/rank_environment.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace classifier {
namespace {

// `name`'s value as an integer in [low, high]; `fallback` when unset and not required.
absl::StatusOr<int> ReadInt(const EnvironmentLookup& lookup, const char* name, int low, int high,
                            bool required, int fallback = 0) {
  const char* value = lookup(name);
  if (value == nullptr || *value == '\0') {
    if (!required) return fallback;
    return absl::InvalidArgumentError(
        absl::StrCat(name,
                     " is not set: a rank needs MASTER_ADDR, MASTER_PORT, RANK and "
                     "WORLD_SIZE (as torchrun sets them)"));
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(value, &number) || number < low || number > high) {
    return absl::InvalidArgumentError(absl::StrCat(name, " is \"", absl::string_view(value),
                                                   "\"; it must be an integer from ", low, " to ",
                                                   high));
  }
  return static_cast<int>(number);
}

}  // namespace

absl::StatusOr<RankEnvironment> ReadRankEnvironment(const EnvironmentLookup& lookup) {
  RankEnvironment environment;
  const char* master_addr = lookup("MASTER_ADDR");
  if (master_addr == nullptr || *master_addr == '\0') {
    return absl::InvalidArgumentError(
        "MASTER_ADDR is not set: a rank needs MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (as "
        "torchrun sets them)");
  }
  environment.master_addr = master_addr;
  absl::StatusOr<int> port = ReadInt(lookup, "MASTER_PORT", 1, 65535, /*required=*/true);
  if (!port.ok()) return port.status();
  environment.master_port = *port;
  absl::StatusOr<int> world_size = ReadInt(lookup, "WORLD_SIZE", 1, kMaxWorldSize, true);
  if (!world_size.ok()) return world_size.status();
  environment.world_size = *world_size;
  absl::StatusOr<int> rank = ReadInt(lookup, "RANK", 0, *world_size - 1, true);
  if (!rank.ok()) return rank.status();
  environment.rank = *rank;
  absl::StatusOr<int> local_rank = ReadInt(lookup, "LOCAL_RANK", 0, kMaxWorldSize - 1, false);
  if (!local_rank.ok()) return local_rank.status();
  environment.local_rank = *local_rank;
  const char* agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE");
  environment.use_agent_store = agent_store != nullptr && absl::string_view(agent_store) == "True";
  absl::StatusOr<int> restarts = ReadInt(lookup, "TORCHELASTIC_RESTART_COUNT", 0, 1 << 30, false);
  if (!restarts.ok()) return restarts.status();
  environment.restart_count = *restarts;
  if (const char* interface = lookup("GLOO_SOCKET_IFNAME"); interface != nullptr) {
    environment.socket_interface = interface;
  }
  return environment;
}

std::vector<std::string> RankEnvironmentVariables(const RankEnvironment& environment) {
  std::vector<std::string> variables = {absl::StrCat("MASTER_ADDR=", environment.master_addr),
                                        absl::StrCat("MASTER_PORT=", environment.master_port),
                                        absl::StrCat("RANK=", environment.rank),
                                        absl::StrCat("WORLD_SIZE=", environment.world_size),
                                        absl::StrCat("LOCAL_RANK=", environment.local_rank)};
  if (!environment.socket_interface.empty()) {
    variables.push_back(absl::StrCat("GLOO_SOCKET_IFNAME=", environment.socket_interface));
  }
  return variables;
}

}  // namespace classifier
