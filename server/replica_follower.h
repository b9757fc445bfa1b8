// A replica's view of what the others sharing its store (PostgreSQL, --store) change, on a
// thread of its own: every `interval` the registry catches up (ModelRegistry::FollowStore), so a
// model deployed on one replica serves on every replica within about one interval plus its
// load, and so do the jobs (JobManager::FollowStore: leases, takeovers, cancels from other
// replicas, and every job's events). Started only for a shared store.
#ifndef CLASSIFIER_SERVER_REPLICA_FOLLOWER_H_
#define CLASSIFIER_SERVER_REPLICA_FOLLOWER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/mutex.h"

namespace classifier {

class ReplicaFollower {
 public:
  // How often a replica looks: well under the one second in which a deploy must reach every
  // replica, and one cheap query per look.
  static constexpr absl::Duration kDefaultInterval = absl::Milliseconds(200);

  // `models` and `jobs` must outlive the follower.
  ReplicaFollower(ModelRegistry* models, JobManager* jobs,
                  absl::Duration interval = kDefaultInterval);
  // Stops (a look under way finishes first) and joins.
  ~ReplicaFollower();
  ReplicaFollower(const ReplicaFollower&) = delete;
  ReplicaFollower& operator=(const ReplicaFollower&) = delete;

 private:
  void Loop();

  ModelRegistry* const models_;
  JobManager* const jobs_;
  const absl::Duration interval_;

  Mutex mu_;
  CondVar stop_requested_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: started after the rest exists, joined first.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_REPLICA_FOLLOWER_H_
