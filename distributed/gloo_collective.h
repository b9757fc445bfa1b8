// A Collective (model/collective.h) on PyTorch's own distributed engine: a c10d TCPStore for
// the rendezvous (served by rank 0, or by torchrun's agent) and ProcessGroupGloo for the sums,
// over TCP between any hosts that can reach each other.
#ifndef CLASSIFIER_DISTRIBUTED_GLOO_COLLECTIVE_H_
#define CLASSIFIER_DISTRIBUTED_GLOO_COLLECTIVE_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "absl/status/statusor.h"
#include "distributed/rank_environment.h"
#include "model/collective.h"

namespace classifier {

struct JoinOptions {
  // How long a rank waits for the store and for every other rank to join.
  std::chrono::milliseconds join_timeout{std::chrono::seconds(120)};
  // How long one sum may wait for the other ranks (a rank that died is usually seen at once,
  // by its closed connections; a rank that hangs only after this).
  std::chrono::milliseconds collective_timeout{std::chrono::seconds(300)};
};

class GlooCollective : public Collective {
 public:
  // Joins the group `environment` describes. Rank 0 serves the rendezvous store on MASTER_PORT
  // (unless torchrun's agent does); every rank connects to it and announces itself, then
  // the Gloo group connects every pair of ranks. Each rank binds to the address by which this
  // host reaches MASTER_ADDR (or to GLOO_SOCKET_IFNAME's). FAILED_PRECONDITION when
  // MASTER_PORT is taken on rank 0's host; UNAVAILABLE when the store cannot be reached;
  // DEADLINE_EXCEEDED naming the ranks that did not join within join_timeout.
  static absl::StatusOr<std::unique_ptr<GlooCollective>> Join(const RankEnvironment& environment,
                                                              const JoinOptions& options);

  // Rank 0 of a group whose other ranks this process starts itself: serves the store on a free
  // port of `address` (this host's, reachable by the others), calls start_others(port) to start
  // ranks 1..world_size-1 with MASTER_PORT = port, then joins as Join does. start_others' error
  // is returned as it is.
  static absl::StatusOr<std::unique_ptr<GlooCollective>> HostAndJoin(
      const std::string& address, int world_size, const JoinOptions& options,
      const std::function<absl::Status(int port)>& start_others);

  // Joins through a store every rank shares (a FileStore in tests), binding to `address`.
  static absl::StatusOr<std::unique_ptr<GlooCollective>> JoinThroughStore(
      const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
      const std::string& address, const JoinOptions& options);

  ~GlooCollective() override;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  absl::Status SumInPlace(torch::Tensor& values) override;
  absl::Status BroadcastInPlace(torch::Tensor& values, int root) override;

  // The sums made so far and the wall time spent in them (waiting for slower ranks included):
  // the benchmark's all-reduce cost.
  int64_t sums() const { return sums_; }
  double seconds_in_sums() const { return seconds_in_sums_; }

 private:
  GlooCollective(c10::intrusive_ptr<c10d::Store> store,
                 c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank, int world_size);

  // Starts one collective of this group's with `start` and waits for it; a failure is
  // UNAVAILABLE naming `what` ("sum", "broadcast"), and leaves the group broken.
  absl::Status Complete(const char* what,
                        const std::function<c10::intrusive_ptr<c10d::Work>()>& start);

  c10::intrusive_ptr<c10d::Store> store_;  // Kept: rank 0's serves the others.
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  const int rank_;
  const int world_size_;
  absl::Status broken_;  // The first failed sum's error: the group is unusable after one.
  int64_t sums_ = 0;
  double seconds_in_sums_ = 0;
};

// The local address this host uses to reach `host` (by a connected UDP socket: nothing is
// sent), e.g. 127.0.0.1 for a loopback master. UNAVAILABLE when `host` does not resolve or has
// no route.
absl::StatusOr<std::string> LocalAddressTowards(const std::string& host, int port);

}  // namespace classifier

#endif  // CLASSIFIER_DISTRIBUTED_GLOO_COLLECTIVE_H_
