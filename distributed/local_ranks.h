// The local ranks of a distributed job: classifier-rank processes this process (the server, or
// a classifier-worker) starts, owned like threads are. The destructor stops and reaps every one
// still running, so that no job leaves a process behind, whatever way it ends.
#ifndef CLASSIFIER_DISTRIBUTED_LOCAL_RANKS_H_
#define CLASSIFIER_DISTRIBUTED_LOCAL_RANKS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace classifier {

class LocalRanks {
 public:
  // How long a rank may take to exit after SIGTERM before it gets SIGKILL.
  static constexpr absl::Duration kStopGrace = absl::Seconds(10);

  LocalRanks() = default;
  LocalRanks(const LocalRanks&) = delete;
  LocalRanks& operator=(const LocalRanks&) = delete;
  // Waits up to kStopGrace for the ranks to exit by themselves (a finished or stopped job's
  // ranks are already on their way out), then SIGTERM, then SIGKILL; reaps every one.
  ~LocalRanks();

  // Starts `binary` with `args`, this process's environment plus `environment` (NAME=VALUE
  // entries, which win), and stdout and stderr appended to `log_path`. INTERNAL naming the
  // binary when it cannot be started.
  absl::Status Start(const std::string& binary, const std::vector<std::string>& args,
                     const std::vector<std::string>& environment, const std::string& log_path);

  // Sends SIGTERM to every rank still running now (a stop that need not wait for the ranks to
  // see their group close); the destructor then reaps them.
  void Terminate();

  // The pids started, for logs.
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  std::vector<pid_t> pids_;
};

}  // namespace classifier

#endif  // CLASSIFIER_DISTRIBUTED_LOCAL_RANKS_H_
