// grpc.health.v1.Health, generated from the official health.proto so that
// server reflection can describe it (gRPC's built-in default health service has
// no descriptor).
#ifndef CLASSIFIER_SERVER_HEALTH_SERVICE_H_
#define CLASSIFIER_SERVER_HEALTH_SERVICE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/mutex.h"

namespace classifier {

class HealthService : public ::grpc::health::v1::Health::CallbackService {
 public:
  // `services`: the names Check answers for besides "" (the whole server).
  explicit HealthService(std::vector<std::string> services);

  // Thread-safe. Watchers get the new status.
  void SetServing(bool serving);
  bool serving() const;

  ::grpc::ServerUnaryReactor* Check(::grpc::CallbackServerContext* context,
                                    const ::grpc::health::v1::HealthCheckRequest* request,
                                    ::grpc::health::v1::HealthCheckResponse* response) override;
  ::grpc::ServerWriteReactor<::grpc::health::v1::HealthCheckResponse>* Watch(
      ::grpc::CallbackServerContext* context,
      const ::grpc::health::v1::HealthCheckRequest* request) override;

  // A live Watch call; defined in the .cc.
  class Watcher;

 private:
  friend class Watcher;
  void Unregister(Watcher* watcher);

  const std::set<std::string> services_;  // Constant after construction.

  mutable Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_HEALTH_SERVICE_H_
