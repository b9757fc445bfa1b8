// The state directory's upkeep, on a thread of its own: deletes the jobs that finished longer
// than --job_retention ago (with their events, checkpoints and rank logs), gives the space back
// to the file system, publishes the store's sizes as metrics, and gives the heap memory freed
// since the last round back to the system (free_heap.h), so that the service's cost follows
// what is kept, not everything that ever ran.
#ifndef CLASSIFIER_SERVER_HOUSEKEEPER_H_
#define CLASSIFIER_SERVER_HOUSEKEEPER_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/mutex.h"
#include "server/store.h"

namespace classifier {

class Housekeeper {
 public:
  // Every pointer must outlive the housekeeper; `metrics` may be null. `job_retention` zero keeps
  // every job. A round runs at once, then every RoundInterval(job_retention).
  Housekeeper(JobManager* jobs, Store* store, const ModelRegistry* models, Metrics* metrics,
              absl::Duration job_retention);
  // Stops (a round under way finishes first) and joins.
  ~Housekeeper();
  Housekeeper(const Housekeeper&) = delete;
  Housekeeper& operator=(const Housekeeper&) = delete;

  // How often rounds run: a quarter of the retention (so a job goes at most 25% late), between
  // 100 ms and one minute; one minute without retention (the metrics only).
  static absl::Duration RoundInterval(absl::Duration job_retention);

 private:
  void Loop();
  void RunRound();

  JobManager* const jobs_;
  Store* const store_;
  const ModelRegistry* const models_;
  Metrics* const metrics_;
  const absl::Duration job_retention_;

  Mutex mu_;
  CondVar stop_requested_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: started after the rest exists, joined first.
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_HOUSEKEEPER_H_
