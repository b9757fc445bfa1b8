#include "server/worker_registry.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/build_version.h"
#include "spdlog/spdlog.h"

namespace classifier {

WorkerRegistry::WorkerRegistry(absl::Duration heartbeat) : heartbeat_(heartbeat) {
  heartbeats_ = std::thread([this] { SendHeartbeats(); });
}

WorkerRegistry::~WorkerRegistry() {
  CloseAll();
  heartbeats_.join();
}

absl::Status WorkerRegistry::Check(const v1::WorkerSessionRequest& request) {
  if (request.build_version() != BuildVersion()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "build_version: worker \"", request.worker_name().substr(0, 128), "\" runs build \"",
        request.build_version().substr(0, 64), "\", this server runs build \"", BuildVersion(),
        "\"; run the server's own classifier-worker"));
  }
  if (request.max_ranks() < 1 || request.max_ranks() > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_ranks must be between 1 and 1024, got ", request.max_ranks()));
  }
  if (request.server_address().empty() || request.server_address().size() > 255) {
    return absl::InvalidArgumentError(
        "server_address must be the server's IP address as the worker reaches it");
  }
  if (request.worker_name().size() > 255) {
    return absl::InvalidArgumentError("worker_name must be at most 255 bytes");
  }
  return absl::OkStatus();
}

absl::Status WorkerRegistry::Add(const v1::Worker& worker, Session* session) {
  MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the server is shutting down");
  if (workers_.count(worker.worker_name()) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("worker_name: a worker named \"",
                                                 worker.worker_name(), "\" is already registered"));
  }
  if (static_cast<int>(workers_.size()) >= kMaxWorkers) {
    return absl::ResourceExhaustedError(
        absl::StrCat(kMaxWorkers, " workers are registered, the most this server takes"));
  }
  workers_[worker.worker_name()] = Entry{worker, session};
  v1::WorkerCommand accepted;
  accepted.mutable_accepted()->set_worker_name(worker.worker_name());
  accepted.mutable_accepted()->set_heartbeat_seconds(
      static_cast<int32_t>(absl::ToInt64Seconds(heartbeat_)));
  session->Send(std::move(accepted));
  spdlog::info("worker {} registered from {} ({} ranks, reaches this server at {})",
               worker.worker_name(), worker.peer(), worker.max_ranks(), worker.server_address());
  return absl::OkStatus();
}

void WorkerRegistry::Remove(Session* session) {
  MutexLock lock(&mu_);
  for (auto it = workers_.begin(); it != workers_.end(); ++it) {
    if (it->second.session == session) {
      spdlog::info("worker {} left ({} ranks were busy)", it->first,
                   it->second.worker.busy_ranks());
      workers_.erase(it);
      return;
    }
  }
}

std::vector<v1::Worker> WorkerRegistry::List() const {
  MutexLock lock(&mu_);
  std::vector<v1::Worker> workers;
  for (const auto& [name, entry] : workers_) workers.push_back(entry.worker);
  return workers;
}

std::unique_ptr<RemoteRanks> WorkerRegistry::Reserve(const std::string& job_id, int ranks) {
  std::vector<v1::Worker> slots;
  {
    MutexLock lock(&mu_);
    while (static_cast<int>(slots.size()) < ranks) {
      Entry* freest = nullptr;
      for (auto& [name, entry] : workers_) {
        const int free = entry.worker.max_ranks() - entry.worker.busy_ranks();
        if (free > 0 && (freest == nullptr ||
                         free > freest->worker.max_ranks() - freest->worker.busy_ranks())) {
          freest = &entry;
        }
      }
      if (freest == nullptr) break;
      freest->worker.set_busy_ranks(freest->worker.busy_ranks() + 1);
      slots.push_back(freest->worker);
    }
  }
  return std::make_unique<RemoteRanks>(this, job_id, std::move(slots));
}

void WorkerRegistry::CloseAll() {
  MutexLock lock(&mu_);
  if (!closed_) {
    closed_ = true;
    for (auto& [name, entry] : workers_) {
      entry.session->Close(absl::UnavailableError(
          "the server is shutting down; the worker registers again when it is back"));
    }
  }
  wake_.SignalAll();
}

void WorkerRegistry::SendHeartbeats() {
  MutexLock lock(&mu_);
  while (!closed_) {
    const auto next = std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(heartbeat_);
    while (!closed_ && wake_.WaitUntil(&mu_, next)) {
    }
    if (closed_) break;
    for (auto& [name, entry] : workers_) {
      v1::WorkerCommand heartbeat;
      heartbeat.mutable_heartbeat();
      entry.session->Send(std::move(heartbeat));
    }
  }
}

bool WorkerRegistry::SendTo(const std::string& worker_name, v1::WorkerCommand command) {
  MutexLock lock(&mu_);
  auto it = workers_.find(worker_name);
  if (it == workers_.end()) return false;
  it->second.session->Send(std::move(command));
  return true;
}

void WorkerRegistry::Release(const std::string& worker_name, int ranks) {
  MutexLock lock(&mu_);
  auto it = workers_.find(worker_name);
  if (it == workers_.end()) return;
  it->second.worker.set_busy_ranks(std::max(0, it->second.worker.busy_ranks() - ranks));
}

RemoteRanks::RemoteRanks(WorkerRegistry* registry, std::string job_id,
                         std::vector<v1::Worker> slots)
    : registry_(registry),
      job_id_(std::move(job_id)),
      slots_(std::move(slots)),
      started_(slots_.size(), false) {}

RemoteRanks::~RemoteRanks() {
  std::map<std::string, int> held;
  std::set<std::string> started;
  for (size_t i = 0; i < slots_.size(); ++i) {
    ++held[slots_[i].worker_name()];
    if (started_[i]) started.insert(slots_[i].worker_name());
  }
  for (const std::string& name : started) {
    v1::WorkerCommand stop;
    stop.mutable_stop_ranks()->set_job_id(job_id_);
    registry_->SendTo(name, std::move(stop));
  }
  for (const auto& [name, ranks] : held) registry_->Release(name, ranks);
}

std::string RemoteRanks::master_address() const {
  return slots_.empty() ? "" : slots_.front().server_address();
}

absl::Status RemoteRanks::Start(int slot, int rank, int world_size, int master_port,
                                const std::vector<std::string>& args) {
  v1::WorkerCommand command;
  v1::WorkerCommand::StartRank& start = *command.mutable_start_rank();
  start.set_job_id(job_id_);
  start.set_rank(rank);
  start.set_world_size(world_size);
  start.set_master_port(master_port);
  for (const std::string& arg : args) start.add_args(arg);
  const std::string& name = slots_[slot].worker_name();
  if (!registry_->SendTo(name, std::move(command))) {
    return absl::UnavailableError(absl::StrCat("worker ", name, " has left"));
  }
  started_[slot] = true;
  spdlog::info("job {}: rank {} of {} on worker {}", job_id_, rank, world_size, name);
  return absl::OkStatus();
}

}  // namespace classifier
