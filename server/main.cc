// classifier-server: trains and serves image classifiers over gRPC.
#include <malloc.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dataset_catalog.h"
#include "server/log_format.h"
#include "server/server.h"
#include "server/store.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve gRPC on (port 0 picks a free port, printed at start)"
          " (env CLASSIFIER_LISTEN)");
ABSL_FLAG(std::string, data_dir, "data",
          "directory holding mnist/ (and optionally fashion-mnist/) with the "
          "official IDX "
          "file names; see scripts/fetch-data.sh"
          " (env CLASSIFIER_DATA_DIR)");
ABSL_FLAG(std::string, fashion_fallback_dir, classifier::kDefaultFashionFallbackDir,
          "where fashion-mnist is read when data_dir has no fashion-mnist/ "
          "(Debian's dataset-fashion-mnist package)"
          " (env CLASSIFIER_FASHION_FALLBACK_DIR)");
ABSL_FLAG(std::string, state_dir, "state",
          "directory for models and other state"
          " (env CLASSIFIER_STATE_DIR)");
ABSL_FLAG(std::string, store, "",
          "the database: empty = SQLite at STATE_DIR/classifier.db, sqlite:PATH, or a PostgreSQL "
          "URI (postgresql://USER@HOST:PORT/DATABASE) that several replicas may share"
          " (env CLASSIFIER_STORE)");
ABSL_FLAG(absl::Duration, job_lease, classifier::ServerConfig().job_lease,
          "with a shared --store: how long a replica's claim on its jobs lasts unless renewed "
          "(every quarter of it); a replica that dies loses its jobs to the others this long "
          "after its last renewal (at least 1s)"
          " (env CLASSIFIER_JOB_LEASE)");
ABSL_FLAG(absl::Duration, paused_job_retry, classifier::ServerConfig().paused_job_retry,
          "how long a job that paused (its checkpoint, model or events could not be written: "
          "the disk or the database is full or gone) waits before it is tried again from its last "
          "checkpoint (100ms to 1h)"
          " (env CLASSIFIER_PAUSED_JOB_RETRY)");
ABSL_FLAG(std::string, device, "auto",
          "auto, cpu, cuda or cuda:N"
          " (env CLASSIFIER_DEVICE)");
ABSL_FLAG(int, training_threads, 1,
          "LibTorch intra-op threads of the training job; with --inference_threads, the "
          "server's thread budget (the defaults, 1 + 1, fit 2 cores)"
          " (env CLASSIFIER_TRAINING_THREADS)");
ABSL_FLAG(int, threads, 0,
          "older name of --training_threads; wins when > 0"
          " (env CLASSIFIER_THREADS)");
ABSL_FLAG(int, inference_threads, 1,
          "threads running Predict's forward passes (the dynamic batcher), each with 1 LibTorch "
          "intra-op thread of its own, apart from the training job's; as many again decode "
          "PNG/JPEG and run Evaluate"
          " (env CLASSIFIER_INFERENCE_THREADS)");
ABSL_FLAG(int, batch_max_images, 256,
          "dynamic batching: images in one forward pass at most; Predict calls for the same "
          "model are coalesced up to this, bigger calls are cut into slices of this size"
          " (env CLASSIFIER_BATCH_MAX_IMAGES)");
ABSL_FLAG(int, batch_max_delay_us, 1000,
          "dynamic batching: microseconds a batch smaller than --batch_max_images may wait for "
          "more calls, only while calls are being coalesced (a lone caller never waits); 0 = "
          "never wait"
          " (env CLASSIFIER_BATCH_MAX_DELAY_US)");
ABSL_FLAG(int, batch_idle_poll_us, 250,
          "dynamic batching: microseconds an inference thread that finds no call keeps polling "
          "for one before it sleeps (at most 1000; never while a training job runs): a steady "
          "caller's next call then starts "
          "without a thread wake-up (measured: Predict p50 -19 to -50 us for one caller), paid "
          "with up to that much CPU after each batch; 0 = sleep at once"
          " (env CLASSIFIER_BATCH_IDLE_POLL_US)");
ABSL_FLAG(int, max_queued_jobs, 64,
          "jobs that may wait in the queue"
          " (env CLASSIFIER_MAX_QUEUED_JOBS)");
ABSL_FLAG(int64_t, model_cache_mb, classifier::ServerConfig().model_cache_mb,
          "megabytes of model weights kept in memory: models not used lately are read again "
          "from their files when next used (their SHA-256 checked); the deployed model always "
          "stays; must hold the largest model"
          " (env CLASSIFIER_MODEL_CACHE_MB)");
ABSL_FLAG(absl::Duration, job_retention, classifier::ServerConfig().job_retention,
          "finished jobs are deleted this long after they ended, with their events, checkpoints "
          "and rank logs (e.g. 720h); 0 keeps every job; queued and running jobs are never "
          "deleted"
          " (env CLASSIFIER_JOB_RETENTION)");
