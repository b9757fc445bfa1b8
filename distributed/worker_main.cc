// classifier-worker: lends this host's cores to a classifier-server's distributed jobs. It holds
// one WorkerSession with the server (registered while it lasts, listed by ListWorkers), runs
// the classifier-rank processes the server streams it (MASTER_ADDR = the server's address as
// this host reaches it), stops them when told or when the session ends, and registers again
// after the server comes back. No LibTorch here: the ranks are classifier-rank.
//
//   classifier-worker --server HOST:PORT [--worker_name NAME] [--max_ranks N] [--data_dir DIR]
//                     [--rank_binary PATH] [--log_dir DIR] [--tls_ca FILE] [--token_file FILE]
//
// Exit 0 after SIGTERM / SIGINT (its ranks stopped first); 1 when the server refuses it for
// good (another build, a bad flag, a wrong token) or the flags are wrong.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/build_version.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "distributed/local_ranks.h"
#include "distributed/rank_environment.h"
#include "server/mutex.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "the classifier-server's gRPC address");
ABSL_FLAG(std::string, worker_name, "",
          "this worker's name among the server's (default: the host name)");
ABSL_FLAG(int, max_ranks, 0, "ranks run at once (default: the number of cores)");
ABSL_FLAG(std::string, data_dir, "data",
          "the ranks' --data_dir: this host's datasets, by the same names as the server's");
ABSL_FLAG(std::string, fashion_fallback_dir, "",
          "the ranks' --fashion_fallback_dir (default: classifier-rank's)");
ABSL_FLAG(std::string, rank_binary, "", "classifier-rank (default: the one beside this binary)");
ABSL_FLAG(std::string, log_dir, "worker-logs", "where rank R of job J writes J-rank-R.log");
ABSL_FLAG(absl::Duration, reconnect_delay, absl::Seconds(2),
          "wait between tries to reach the server");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA that signed the server's certificate (TLS on)");
ABSL_FLAG(std::string, token_file, "", "file holding the server's bearer token");

namespace classifier {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The server's IPv4 address as this host resolves its name: what the ranks connect to.
absl::StatusOr<std::string> ServerAddress(const std::string& server) {
  const size_t colon = server.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--server must be HOST:PORT, got ", server));
  }
  std::string host = server.substr(0, colon);
  host = std::string(absl::StripPrefix(absl::StripPrefix(host, "ipv4:"), "dns:///"));
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve the server's host ", host));
  }
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr, text, sizeof(text));
  freeaddrinfo(found);
  return std::string(text);
}

