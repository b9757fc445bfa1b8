// The classifier-workers connected to this server (WorkerSession calls), and the ranks of
// distributed jobs they hold. A worker is registered exactly while its session lasts; the
// training worker reserves ranks on them for one attempt of a job (RemoteRanks) before it starts
// any as local processes.
//
// Threading: every method is thread-safe. A Session's Send is called under the registry's lock,
// and Remove takes that lock, so once Remove has returned the registry never calls that session
// again (its reactor may then be deleted).
#ifndef CLASSIFIER_SERVER_WORKER_REGISTRY_H_
#define CLASSIFIER_SERVER_WORKER_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "classifier/v1/classifier.pb.h"
#include "server/mutex.h"

namespace classifier {

class RemoteRanks;

class WorkerRegistry {
 public:
  // Where a registered worker's commands go: its session's stream.
  class Session {
   public:
    virtual ~Session() = default;
    // Queues `command`; never blocks.
    virtual void Send(v1::WorkerCommand command) = 0;
    // Ends the session with `status` once what is queued is written.
    virtual void Close(const absl::Status& status) = 0;
  };

  // Workers at most at once; more is RESOURCE_EXHAUSTED.
  static constexpr int kMaxWorkers = 1024;

  // Starts the thread that sends every session a heartbeat each `heartbeat` interval.
  explicit WorkerRegistry(absl::Duration heartbeat);
  // Joins that thread.
  ~WorkerRegistry();
  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  // Checks a worker's session request against this server: INVALID_ARGUMENT naming a bad
  // field, FAILED_PRECONDITION naming both builds when the worker's is not this server's.
  static absl::Status Check(const v1::WorkerSessionRequest& request);

  // Registers `worker` (already checked) with its session and sends it `accepted`.
  // ALREADY_EXISTS when the name is taken, RESOURCE_EXHAUSTED at kMaxWorkers, UNAVAILABLE once
  // closed.
  absl::Status Add(const v1::Worker& worker, Session* session);
  // Forgets the worker of `session` (a session that was never added: nothing). Its reserved
  // ranks are lost with it: their job sees them go and starts its ranks again.
  void Remove(Session* session);

  // The registered workers, by name.
  std::vector<v1::Worker> List() const;

  // Reserves up to `ranks` free rank slots on the workers (the freest first) for one attempt
  // of `job_id`; fewer, or none, when fewer are free.
  std::unique_ptr<RemoteRanks> Reserve(const std::string& job_id, int ranks);

  // Ends every session UNAVAILABLE (the server stops) and takes no more.
  void CloseAll();

  absl::Duration heartbeat() const { return heartbeat_; }

 private:
  friend class RemoteRanks;
  struct Entry {
    v1::Worker worker;
    Session* session;
  };

  void SendHeartbeats();
  // RemoteRanks' side: a command to a worker if it is still there, and the slots' release.
  bool SendTo(const std::string& worker_name, v1::WorkerCommand command);
  void Release(const std::string& worker_name, int ranks);

  const absl::Duration heartbeat_;

  mutable Mutex mu_;
  std::map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  CondVar wake_;
  std::thread heartbeats_;
};

// The rank slots one attempt of a distributed job holds on workers. Its destructor tells each
// worker used to stop the job's ranks and frees the slots, however the attempt ended.
class RemoteRanks {
 public:
  RemoteRanks(WorkerRegistry* registry, std::string job_id, std::vector<v1::Worker> slots);
  ~RemoteRanks();
  RemoteRanks(const RemoteRanks&) = delete;
  RemoteRanks& operator=(const RemoteRanks&) = delete;

  // Slots reserved.
  int size() const { return static_cast<int>(slots_.size()); }
  // The server's address as the first slot's worker reaches it (empty with no slot): the
  // job's MASTER_ADDR when it uses workers.
  std::string master_address() const;
  // Sends slot `slot`'s worker the start of `rank`. UNAVAILABLE when that worker has left.
  absl::Status Start(int slot, int rank, int world_size, int master_port,
                     const std::vector<std::string>& args);

 private:
  WorkerRegistry* const registry_;
  const std::string job_id_;
  // One entry per slot (a worker holding two ranks appears twice).
  const std::vector<v1::Worker> slots_;
  std::vector<bool> started_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_WORKER_REGISTRY_H_