ABSL_FLAG(bool, keep_checkpoints, classifier::ServerConfig().keep_checkpoints,
          "keep a finished job's last checkpoint until the job is deleted (by default it goes "
          "when the job ends; an interrupted job always keeps its own, to resume)"
          " (env CLASSIFIER_KEEP_CHECKPOINTS)");
ABSL_FLAG(bool, tensorboard, classifier::ServerConfig().tensorboard,
          "every job writes its per-epoch curves (loss, accuracy, learning rate, images/s) as "
          "TensorBoard event files under <state_dir>/runs/<job_id>[/trial-N], for "
          "`tensorboard --logdir <state_dir>/runs`"
          " (env CLASSIFIER_TENSORBOARD)");
ABSL_FLAG(int, max_predict_images, 10000,
          "images allowed in one Predict request"
          " (env CLASSIFIER_MAX_PREDICT_IMAGES)");
ABSL_FLAG(int, max_message_bytes, 64 << 20,
          "largest gRPC message accepted or sent"
          " (env CLASSIFIER_MAX_MESSAGE_BYTES)");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "how long shutdown waits for calls in flight"
          " (env CLASSIFIER_DRAIN_TIMEOUT)");
ABSL_FLAG(absl::Duration, drain_notice, classifier::ServerConfig().drain_notice,
          "how long a stopping server goes on taking new calls after it reports NOT_SERVING "
          "(health, --lb_agent_listen), so a load balancer checking more often stops sending "
          "first; 0 refuses at once (at most 1m)"
          " (env CLASSIFIER_DRAIN_NOTICE)");
ABSL_FLAG(std::string, lb_agent_listen, classifier::ServerConfig().lb_agent_listen,
          "host:port of an HAProxy agent check: each connection reads \"up ready\" while the "
          "server is serving, \"drain\" once it stops (agent-check agent-port PORT); empty = off"
          " (env CLASSIFIER_LB_AGENT_LISTEN)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the gRPC port; with --tls_key, the port speaks TLS only"
          " (env CLASSIFIER_TLS_CERT)");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key of --tls_cert"
          " (env CLASSIFIER_TLS_KEY)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: clients must present a certificate it signed (mutual TLS)"
          " (env CLASSIFIER_TLS_CLIENT_CA)");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding a bearer token every classifier RPC must carry as `authorization: "
          "Bearer <token>` (health and reflection stay open)"
          " (env CLASSIFIER_AUTH_TOKEN_FILE)");
ABSL_FLAG(bool, auth_allow_read_only, false,
          "with --auth_token_file: GetJob, ListJobs, WatchJob, ListModels, Predict and Evaluate "
          "need no token"
          " (env CLASSIFIER_AUTH_ALLOW_READ_ONLY)");

ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "host:port serving Prometheus metrics at /metrics (port 0 picks a free port; empty "
          "serves none)"
          " (env CLASSIFIER_METRICS_LISTEN)");
ABSL_FLAG(std::string, http_listen, classifier::ServerConfig().http_listen,
          "host:port serving the web dashboard and its JSON API under /api/v1/ (HTTPS with "
          "--tls_cert; the same token as gRPC; port 0 picks a free port; empty serves none)"
          " (env CLASSIFIER_HTTP_LISTEN)");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Hours(2),
          "how often the server pings an idle connection to find dead peers"
          " (env CLASSIFIER_KEEPALIVE_TIME)");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(20),
          "how long a keepalive ping may go unanswered before the connection is closed"
          " (env CLASSIFIER_KEEPALIVE_TIMEOUT)");
ABSL_FLAG(absl::Duration, keepalive_min_ping_interval, absl::Seconds(10),
          "the shortest interval between a client's pings that the server accepts; a client "
          "pinging more often is sent GOAWAY (too_many_pings)"
          " (env CLASSIFIER_KEEPALIVE_MIN_PING_INTERVAL)");
ABSL_FLAG(bool, keepalive_permit_without_calls, false,
          "accept client keepalive pings on connections with no call open"
          " (env CLASSIFIER_KEEPALIVE_PERMIT_WITHOUT_CALLS)");
ABSL_FLAG(int, max_streams_per_client, 16,
          "streaming calls (Train, WatchJob, ExportWeights) one client (host, or the bearer "
          "token) may hold open at once; more is RESOURCE_EXHAUSTED; 0 = no limit"
          " (env CLASSIFIER_MAX_STREAMS_PER_CLIENT)");
ABSL_FLAG(int, max_local_ranks, 0,
          "the most ranks a distributed job (TrainRequest.distributed.world_size) may run on: "
          "rank 0 in this process, the others as local classifier-rank processes; 0 = the "
          "number of cores"
          " (env CLASSIFIER_MAX_LOCAL_RANKS)");
