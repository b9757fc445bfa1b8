// classifier.v1.Classifier: translates between protobuf and the job queue, the
// model registry and the model library. Handlers never block gRPC's callback
// threads: training runs on the job worker, Predict's forward passes on the
// dynamic batcher's threads, decoding PNG / JPEG and evaluation on the
// inference work queue.
#ifndef CLASSIFIER_SERVER_CLASSIFIER_SERVICE_H_
#define CLASSIFIER_SERVER_CLASSIFIER_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "classifier/v1/classifier.grpc.pb.h"
#include "server/auth.h"
#include "server/background_evaluator.h"
#include "server/batcher.h"
#include "server/dataset_catalog.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/stream_limiter.h"
#include "server/work_queue.h"

namespace classifier {

class WorkerRegistry;

struct ServiceLimits {
  // Images in one Predict request; more is RESOURCE_EXHAUSTED.
  int max_predict_images = 10000;
  // Bytes in one ImportWeights upload; more is RESOURCE_EXHAUSTED.
  int64_t max_import_bytes = 256 << 20;
  // Streaming calls (Train, WatchJob, ExportWeights) one client may hold open at once; more is
  // RESOURCE_EXHAUSTED (see StreamLimiter). 0 = no limit.
  int max_streams_per_client = 0;
  // Ranks one distributed job may run on; more is FAILED_PRECONDITION.
  int max_world_size = 1;
};

class ClassifierService : public v1::Classifier::CallbackService {
 public:
  // Every pointer must outlive the service. Predict computes on `batcher` (decoding PNG / JPEG
  // images on `inference` first); Evaluate and ImportWeights run on `inference`, and an imported
  // model's test figures are measured by `evaluator` after the import answers. `auth` guards
  // every RPC of this service (the default lets every call through); GetJob, ListJobs, WatchJob,
  // ListModels, Predict, Evaluate, ListDatasets and GetDatasetSamples are the read-only ones it
  // may open (and ListWorkers). With `metrics`, every RPC and Predict is counted there. With
  // `workers`, classifier-workers register through WorkerSession (without, it is
  // FAILED_PRECONDITION).
  ClassifierService(JobManager* jobs, ModelRegistry* models, DatasetCatalog* datasets,
                    WorkQueue* inference, Batcher* batcher, BackgroundEvaluator* evaluator,
                    std::string device, ServiceLimits limits, TokenAuthenticator auth = {},
                    Metrics* metrics = nullptr, WorkerRegistry* workers = nullptr);

  // From now on every new call is refused with UNAVAILABLE; calls in flight go
  // on.
  void StartDraining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }

  // Whether a new call may start: UNAVAILABLE while draining, UNAUTHENTICATED without the
  // token (see TokenAuthenticator). The one rule for every service on the port (the Open
  // Inference Protocol's too).
  absl::Status Admit(const ::grpc::CallbackServerContext& context, bool read_only) const;

  ::grpc::ServerWriteReactor<v1::JobEvent>* Train(::grpc::CallbackServerContext* context,
                                                  const v1::TrainRequest* request) override;
  ::grpc::ServerWriteReactor<v1::JobEvent>* WatchJob(::grpc::CallbackServerContext* context,
                                                     const v1::WatchJobRequest* request) override;
  ::grpc::ServerUnaryReactor* GetJob(::grpc::CallbackServerContext* context,
                                     const v1::GetJobRequest* request, v1::Job* response) override;
  ::grpc::ServerUnaryReactor* ListJobs(::grpc::CallbackServerContext* context,
                                       const v1::ListJobsRequest* request,
                                       v1::ListJobsResponse* response) override;
  ::grpc::ServerUnaryReactor* CancelJob(::grpc::CallbackServerContext* context,
                                        const v1::CancelJobRequest* request,
                                        v1::Job* response) override;
  ::grpc::ServerUnaryReactor* Evaluate(::grpc::CallbackServerContext* context,
                                       const v1::EvaluateRequest* request,
                                       v1::EvaluateResponse* response) override;
  ::grpc::ServerUnaryReactor* Predict(::grpc::CallbackServerContext* context,
                                      const v1::PredictRequest* request,
                                      v1::PredictResponse* response) override;
  ::grpc::ServerWriteReactor<v1::WeightsChunk>* ExportWeights(
      ::grpc::CallbackServerContext* context, const v1::ExportWeightsRequest* request) override;
  ::grpc::ServerUnaryReactor* ListModels(::grpc::CallbackServerContext* context,
                                         const v1::ListModelsRequest* request,
                                         v1::ListModelsResponse* response) override;
  ::grpc::ServerReadReactor<v1::ImportWeightsRequest>* ImportWeights(
      ::grpc::CallbackServerContext* context, v1::ImportWeightsResponse* response) override;
  ::grpc::ServerUnaryReactor* DeployModel(::grpc::CallbackServerContext* context,
                                          const v1::DeployModelRequest* request,
                                          v1::Model* response) override;
  ::grpc::ServerUnaryReactor* DeleteModel(::grpc::CallbackServerContext* context,
                                          const v1::DeleteModelRequest* request,
                                          v1::DeleteModelResponse* response) override;

  ::grpc::ServerUnaryReactor* RegisterDataset(::grpc::CallbackServerContext* context,
                                              const v1::RegisterDatasetRequest* request,
                                              v1::DatasetInfo* response) override;
  ::grpc::ServerUnaryReactor* ListDatasets(::grpc::CallbackServerContext* context,
                                           const v1::ListDatasetsRequest* request,
                                           v1::ListDatasetsResponse* response) override;
  ::grpc::ServerUnaryReactor* GetDatasetSamples(::grpc::CallbackServerContext* context,
                                                const v1::GetDatasetSamplesRequest* request,
                                                v1::GetDatasetSamplesResponse* response) override;
  // classifier_service_workers.cc
  ::grpc::ServerWriteReactor<v1::WorkerCommand>* WorkerSession(
      ::grpc::CallbackServerContext* context, const v1::WorkerSessionRequest* request) override;
  ::grpc::ServerUnaryReactor* ListWorkers(::grpc::CallbackServerContext* context,
                                          const v1::ListWorkersRequest* request,
                                          v1::ListWorkersResponse* response) override;

 private:
  // A place for one more streaming call of the calling client (see StreamLimiter).
  absl::StatusOr<StreamLimiter::Slot> AcquireStream(const ::grpc::CallbackServerContext& context);
  absl::Status DoEvaluate(const v1::EvaluateRequest& request, v1::EvaluateResponse* response);
  // Registers uploaded weights (see ImportWeights); runs on the inference queue.
  absl::Status DoImport(const std::string& dataset, const std::string& bytes,
                        v1::ImportWeightsResponse* response);
  // Hands a validated Predict call to the batcher; `finish` answers it.
  void SubmitPredict(const v1::PredictRequest& request, ::grpc::CallbackServerContext& context,
                     std::shared_ptr<const LoadedModel> model,
                     std::function<void(absl::StatusOr<std::vector<float>>)> finish);

  // Constant after construction.
  JobManager* const jobs_;
  ModelRegistry* const models_;
  DatasetCatalog* const datasets_;
  WorkQueue* const inference_;
  Batcher* const batcher_;
  BackgroundEvaluator* const evaluator_;
  const std::string device_;
  const ServiceLimits limits_;
  const TokenAuthenticator auth_;
  Metrics* const metrics_;
  WorkerRegistry* const workers_;

  std::atomic<bool> draining_{false};
  StreamLimiter streams_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_CLASSIFIER_SERVICE_H_
