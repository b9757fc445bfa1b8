// The environment a rank of a data-parallel job is started with: the contract torchrun,
// Kubeflow's PyTorchJob and the service itself all follow (MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK; torchrun adds TORCHELASTIC_USE_AGENT_STORE and
// TORCHELASTIC_RESTART_COUNT, and GLOO_SOCKET_IFNAME picks the network interface as in
// PyTorch). Torch-free: read and checked before anything joins.
#ifndef CLASSIFIER_DISTRIBUTED_RANK_ENVIRONMENT_H_
#define CLASSIFIER_DISTRIBUTED_RANK_ENVIRONMENT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace classifier {

// The largest WORLD_SIZE a rank accepts: a typo (an extra digit) fails at once instead of
// waiting for ranks that will never come.
inline constexpr int kMaxWorldSize = 1024;

struct RankEnvironment {
  std::string master_addr;  // Where rank 0 (or torchrun's agent) serves the rendezvous store.
  int master_port = 0;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // Among the ranks on this host (LOCAL_RANK; 0 when unset).
  // torchrun's agent serves the store itself: every rank connects as a client, under the key
  // prefix of the agent's attempt (TORCHELASTIC_RESTART_COUNT), as PyTorch's env:// does.
  bool use_agent_store = false;
  int restart_count = 0;
  std::string socket_interface;  // GLOO_SOCKET_IFNAME; empty: chosen by address (see Join).
};

// Looks a variable up: its value, or null when unset. std::getenv in production, a map in
// tests.
using EnvironmentLookup = std::function<const char*(const char* name)>;

// INVALID_ARGUMENT naming the variable when one is missing (MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE), not a number, or out of range (port 1-65535, 1 <= WORLD_SIZE <= kMaxWorldSize,
// 0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0).
absl::StatusOr<RankEnvironment> ReadRankEnvironment(const EnvironmentLookup& lookup);

// The NAME=VALUE variables a launcher starts a rank with (MASTER_ADDR, MASTER_PORT, RANK,
// WORLD_SIZE, LOCAL_RANK, and GLOO_SOCKET_IFNAME when set): what ReadRankEnvironment reads back.
// Used by the server and by classifier-worker, which start ranks themselves.
std::vector<std::string> RankEnvironmentVariables(const RankEnvironment& environment);

}  // namespace classifier

#endif  // CLASSIFIER_DISTRIBUTED_RANK_ENVIRONMENT_H_