ABSL_FLAG(std::string, rank_binary, "",
          "the classifier-rank binary for distributed jobs; empty = the one beside this binary "
          "(or the build tree's distributed/classifier-rank)"
          " (env CLASSIFIER_RANK_BINARY)");
ABSL_FLAG(absl::Duration, rank_join_timeout, absl::Seconds(120),
          "how long a distributed job waits for its ranks to join; a rank that does not fails "
          "the job, named"
          " (env CLASSIFIER_RANK_JOIN_TIMEOUT)");
ABSL_FLAG(absl::Duration, rank_collective_timeout, absl::Seconds(300),
          "how long one gradient sum of a distributed job waits for a rank that stopped "
          "answering (a rank that died is seen at once)"
          " (env CLASSIFIER_RANK_COLLECTIVE_TIMEOUT)");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "calls of any kind open at once on one HTTP/2 connection (more wait in the client); "
          "0 = no limit"
          " (env CLASSIFIER_MAX_CONCURRENT_STREAMS)");
ABSL_FLAG(std::string, log_format, "text",
          "text, or json: one JSON object per line (time, level, logger, message) for log "
          "shippers"
          " (env CLASSIFIER_LOG_FORMAT)");

ABSL_FLAG(std::string, log_level, "info",
          "debug, info, warn or error; successful Predict calls are logged at debug (at many "
          "thousand calls a second a line each would cost more than their forward passes; "
          "classifier_rpcs_total counts them)"
          " (env CLASSIFIER_LOG_LEVEL)");

namespace {

constexpr char kEnvironmentPrefix[] = "CLASSIFIER_";

// The flags of this file are the server's; --help lists them (absl's default looks for a file
// named after the program).
bool IsServerFlagFile(absl::string_view path) { return absl::EndsWith(path, "server/main.cc"); }

// The flags this file defines (not those of gRPC or the libraries), by name.
std::vector<absl::CommandLineFlag*> ServerFlags() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (IsServerFlagFile(flag->Filename())) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return flags;
}

std::string EnvironmentName(const absl::CommandLineFlag& flag) {
  return absl::StrCat(kEnvironmentPrefix, absl::AsciiStrToUpper(flag.Name()));
}

// Sets each flag from CLASSIFIER_<FLAG> where that is set. Runs before the command line is
// parsed, so a flag given there wins. A malformed value is an error that names the variable.
bool ApplyEnvironment() {
  for (absl::CommandLineFlag* flag : ServerFlags()) {
    const std::string variable = EnvironmentName(*flag);
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      spdlog::error("invalid {}: {}", variable, error);
      return false;
    }
  }
  return true;
}

// Flags whose value is itself a secret (a token, a password): logged masked. Paths to secret
// files (--auth_token_file, --tls_key) are shown; their contents never are.
bool IsSecret(absl::string_view name) {
  if (absl::EndsWith(name, "_file")) return false;
  return absl::StrContains(name, "token") || absl::StrContains(name, "password") ||
         absl::StrContains(name, "secret");
}

void LogEffectiveConfiguration() {
  std::vector<std::string> settings;
  for (const absl::CommandLineFlag* flag : ServerFlags()) {
    std::string value = flag->CurrentValue();
    if (IsSecret(flag->Name()) && !value.empty()) value = "****";
    if (flag->Name() == "store") value = classifier::StoreLocationForLogs(value);
    settings.push_back(absl::StrCat(flag->Name(), "=", value));
  }
  spdlog::info("configuration: {}", absl::StrJoin(settings, " "));
}