// Refusals that trying again will not change.
bool Permanent(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

class Worker {
 public:
  Worker(std::shared_ptr<grpc::Channel> channel, v1::WorkerSessionRequest hello, std::string token,
         std::string rank_binary, std::vector<std::string> rank_flags, std::string log_dir,
         absl::Duration reconnect_delay)
      : stub_(v1::Classifier::NewStub(channel)),
        hello_(std::move(hello)),
        token_(std::move(token)),
        rank_binary_(std::move(rank_binary)),
        rank_flags_(std::move(rank_flags)),
        log_dir_(std::move(log_dir)),
        reconnect_delay_(reconnect_delay) {}

  // Sessions until Stop or a permanent refusal; the process's exit status.
  int Run() {
    for (;;) {
      const grpc::Status status = Session();
      if (stopping()) return 0;
      if (Permanent(status)) {
        spdlog::error("the server refuses this worker: {} ({})", status.error_message(),
                      static_cast<int>(status.error_code()));
        return 1;
      }
      spdlog::warn("session ended ({}: {}); registering again in {}",
                   static_cast<int>(status.error_code()), status.error_message(),
                   absl::FormatDuration(reconnect_delay_));
      MutexLock lock(&mu_);
      const auto deadline =
          std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(reconnect_delay_);
      while (!stopping_ && wake_.WaitUntil(&mu_, deadline)) {
      }
      if (stopping_) return 0;
    }
  }

  // From the signal thread: ends the session (and with it the ranks) and Run.
  void Stop() {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
    wake_.SignalAll();
  }

 private:
  bool stopping() {
    MutexLock lock(&mu_);
    return stopping_;
  }

  grpc::Status Session() {
    grpc::ClientContext context;
    if (!token_.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    {
      MutexLock lock(&mu_);
      if (stopping_) return grpc::Status::CANCELLED;
      context_ = &context;
    }
    std::unique_ptr<grpc::ClientReader<v1::WorkerCommand>> reader =
        stub_->WorkerSession(&context, hello_);
    // The ranks of each job, stopped (and reaped) when the job's attempt ends or the session
    // does: no rank outlives the session that started it.
    std::map<std::string, std::unique_ptr<LocalRanks>> jobs;
    v1::WorkerCommand command;
    while (reader->Read(&command)) {
      if (command.has_accepted()) {
        spdlog::info("registered with {} as {} ({} ranks; heartbeats every {} s)",
                     hello_.server_address(), command.accepted().worker_name(), hello_.max_ranks(),
                     command.accepted().heartbeat_seconds());
      } else if (command.has_start_rank()) {
        StartRank(command.start_rank(), jobs);
      } else if (command.has_stop_ranks()) {
        auto it = jobs.find(command.stop_ranks().job_id());
        if (it != jobs.end()) {
          spdlog::info("job {}: stopping its ranks here", it->first);
          it->second->Terminate();
          jobs.erase(it);
        }
      }
    }
    const grpc::Status status = reader->Finish();
    {
      MutexLock lock(&mu_);
      context_ = nullptr;
    }
    for (auto& [job_id, ranks] : jobs) {
      spdlog::info("job {}: stopping its ranks here (the session ended)", job_id);
      ranks->Terminate();
    }
    return status;
  }

  void StartRank(const v1::WorkerCommand::StartRank& start,
                 std::map<std::string, std::unique_ptr<LocalRanks>>& jobs) {
    std::unique_ptr<LocalRanks>& ranks = jobs[start.job_id()];
    if (ranks == nullptr) ranks = std::make_unique<LocalRanks>();
    std::vector<std::string> args(start.args().begin(), start.args().end());
    args.insert(args.end(), rank_flags_.begin(), rank_flags_.end());
    RankEnvironment environment;
    environment.master_addr = hello_.server_address();
    environment.master_port = start.master_port();
    environment.rank = start.rank();
    environment.world_size = start.world_size();
    environment.local_rank = static_cast<int>(ranks->pids().size());
    const std::string log =
        absl::StrCat(log_dir_, "/", start.job_id(), "-rank-", start.rank(), ".log");
    if (absl::Status started =
            ranks->Start(rank_binary_, args, RankEnvironmentVariables(environment), log);
        !started.ok()) {
      // The job's rank 0 names the rank that never joins.
      spdlog::error("job {}: rank {}: {}", start.job_id(), start.rank(),
                    std::string(started.message()));
      return;
    }
    spdlog::info("job {}: rank {} of {} started (pid {}, log {})", start.job_id(), start.rank(),
                 start.world_size(), ranks->pids().back(), log);
  }

  const std::unique_ptr<v1::Classifier::Stub> stub_;
  const v1::WorkerSessionRequest hello_;
  const std::string token_;
  const std::string rank_binary_;
  const std::vector<std::string> rank_flags_;
  const std::string log_dir_;
  const absl::Duration reconnect_delay_;

  Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  CondVar wake_;
};

std::string DefaultRankBinary() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) return "";
  const std::filesystem::path beside = self.parent_path() / "classifier-rank";
  return std::filesystem::exists(beside) ? beside.string() : "";
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "lends this host's cores to a classifier-server's distributed jobs:\n"
      "  classifier-worker --server HOST:PORT [--worker_name NAME] [--max_ranks N] ...");
  // Blocked before any thread starts, so every thread inherits the mask and only the signal
  // thread below takes them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::ParseCommandLine(argc, argv);

  const std::string server = absl::GetFlag(FLAGS_server);
  absl::StatusOr<std::string> address = ServerAddress(server);
  if (!address.ok()) {
    std::cerr << "classifier-worker: " << address.status().message() << "\n";
    return 1;
  }
  v1::WorkerSessionRequest hello;
  std::string name = absl::GetFlag(FLAGS_worker_name);
  if (name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    name = host;
  }
  hello.set_worker_name(name);
  hello.set_build_version(BuildVersion());
  const int max_ranks = absl::GetFlag(FLAGS_max_ranks);
  hello.set_max_ranks(max_ranks > 0
                          ? max_ranks
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  hello.set_server_address(*address);

  std::string rank_binary = absl::GetFlag(FLAGS_rank_binary);
  if (rank_binary.empty()) rank_binary = DefaultRankBinary();
  if (rank_binary.empty() || access(rank_binary.c_str(), X_OK) != 0) {
    std::cerr << "classifier-worker: no classifier-rank to run (" << rank_binary
              << "); give --rank_binary\n";
    return 1;
  }
  std::vector<std::string> rank_flags = {
      absl::StrCat("--data_dir=", absl::GetFlag(FLAGS_data_dir))};
  if (!absl::GetFlag(FLAGS_fashion_fallback_dir).empty()) {
    rank_flags.push_back(
        absl::StrCat("--fashion_fallback_dir=", absl::GetFlag(FLAGS_fashion_fallback_dir)));
  }
  const std::string log_dir = absl::GetFlag(FLAGS_log_dir);
  std::error_code ignored;
  std::filesystem::create_directories(log_dir, ignored);

  std::string token;
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> read = ReadFile(absl::GetFlag(FLAGS_token_file));
    if (!read.ok()) {
      std::cerr << "classifier-worker: --token_file: " << read.status().message() << "\n";
      return 1;
    }
    token = std::string(absl::StripAsciiWhitespace(*read));
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!absl::GetFlag(FLAGS_tls_ca).empty()) {
    absl::StatusOr<std::string> ca = ReadFile(absl::GetFlag(FLAGS_tls_ca));
    if (!ca.ok()) {
      std::cerr << "classifier-worker: --tls_ca: " << ca.status().message() << "\n";
      return 1;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *ca;
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  // A server that vanished (its host died, the network split) is seen within ~30 s, and the
  // ranks stop; the server's own side sees the session end the same way.
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  Worker worker(grpc::CreateCustomChannel(server, credentials, arguments), hello, token,
                rank_binary, rank_flags, log_dir, absl::GetFlag(FLAGS_reconnect_delay));
  spdlog::info("classifier-worker {} (build {}) for {} at {}; ranks: {}", name, BuildVersion(),
               server, *address, rank_binary);

  std::thread signal_thread([&worker, signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: stopping", signal);
    worker.Stop();
  });
  const int status = worker.Run();
  if (signal_thread.joinable()) {
    // Run ended without a signal (a refusal): wake the signal thread to let it go.
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
  }
  return status;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) { return classifier::Main(argc, argv); }
