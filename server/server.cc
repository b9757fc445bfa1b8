#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "model/compute_threads.h"
#include "model/device.h"
#include "server/auth.h"
#include "server/background_evaluator.h"
#include "server/batcher.h"
#include "server/classifier_service.h"
#include "server/dataset_catalog.h"
#include "server/health_service.h"
#include "server/housekeeper.h"
#include "server/inference_service.h"
#include "server/job_manager.h"
#include "server/load_balancer_agent.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/replica_follower.h"
#include "server/store.h"
#include "server/training_executor.h"
#include "server/work_queue.h"
#include "server/worker_registry.h"
#include "spdlog/spdlog.h"
#include "web/web_server.h"

namespace classifier {
namespace {

// The credentials of the gRPC port: TLS (mutual with a client CA) or plaintext.
absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> PortCredentials(
    const ServerConfig& config) {
  if (config.tls_cert.empty() && config.tls_key.empty()) {
    if (!config.tls_client_ca.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    return ::grpc::InsecureServerCredentials();
  }
  if (config.tls_cert.empty() || config.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both");
  }
  auto read = [](const std::string& path, const char* what) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> pem = ReadWholeFile(path);
    if (!pem.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read the ", what, " ", path, ": ", pem.status().message()));
    }
    return pem;
  };
  ::grpc::SslServerCredentialsOptions options;
  ::grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  absl::StatusOr<std::string> cert = read(config.tls_cert, "TLS certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = read(config.tls_key, "TLS private key");
  if (!key.ok()) return key.status();
  pair.cert_chain = *std::move(cert);
  pair.private_key = *std::move(key);
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!config.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca = read(config.tls_client_ca, "client CA");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return ::grpc::SslServerCredentials(options);
}

// INVALID_ARGUMENT naming the flag when a limit or keepalive setting is out of range.
absl::Status CheckTransportSettings(const ServerConfig& config) {
  const auto positive = [](absl::Duration value, const char* flag) -> absl::Status {
    if (value > absl::ZeroDuration() && value < absl::Hours(24 * 365)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be positive and under a year, got ", absl::FormatDuration(value)));
  };
  for (auto [value, flag] :
       {std::pair{config.keepalive_time, "keepalive_time"},
        std::pair{config.keepalive_timeout, "keepalive_timeout"},
        std::pair{config.keepalive_min_ping_interval, "keepalive_min_ping_interval"},
        std::pair{config.rank_join_timeout, "rank_join_timeout"},
        std::pair{config.rank_collective_timeout, "rank_collective_timeout"}}) {
    if (absl::Status status = positive(value, flag); !status.ok()) return status;
  }
  for (auto [value, flag] : {std::pair{config.max_streams_per_client, "max_streams_per_client"},
                             std::pair{config.max_concurrent_streams, "max_concurrent_streams"}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, " must be >= 0 (0 = no limit), got ", value));
    }
  }
  if (config.max_local_ranks < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_local_ranks must be >= 0 (0 = the number of cores), got ", config.max_local_ranks));
  }
  if (config.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_message_bytes must be positive, got ", config.max_message_bytes));
  }
  return absl::OkStatus();
}

int Milliseconds(absl::Duration duration) {
  return static_cast<int>(absl::ToInt64Milliseconds(duration));
}

// Whether `address` (host:port) only accepts connections from this machine.
bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") || absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:") || absl::StartsWith(address, "ipv4:127.") ||
         absl::StartsWith(address, "unix:");
}

