#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/network.h"
#include "server/classifier_service.h"
#include "server/dataset_catalog.h"
#include "server/health_service.h"
#include "server/job_manager.h"
#include "server/model_registry.h"
#include "server/store.h"
#include "server/training_executor.h"
#include "server/work_queue.h"
#include "spdlog/spdlog.h"

namespace classifier {

// Declared in dependency order: members are destroyed in reverse, so the gRPC
// server goes first, then the job worker, then what they used.
struct ClassifierServer::Parts {
  ServerConfig config;
  std::string device;
  int port = 0;
  std::unique_ptr<Store> store;
  std::unique_ptr<DatasetCatalog> datasets;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<TrainingExecutor> executor;
  std::unique_ptr<WorkQueue> inference;
  std::unique_ptr<JobManager> jobs;
  std::unique_ptr<HealthService> health;
  std::unique_ptr<ClassifierService> service;
  std::unique_ptr<::grpc::Server> grpc_server;
  std::once_flag shutdown_once;
};

absl::StatusOr<std::unique_ptr<ClassifierServer>> ClassifierServer::Start(
    const ServerConfig& config) {
  absl::StatusOr<std::string> device = ResolveDevice(config.device);
  if (!device.ok()) return device.status();
  SetComputeThreads(config.compute_threads);

  auto parts = std::make_unique<Parts>();
  parts->config = config;
  parts->device = *device;
  absl::StatusOr<std::unique_ptr<Store>> store =
      Store::Open(absl::StrCat(config.state_dir, "/classifier.db"));
  if (!store.ok()) return store.status();
  parts->store = *std::move(store);
  absl::StatusOr<std::vector<StoredJob>> jobs = parts->store->LoadJobs();
  if (!jobs.ok()) return jobs.status();
  parts->datasets = std::make_unique<DatasetCatalog>(config.data_dir, config.fashion_fallback_dir);
  parts->models = std::make_unique<ModelRegistry>(absl::StrCat(config.state_dir, "/models"),
                                                  parts->store.get(), *device);
  if (absl::Status loaded = parts->models->LoadFromStore(); !loaded.ok()) return loaded;
  parts->executor = std::make_unique<TrainingExecutor>(
      parts->datasets.get(), parts->models.get(), parts->store.get(),
      absl::StrCat(config.state_dir, "/checkpoints"), *device);
  parts->inference = std::make_unique<WorkQueue>(config.inference_threads);
  parts->jobs = std::make_unique<JobManager>(parts->executor.get(), parts->store.get(),
                                             config.max_queued_jobs, *std::move(jobs));
  parts->health =
      std::make_unique<HealthService>(std::vector<std::string>{"classifier.v1.Classifier"});
  parts->service = std::make_unique<ClassifierService>(
      parts->jobs.get(), parts->models.get(), parts->datasets.get(), parts->inference.get(),
      *device, ServiceLimits{config.max_predict_images});

  ::grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  ::grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen_address, ::grpc::InsecureServerCredentials(),
                           &parts->port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.SetMaxSendMessageSize(config.max_message_bytes);
  builder.RegisterService(parts->service.get());
  builder.RegisterService(parts->health.get());
  parts->grpc_server = builder.BuildAndStart();
  if (!parts->grpc_server || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen_address,
                                               ": the address is malformed or the port is in use"));
  }
  parts->health->SetServing(true);
  spdlog::info(
      "classifier-server listening on {} (port {}), device {}, data "
      "{}, state {}",
      config.listen_address, parts->port, *device, config.data_dir, config.state_dir);
  return std::unique_ptr<ClassifierServer>(new ClassifierServer(std::move(parts)));
}

ClassifierServer::ClassifierServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

ClassifierServer::~ClassifierServer() { Shutdown(); }

int ClassifierServer::port() const { return parts_->port; }

const std::string& ClassifierServer::device() const { return parts_->device; }

void ClassifierServer::Shutdown() {
  std::call_once(parts_->shutdown_once, [this] {
    spdlog::info("shutting down: health NOT_SERVING, refusing new calls");
    parts_->health->SetServing(false);
    parts_->service->StartDraining();
    // Ends every job with a final event, so Train and WatchJob streams can
    // finish.
    parts_->jobs->Shutdown("the server is shutting down");
    parts_->grpc_server->Shutdown(std::chrono::system_clock::now() +
                                  absl::ToChronoSeconds(parts_->config.drain_timeout));
    parts_->grpc_server->Wait();
    spdlog::info("shutdown complete");
  });
}

}  // namespace classifier
