// HAProxy's agent check (`agent-check agent-port N` on a backend's server line): every
// connection to the agent's port is answered with one line saying whether this server takes
// new requests, then closed: "up ready" while its health (grpc.health.v1) is SERVING, "drain"
// from the moment it reports NOT_SERVING (HAProxy then sends it nothing new while the calls in
// flight finish). HAProxy 2.6 cannot send grpc.health.v1's request itself (a check's body cannot
// hold the NUL bytes of a gRPC frame), so the agent speaks the same status in its protocol.
#ifndef CLASSIFIER_SERVER_LOAD_BALANCER_AGENT_H_
#define CLASSIFIER_SERVER_LOAD_BALANCER_AGENT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace classifier {

class LoadBalancerAgent {
 public:
  // Listens on `address` (host:port; port 0 picks a free one) and answers from `serving`,
  // which must be thread-safe and quick. INVALID_ARGUMENT for a malformed address, UNAVAILABLE
  // when it cannot listen there.
  static absl::StatusOr<std::unique_ptr<LoadBalancerAgent>> Start(const std::string& address,
                                                                  std::function<bool()> serving);
  // Stops answering and joins its thread.
  ~LoadBalancerAgent();
  LoadBalancerAgent(const LoadBalancerAgent&) = delete;
  LoadBalancerAgent& operator=(const LoadBalancerAgent&) = delete;

  int port() const { return port_; }

 private:
  LoadBalancerAgent(int listen_fd, int wake_read_fd, int wake_write_fd, int port,
                    std::function<bool()> serving);
  void Loop();

  // Constant after construction; closed by the destructor.
  const int listen_fd_;
  const int wake_read_fd_;  // Readable once the destructor wants the loop to end.
  const int wake_write_fd_;
  const int port_;
  const std::function<bool()> serving_;
  std::thread thread_;  // Last: started after the rest exists, joined first.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_LOAD_BALANCER_AGENT_H_