// INVALID_ARGUMENT naming the flag when a thread or batching setting is out of range.
absl::Status CheckThreadBudget(const ServerConfig& config) {
  if (config.training_threads < 1 || config.compute_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--training_threads must be >= 1, got ", config.training_threads));
  }
  if (config.inference_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--inference_threads must be >= 1, got ", config.inference_threads));
  }
  if (config.batch_max_images < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch_max_images must be >= 1, got ", config.batch_max_images));
  }
  if (config.batch_max_delay < absl::ZeroDuration() || config.batch_max_delay > absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch_max_delay_us must be between 0 and 1000000, got ",
                     absl::ToInt64Microseconds(config.batch_max_delay)));
  }
  if (config.batch_idle_poll < absl::ZeroDuration() ||
      config.batch_idle_poll > absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch_idle_poll_us must be between 0 and 1000, got ",
                     absl::ToInt64Microseconds(config.batch_idle_poll)));
  }
  return absl::OkStatus();
}

absl::Status CheckStorageSettings(const ServerConfig& config) {
  if (config.model_cache_mb < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--model_cache_mb must be >= 1 (it must hold at least one model), got ",
                     config.model_cache_mb));
  }
  if (config.drain_notice < absl::ZeroDuration() || config.drain_notice > absl::Minutes(1)) {
    return absl::InvalidArgumentError(absl::StrCat("--drain_notice must be between 0 and 1m, got ",
                                                   absl::FormatDuration(config.drain_notice)));
  }
  if (config.job_lease < absl::Seconds(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--job_lease must be at least 1s (a shorter lease is lost to one slow "
                     "database round trip, and the job moves to another replica), got ",
                     absl::FormatDuration(config.job_lease)));
  }
  if (config.paused_job_retry < absl::Milliseconds(100) ||
      config.paused_job_retry > absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--paused_job_retry must be between 100ms and 1h, got ",
                     absl::FormatDuration(config.paused_job_retry)));
  }
  if (config.job_retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--job_retention must be 0 (keep every job) or positive, got ",
                     absl::FormatDuration(config.job_retention)));
  }
  return absl::OkStatus();
}

// Imported models waiting for their test figures (BackgroundEvaluator): each holds its network,
// so the bound is also one on memory.
constexpr int kMaxPendingImportEvaluations = 64;

// How often a classifier-worker's session gets a heartbeat: both sides see a dead peer within a
// few of these.
constexpr absl::Duration kWorkerHeartbeat = absl::Seconds(5);

}  // namespace

// Declared in dependency order: members are destroyed in reverse, so the gRPC
// server goes first, then the job worker, then what they used.
struct ClassifierServer::Parts {
  // First, so removed last: present while this server runs on its state folder.
  std::unique_ptr<RunMarker> running;
  ServerConfig config;
  std::string device;
  int port = 0;
  // Null when metrics are off.
  std::unique_ptr<Metrics> metrics;
  std::unique_ptr<Store> store;
  std::unique_ptr<DatasetCatalog> datasets;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<BackgroundEvaluator> evaluator;
  // The classifier-workers registered now; the executor reserves their ranks.
  std::unique_ptr<WorkerRegistry> workers;
  std::unique_ptr<TrainingExecutor> executor;
  std::unique_ptr<WorkQueue> inference;
  std::unique_ptr<Batcher> batcher;
  std::unique_ptr<JobManager> jobs;
  std::unique_ptr<Housekeeper> housekeeper;
  // Null unless the store is shared with other replicas.
  std::unique_ptr<ReplicaFollower> follower;
  std::unique_ptr<HealthService> health;
  // Null unless --lb_agent_listen; answers from `health`.
  std::unique_ptr<LoadBalancerAgent> lb_agent;
  std::unique_ptr<ClassifierService> service;
  // The Open Inference Protocol, admitted by `service` (its drain and token).
  std::unique_ptr<InferenceService> inference_service;
  std::unique_ptr<::grpc::Server> grpc_server;
  // Null unless --http_listen; calls `grpc_server` in-process, so it goes before it.
  std::unique_ptr<WebServer> web;
  std::once_flag shutdown_once;
};