// glibc's malloc adapts its mmap threshold to the sizes freed so far and hands memory above
// the trim threshold back to the kernel. LibTorch's activations (MBs per forward pass or
// training step) then cost mmap / munmap, page faults and TLB shootdowns on every pass or not,
// depending on history: in-process forward throughput at one batch size varied 2x between
// runs (bench/README.md), and a training job's munmaps (the mmap lock, TLB shootdowns) can stall
// the Predict threads of the same process. Fixed thresholds keep such buffers in the heap, reused
// from pass to pass; memory freed after a peak stays with the process.
void PinMallocThresholds() {
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest on 64-bit.
  constexpr int kTrimThreshold = 512 << 20;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 ||
      mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1) {
    spdlog::warn("mallopt failed: malloc keeps its adaptive thresholds");
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock detector on: every
  // lock of every gRPC-internal mutex then updates a global lock graph (measured: 3-4% of the
  // server's CPU under 64 Predict callers). Lock order is this program's to get right, not a
  // production server's to check at run time.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "Trains and serves image-classification CNNs over gRPC.\n"
      "  classifier-server [--listen=127.0.0.1:50051] [--data_dir=data] "
      "[--state_dir=state]\n"
      "Every flag can also be set from the environment as CLASSIFIER_<FLAG IN UPPER CASE>\n"
      "(e.g. CLASSIFIER_LISTEN, CLASSIFIER_MAX_PREDICT_IMAGES); the command line wins.");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = IsServerFlagFile;
  usage_config.contains_helpshort_flags = IsServerFlagFile;
  absl::SetFlagsUsageConfig(usage_config);
  if (!ApplyEnvironment()) return EXIT_FAILURE;
  absl::ParseCommandLine(argc, argv);
  if (absl::Status logging = classifier::ConfigureLogging(absl::GetFlag(FLAGS_log_format));
      !logging.ok()) {
    spdlog::error("{}", std::string(logging.message()));
    return EXIT_FAILURE;
  }
  // Once the log format is set, so that its warning (where malloc is not glibc's, as under
  // ASan) is a JSON line too; before the first large allocation.
  PinMallocThresholds();
  const std::string log_level = absl::GetFlag(FLAGS_log_level);
  const spdlog::level::level_enum level = spdlog::level::from_str(log_level);
  if (log_level != "debug" && log_level != "info" && log_level != "warn" && log_level != "error") {
    spdlog::error("--log_level must be debug, info, warn or error, got \"{}\"", log_level);
    return EXIT_FAILURE;
  }
  spdlog::set_level(level);
  LogEffectiveConfiguration();

  // Block the shutdown signals in every thread (threads inherit the mask), then
  // wait for them here: no work happens in a signal handler.
  sigset_t shutdown_signals;
  sigemptyset(&shutdown_signals);
  sigaddset(&shutdown_signals, SIGINT);
  sigaddset(&shutdown_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &shutdown_signals, nullptr);

  classifier::ServerConfig config;
  config.listen_address = absl::GetFlag(FLAGS_listen);
  config.data_dir = absl::GetFlag(FLAGS_data_dir);
  config.fashion_fallback_dir = absl::GetFlag(FLAGS_fashion_fallback_dir);
  config.state_dir = absl::GetFlag(FLAGS_state_dir);
  config.store = absl::GetFlag(FLAGS_store);
  config.job_lease = absl::GetFlag(FLAGS_job_lease);
  config.paused_job_retry = absl::GetFlag(FLAGS_paused_job_retry);
  config.device = absl::GetFlag(FLAGS_device);
  config.training_threads = absl::GetFlag(FLAGS_training_threads);
  config.compute_threads = absl::GetFlag(FLAGS_threads);
  config.inference_threads = absl::GetFlag(FLAGS_inference_threads);
  config.batch_max_images = absl::GetFlag(FLAGS_batch_max_images);
  config.batch_max_delay = absl::Microseconds(absl::GetFlag(FLAGS_batch_max_delay_us));
  config.batch_idle_poll = absl::Microseconds(absl::GetFlag(FLAGS_batch_idle_poll_us));
  config.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  config.max_predict_images = absl::GetFlag(FLAGS_max_predict_images);
  config.model_cache_mb = absl::GetFlag(FLAGS_model_cache_mb);
  config.job_retention = absl::GetFlag(FLAGS_job_retention);
  config.keep_checkpoints = absl::GetFlag(FLAGS_keep_checkpoints);
  config.tensorboard = absl::GetFlag(FLAGS_tensorboard);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  config.drain_notice = absl::GetFlag(FLAGS_drain_notice);
  config.lb_agent_listen = absl::GetFlag(FLAGS_lb_agent_listen);
  config.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  config.tls_key = absl::GetFlag(FLAGS_tls_key);
  config.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  config.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  config.auth_allow_read_only = absl::GetFlag(FLAGS_auth_allow_read_only);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.http_listen = absl::GetFlag(FLAGS_http_listen);
  config.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  config.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  config.keepalive_min_ping_interval = absl::GetFlag(FLAGS_keepalive_min_ping_interval);
  config.keepalive_permit_without_calls = absl::GetFlag(FLAGS_keepalive_permit_without_calls);
  config.max_streams_per_client = absl::GetFlag(FLAGS_max_streams_per_client);
  config.max_local_ranks = absl::GetFlag(FLAGS_max_local_ranks);
  config.rank_binary = absl::GetFlag(FLAGS_rank_binary);
  config.rank_join_timeout = absl::GetFlag(FLAGS_rank_join_timeout);
  config.rank_collective_timeout = absl::GetFlag(FLAGS_rank_collective_timeout);
  config.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);

  auto server = classifier::ClassifierServer::Start(config);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return EXIT_FAILURE;
  }
  int signal_number = 0;
  sigwait(&shutdown_signals, &signal_number);
  spdlog::info("received {}", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
  (*server)->Shutdown();
  return EXIT_SUCCESS;
}
