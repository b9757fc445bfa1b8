// The whole service in one object: what main() runs and what the integration
// tests start on an ephemeral loopback port.
#ifndef CLASSIFIER_SERVER_SERVER_H_
#define CLASSIFIER_SERVER_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/dataset_catalog.h"
#include "server/job_manager.h"

namespace classifier {

class Batcher;

struct ServerConfig {
  // host:port; port 0 picks a free one (see ClassifierServer::port()).
  std::string listen_address = "127.0.0.1:50051";
  std::string data_dir = "data";
  // Falls back here for fashion-mnist when data_dir has no fashion-mnist/
  // folder.
  std::string fashion_fallback_dir = kDefaultFashionFallbackDir;
  std::string state_dir = "state";
  // Where jobs, events, model records and settings live (Store::Open): empty = SQLite at
  // state_dir/classifier.db; `sqlite:PATH`; or a PostgreSQL URI (postgresql://...). Weight and
  // checkpoint files stay under state_dir.
  std::string store;
  // With a shared store (PostgreSQL): how long a replica's claim on its jobs lasts unless it
  // renews it (it does every quarter of this). A replica that dies loses its jobs to the others
  // this long after its last renewal; they resume from the last checkpoint.
  absl::Duration job_lease = absl::Seconds(10);
  // How long a job that paused (the disk or the database could not take its writes) waits before
  // it is tried again from its last checkpoint.
  absl::Duration paused_job_retry = kDefaultPausedJobRetry;
  std::string device = "auto";
  // The thread budget (README "Thread budget"). LibTorch intra-op threads of the training job:
  // the process default, which the job's thread takes up.
  int training_threads = 1;
  // The older name of training_threads: when > 0 it wins.
  int compute_threads = 0;
  // Threads running Predict's forward passes (the dynamic batcher's), each with one LibTorch
  // intra-op thread of its own whatever training_threads is; as many again decode PNG / JPEG
  // images and run Evaluate and ImportWeights.
  int inference_threads = 1;
  // The dynamic batcher (server/batcher.h): images in one forward pass at most (bigger calls
  // are cut into slices of this size), and how long a batch may wait for more calls while
  // calls are being coalesced.
  int batch_max_images = 256;
  absl::Duration batch_max_delay = absl::Microseconds(1000);
  // How long an inference thread that finds no call polls for one before it sleeps (see
  // BatcherOptions::idle_poll): lower latency for steady callers, paid in CPU; 0 = never.
  absl::Duration batch_idle_poll = absl::Microseconds(250);
  int max_queued_jobs = 64;
  // Megabytes of weights (their files' sizes) of the networks kept in memory: models not used
  // lately are read again from their files when next used; the deployed one always stays.
  int64_t model_cache_mb = 256;
  // Finished jobs older than this (since they ended) are deleted with their events, checkpoints
  // and rank logs; zero keeps every job. Queued and running jobs are never deleted.
  absl::Duration job_retention = absl::ZeroDuration();
  // Keep a finished job's last checkpoint until the job is deleted (else it goes when the job
  // ends; an interrupted job always keeps its own, to resume).
  bool keep_checkpoints = false;
  // Every job writes its curves as TensorBoard event files under state_dir/runs/<job_id>.
  bool tensorboard = true;
  int max_predict_images = 10000;
  // gRPC message size limit, both directions.
  int max_message_bytes = 64 << 20;
  // How long Shutdown waits for calls in flight before cancelling them.
  absl::Duration drain_timeout = absl::Seconds(10);
  // How long a stopping server goes on taking new calls after it reports NOT_SERVING (health,
  // the load balancer agent), so a load balancer that checks more often than this has stopped
  // sending it calls before it refuses them. 0: it refuses at once.
  absl::Duration drain_notice = absl::ZeroDuration();
  // host:port of HAProxy's agent check (server/load_balancer_agent.h): "up ready" while serving,
  // "drain" once stopping; empty serves none.
  std::string lb_agent_listen;

  // TLS on the gRPC port: PEM files of the server's certificate chain and private key (both or
  // neither). With tls_client_ca too, every client must present a certificate signed by that CA
  // (mutual TLS). All empty = plaintext.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // A file holding the bearer token every classifier RPC must carry (empty = no token auth);
  // see server/auth.h. With auth_allow_read_only, the read-only RPCs need no token.
  std::string auth_token_file;
  bool auth_allow_read_only = false;
  // host:port of the Prometheus /metrics endpoint; port 0 picks a free one (see
  // ClassifierServer::metrics_port()); empty serves no metrics.
  std::string metrics_listen = "127.0.0.1:9464";
  // host:port of the web dashboard and its JSON API (web/web_server.h), with the gRPC port's TLS
  // files and token; port 0 picks a free one (see ClassifierServer::http_port()); empty serves
  // no web page.
  std::string http_listen = "127.0.0.1:8080";

  // HTTP/2 keepalive. The server pings an idle connection every keepalive_time and drops it
  // when no answer comes within keepalive_timeout (so dead peers behind NATs and load balancers
  // free their streams). A client that pings more often than keepalive_min_ping_interval, or
  // without calls open when keepalive_permit_without_calls is false, is sent GOAWAY
  // (too_many_pings) after gRPC's two strikes.
  absl::Duration keepalive_time = absl::Hours(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration keepalive_min_ping_interval = absl::Seconds(10);
  bool keepalive_permit_without_calls = false;
  // Streaming calls (Train, WatchJob, ExportWeights) one client (host, or the bearer token)
  // may hold open at once; more is RESOURCE_EXHAUSTED. 0 = no limit.
  int max_streams_per_client = 16;
  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls of any kind open at once on one connection
  // (more wait in the client). 0 = gRPC's default (no limit).
  int max_concurrent_streams = 256;
  // Distributed jobs (TrainRequest.distributed): the most ranks one job may run on, all but
  // rank 0 as local processes (0 = this machine's core count), and the classifier-rank binary
  // that runs them (empty = the one beside this server's binary, or the build tree's).
  int max_local_ranks = 0;
  std::string rank_binary;
  // How long rank 0 waits for the other ranks to join (a rank that never does fails the job,
  // named), and for one gradient sum.
  absl::Duration rank_join_timeout = absl::Seconds(120);
  absl::Duration rank_collective_timeout = absl::Seconds(300);
};

class ClassifierServer {
 public:
  // Binds the port and starts serving. INVALID_ARGUMENT / FAILED_PRECONDITION
  // for a bad config (device, address), UNAVAILABLE when the port cannot be
  // bound.
  static absl::StatusOr<std::unique_ptr<ClassifierServer>> Start(const ServerConfig& config);

  // Shuts down (see Shutdown).
  ~ClassifierServer();
  ClassifierServer(const ClassifierServer&) = delete;
  ClassifierServer& operator=(const ClassifierServer&) = delete;

  int port() const;
  // The bound port of the metrics endpoint; 0 when metrics are off.
  int metrics_port() const;
  // The bound port of the web dashboard; 0 when it is off.
  int http_port() const;
  const std::string& device() const;
  // The dynamic batcher that computes Predict (tests pause it: Batcher::PauseBatches).
  Batcher& batcher();

  // Health goes NOT_SERVING and new calls are refused; queued and running jobs
  // are cancelled (each ends with a final event, so their streams finish);
  // calls in flight get up to drain_timeout to finish. Idempotent; thread-safe.
  void Shutdown();

  struct Parts;

 private:
  explicit ClassifierServer(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_SERVER_H_