namespace {

// What distributed jobs may use: the ranks per job and how the executor starts them.
struct LocalRankPlan {
  int max_world_size = 1;
  LocalRankOptions options;
};

// This server's name among the replicas sharing a store: kept in its state directory
// (STATE/replica_id), so a replica that restarts on the same disk is the same replica and
// resumes its own jobs. Made once, at random.
absl::StatusOr<std::string> ReplicaId(const std::string& state_dir) {
  const std::string path = absl::StrCat(state_dir, "/replica_id");
  if (absl::StatusOr<std::string> kept = ReadWholeFile(path); kept.ok() && !kept->empty()) {
    return std::string(absl::StripAsciiWhitespace(*kept));
  }
  std::mt19937_64 random(std::random_device{}());
  const std::string id = absl::StrFormat("replica-%012x", random() & 0xffffffffffffULL);
  if (absl::Status written = WriteFileAtomically(path, id + "\n"); !written.ok()) return written;
  return id;
}

LocalRankPlan PlanLocalRanks(const ServerConfig& config, int training_threads) {
  LocalRankPlan plan;
  plan.max_world_size = config.max_local_ranks > 0
                            ? config.max_local_ranks
                            : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  plan.options.rank_binary = config.rank_binary;
  if (plan.options.rank_binary.empty()) {
    // Installed side by side, or this build tree's server/ and distributed/.
    std::error_code error;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
    for (const std::filesystem::path& candidate :
         {self.parent_path() / "classifier-rank",
          self.parent_path().parent_path() / "distributed" / "classifier-rank"}) {
      if (!error && std::filesystem::exists(candidate)) {
        plan.options.rank_binary = candidate.string();
        break;
      }
    }
  }
  plan.options.data_dir = config.data_dir;
  plan.options.fashion_fallback_dir = config.fashion_fallback_dir;
  plan.options.threads = training_threads;
  plan.options.log_dir = absl::StrCat(config.state_dir, "/ranks");
  // The ranks take whole seconds; anything positive is at least one.
  plan.options.join_timeout_seconds =
      static_cast<int>(std::max<int64_t>(1, absl::ToInt64Seconds(config.rank_join_timeout)));
  plan.options.collective_timeout_seconds =
      static_cast<int>(std::max<int64_t>(1, absl::ToInt64Seconds(config.rank_collective_timeout)));
  return plan;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClassifierServer>> ClassifierServer::Start(
    const ServerConfig& config) {
  if (absl::Status settings = CheckTransportSettings(config); !settings.ok()) return settings;
  absl::StatusOr<std::string> device = ResolveDevice(config.device);
  if (!device.ok()) return device.status();
  if (absl::Status status = WarmUpDevice(*device); !status.ok()) return status;
  if (absl::Status budget = CheckThreadBudget(config); !budget.ok()) return budget;
  if (absl::Status storage = CheckStorageSettings(config); !storage.ok()) return storage;
  // The process default, which the training job's thread takes up; inference threads set their
  // own (model/compute_threads.h).
  const int training_threads =
      config.compute_threads > 0 ? config.compute_threads : config.training_threads;
  SetComputeThreads(training_threads);
  spdlog::info(
      "thread budget: training {} intra-op thread(s), inference {} thread(s) of 1; batcher: up "
      "to {} images per forward pass, waits up to {} us while coalescing, polls {} us when idle",
      training_threads, config.inference_threads, config.batch_max_images,
      absl::ToInt64Microseconds(config.batch_max_delay),
      absl::ToInt64Microseconds(config.batch_idle_poll));

  auto parts = std::make_unique<Parts>();
  parts->config = config;
  parts->device = *device;
  if (!config.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<Metrics>> metrics = Metrics::Start(config.metrics_listen);
    if (!metrics.ok()) return metrics.status();
    parts->metrics = *std::move(metrics);
    spdlog::info("serving Prometheus metrics on {} (port {})", config.metrics_listen,
                 parts->metrics->port());
  }
  // Before the store opens, so a crash at any point of the start is seen by the next one.
  std::error_code ignored;
  std::filesystem::create_directories(config.state_dir, ignored);
  absl::StatusOr<std::unique_ptr<RunMarker>> running =
      RunMarker::Create(absl::StrCat(config.state_dir, "/server.running"));
  if (!running.ok()) return running.status();
  parts->running = *std::move(running);
  absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(
      config.store.empty() ? absl::StrCat(config.state_dir, "/classifier.db") : config.store);
  if (!store.ok()) return store.status();
  parts->store = *std::move(store);
  ReplicaIdentity replica;
  if (parts->store->shared()) {
    absl::StatusOr<std::string> id = ReplicaId(config.state_dir);
    if (!id.ok()) return id.status();
    replica = ReplicaIdentity{*std::move(id), config.job_lease};
    parts->store->FenceJobWrites(replica.id);
    spdlog::info("replica {} of the shared store {} (job leases of {})", replica.id,
                 StoreLocationForLogs(config.store), absl::FormatDuration(replica.lease));
    // Before the jobs are read: those still this replica's stay so (no other replica may claim
    // one between the read and the first renewal), and those another took over read as theirs.
    absl::StatusOr<JobLeaseRenewal> renewed =
        parts->store->RenewJobLeases(replica.id, replica.lease);
    if (!renewed.ok()) return renewed.status();
  }
  absl::StatusOr<std::vector<StoredJob>> jobs = parts->store->LoadJobs();
  if (!jobs.ok()) return jobs.status();
  parts->datasets = std::make_unique<DatasetCatalog>(config.data_dir, config.fashion_fallback_dir,
                                                     parts->store.get());
  if (absl::Status loaded = parts->datasets->LoadRegistered(); !loaded.ok()) return loaded;
  parts->models =
      std::make_unique<ModelRegistry>(absl::StrCat(config.state_dir, "/models"), parts->store.get(),
                                      *device, config.model_cache_mb << 20, parts->metrics.get());
  if (absl::Status loaded = parts->models->LoadFromStore(); !loaded.ok()) return loaded;
  if (!parts->running->previous_run_stopped_cleanly()) {
    // What a crash cut short, before anything of this process writes there. Only then, and
    // only what the crashed runs wrote: a clean restart pays nothing for it.
    spdlog::warn("the last server on {} did not stop cleanly: checking what it left",
                 config.state_dir);
    if (absl::Status checked = parts->store->CheckIntegrity(); !checked.ok()) return checked;
    absl::StatusOr<int> leftovers =
        parts->models->RemoveLeftoverFiles(*parts->running->unclean_since());
    if (!leftovers.ok()) return leftovers.status();
    absl::StatusOr<int> checkpoint_leftovers =
        RemoveTemporaryFiles(absl::StrCat(config.state_dir, "/checkpoints"));
    if (!checkpoint_leftovers.ok()) return checkpoint_leftovers.status();
    spdlog::info("removed {} files it left half-written or unrecorded",
                 *leftovers + *checkpoint_leftovers);
  }
  parts->evaluator = std::make_unique<BackgroundEvaluator>(
      parts->datasets.get(), parts->models.get(), kMaxPendingImportEvaluations);
  LocalRankPlan local_ranks = PlanLocalRanks(config, training_threads);
  parts->workers = std::make_unique<WorkerRegistry>(kWorkerHeartbeat);
  local_ranks.options.workers = parts->workers.get();
  parts->executor = std::make_unique<TrainingExecutor>(
      parts->datasets.get(), parts->models.get(), parts->store.get(),
      CheckpointPolicy{absl::StrCat(config.state_dir, "/checkpoints"), config.keep_checkpoints},
      *device, parts->metrics.get(), local_ranks.options,
      TensorBoardPolicy{config.tensorboard ? absl::StrCat(config.state_dir, "/runs") : ""});
  parts->inference =
      std::make_unique<WorkQueue>(config.inference_threads, [] { SetThreadComputeThreads(1); });
  BatcherOptions batching;
  batching.max_images = config.batch_max_images;
  batching.max_delay = config.batch_max_delay;
  batching.idle_poll = config.batch_idle_poll;
  batching.threads = config.inference_threads;
  batching.compute_threads = 1;
  parts->batcher = std::make_unique<Batcher>(batching, parts->metrics.get());
  // Idle inference threads poll only while no job trains (Batcher::SetIdlePolling). The batcher
  // outlives the manager (declared before it).
  parts->jobs = std::make_unique<JobManager>(
      parts->executor.get(), parts->store.get(), config.max_queued_jobs, *std::move(jobs),
      parts->metrics.get(),
      [batcher = parts->batcher.get()](bool training) { batcher->SetIdlePolling(!training); },
      replica, config.paused_job_retry);
  parts->housekeeper =
      std::make_unique<Housekeeper>(parts->jobs.get(), parts->store.get(), parts->models.get(),
                                    parts->metrics.get(), config.job_retention);
  if (parts->store->shared()) {
    parts->follower = std::make_unique<ReplicaFollower>(parts->models.get(), parts->jobs.get());
  }
  parts->health =
      std::make_unique<HealthService>(std::vector<std::string>{"classifier.v1.Classifier"});
  TokenAuthenticator auth;
  if (!config.auth_token_file.empty()) {
    absl::StatusOr<TokenAuthenticator> from_file =
        TokenAuthenticator::FromFile(config.auth_token_file, config.auth_allow_read_only);
    if (!from_file.ok()) return from_file.status();
    auth = *std::move(from_file);
  }
  absl::StatusOr<std::shared_ptr<::grpc::ServerCredentials>> credentials = PortCredentials(config);
  if (!credentials.ok()) return credentials.status();
  const bool tls = !config.tls_cert.empty();
  const bool auth_enabled = auth.enabled();
  if (!IsLoopback(config.listen_address) && !tls && !auth.enabled()) {
    spdlog::warn(
        "listening on {}, reachable from other machines, without TLS or a token: anyone who "
        "reaches the port can train, deploy and delete models (see --tls_cert, "
        "--auth_token_file)",
        config.listen_address);
  }
  ServiceLimits limits;
  limits.max_predict_images = config.max_predict_images;
  limits.max_streams_per_client = config.max_streams_per_client;
  limits.max_world_size = local_ranks.max_world_size;
  parts->service = std::make_unique<ClassifierService>(
      parts->jobs.get(), parts->models.get(), parts->datasets.get(), parts->inference.get(),
      parts->batcher.get(), parts->evaluator.get(), *device, limits, std::move(auth),
      parts->metrics.get(), parts->workers.get());
  InferenceLimits inference_limits;
  inference_limits.max_images = config.max_predict_images;
  inference_limits.batcher_max_images = batching.max_images;
  inference_limits.batcher_max_delay_microseconds = absl::ToInt64Microseconds(batching.max_delay);
  parts->inference_service = std::make_unique<InferenceService>(
      parts->service.get(), parts->models.get(), parts->batcher.get(), inference_limits,
      parts->metrics.get());

  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen_address, *credentials, &parts->port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Milliseconds(config.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Milliseconds(config.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Milliseconds(config.keepalive_min_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             config.keepalive_permit_without_calls ? 1 : 0);
  if (config.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.max_concurrent_streams);
  }
  builder.RegisterService(parts->service.get());
  builder.RegisterService(parts->inference_service.get());
  builder.RegisterService(parts->health.get());
  parts->grpc_server = builder.BuildAndStart();
  if (!parts->grpc_server || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen_address,
                                               ": the address is malformed or the port is in use"));
  }
  if (!config.http_listen.empty()) {
    WebServerOptions web;
    web.listen_address = config.http_listen;
    web.tls_cert = config.tls_cert;
    web.tls_key = config.tls_key;
    web.tls_client_ca = config.tls_client_ca;
    web.max_body_bytes = static_cast<size_t>(config.max_message_bytes);
    ::grpc::ChannelArguments arguments;
    arguments.SetMaxReceiveMessageSize(config.max_message_bytes);
    arguments.SetMaxSendMessageSize(config.max_message_bytes);
    absl::StatusOr<std::unique_ptr<WebServer>> started =
        WebServer::Start(web, parts->grpc_server->InProcessChannel(arguments));
    if (!started.ok()) return started.status();
    parts->web = *std::move(started);
    spdlog::info("serving the web dashboard on {}://{} (port {})", tls ? "https" : "http",
                 config.http_listen, parts->web->port());
    if (!IsLoopback(config.http_listen) && !tls && !auth_enabled) {
      spdlog::warn(
          "the web dashboard on {} is reachable from other machines without TLS or a token: "
          "anyone who reaches it can cancel jobs and deploy models",
          config.http_listen);
    }
  }
  if (!config.lb_agent_listen.empty()) {
    absl::StatusOr<std::unique_ptr<LoadBalancerAgent>> agent = LoadBalancerAgent::Start(
        config.lb_agent_listen, [health = parts->health.get()] { return health->serving(); });
    if (!agent.ok()) return agent.status();
    parts->lb_agent = *std::move(agent);
    spdlog::info("load balancer agent on {} (port {})", config.lb_agent_listen,
                 parts->lb_agent->port());
  }
  parts->health->SetServing(true);
  spdlog::info(
      "classifier-server listening on {} (port {}), device {}, data "
      "{}, state {}, {}, {}",
      config.listen_address, parts->port, *device, config.data_dir, config.state_dir,
      tls ? (config.tls_client_ca.empty() ? "TLS" : "mutual TLS") : "plaintext",
      config.auth_token_file.empty()
          ? "no token auth"
          : (config.auth_allow_read_only ? "token auth (read-only RPCs open)" : "token auth"));
  return std::unique_ptr<ClassifierServer>(new ClassifierServer(std::move(parts)));
}

ClassifierServer::ClassifierServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

ClassifierServer::~ClassifierServer() { Shutdown(); }

int ClassifierServer::port() const { return parts_->port; }

int ClassifierServer::metrics_port() const { return parts_->metrics ? parts_->metrics->port() : 0; }

int ClassifierServer::http_port() const { return parts_->web ? parts_->web->port() : 0; }

const std::string& ClassifierServer::device() const { return parts_->device; }

Batcher& ClassifierServer::batcher() { return *parts_->batcher; }

void ClassifierServer::Shutdown() {
  std::call_once(parts_->shutdown_once, [this] {
    parts_->health->SetServing(false);
    if (parts_->config.drain_notice > absl::ZeroDuration()) {
      // Load balancers see NOT_SERVING (or the agent's "drain") and stop sending first.
      spdlog::info("shutting down: health NOT_SERVING; new calls are still taken for {}",
                   absl::FormatDuration(parts_->config.drain_notice));
      absl::SleepFor(parts_->config.drain_notice);
    }
    spdlog::info("shutting down: health NOT_SERVING, refusing new calls");
    parts_->service->StartDraining();
    // Ends every job with a final event, so Train and WatchJob streams can
    // finish.
    parts_->jobs->Shutdown("the server is shutting down");
    // The pages' event streams have had their jobs' last events; the rest end here, before the
    // gRPC server waits for its calls (theirs among them).
    if (parts_->web) parts_->web->Stop();
    // The jobs' ranks on workers were told to stop as their jobs ended; the sessions end now
    // (the workers register again when the server is back).
    parts_->workers->CloseAll();
    parts_->grpc_server->Shutdown(std::chrono::system_clock::now() +
                                  absl::ToChronoSeconds(parts_->config.drain_timeout));
    parts_->grpc_server->Wait();
    spdlog::info("shutdown complete");
  });
}

}  // namespace classifier
