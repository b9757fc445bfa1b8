#include "server/classifier_service.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "model/onnx_export.h"
#include "server/list_pages.h"
#include "server/predict_input.h"
#include "server/result_proto.h"
#include "server/rpc_log.h"
#include "server/status_util.h"
#include "server/stream_reactors.h"
#include "server/train_request.h"
#include "server/training_executor.h"

namespace classifier {
namespace {

absl::Status DrainingError() {
  return absl::UnavailableError("the server is shutting down; retry on another instance");
}

}  // namespace

ClassifierService::ClassifierService(JobManager* jobs, ModelRegistry* models,
                                     DatasetCatalog* datasets, WorkQueue* inference,
                                     Batcher* batcher, BackgroundEvaluator* evaluator,
                                     std::string device, ServiceLimits limits,
                                     TokenAuthenticator auth, Metrics* metrics,
                                     WorkerRegistry* workers)
    : jobs_(jobs),
      models_(models),
      datasets_(datasets),
      inference_(inference),
      batcher_(batcher),
      evaluator_(evaluator),
      device_(std::move(device)),
      limits_(limits),
      auth_(std::move(auth)),
      metrics_(metrics),
      workers_(workers),
      streams_(limits.max_streams_per_client) {}

absl::Status ClassifierService::Admit(const ::grpc::CallbackServerContext& context,
                                      bool read_only) const {
  if (draining_.load()) return DrainingError();
  return auth_.Check(context.client_metadata(), read_only);
}

absl::StatusOr<StreamLimiter::Slot> ClassifierService::AcquireStream(
    const ::grpc::CallbackServerContext& context) {
  const bool valid_token =
      auth_.enabled() && auth_.Check(context.client_metadata(), /*read_only=*/false).ok();
  return streams_.Acquire(StreamLimiter::ClientOf(context.peer(), valid_token));
}

::grpc::ServerWriteReactor<v1::JobEvent>* ClassifierService::Train(
    ::grpc::CallbackServerContext* context, const v1::TrainRequest* request) {
  RpcLog log("Train", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return Refuse<v1::JobEvent>(log, admitted);
  }
  // Before the job is queued: a refused stream queues nothing.
  absl::StatusOr<StreamLimiter::Slot> slot = AcquireStream(*context);
  if (!slot.ok()) return Refuse<v1::JobEvent>(log, slot.status());
  absl::StatusOr<TrainPlan> plan = PlanTraining(*request, *datasets_, device_, models_);
  if (!plan.ok()) return Refuse<v1::JobEvent>(log, plan.status());
  if (plan->world_size > limits_.max_world_size) {
    return Refuse<v1::JobEvent>(
        log, absl::FailedPreconditionError(absl::StrCat(
                 "distributed.world_size is ", plan->world_size, "; this server runs at most ",
                 limits_.max_world_size, " ranks per job (classifier-server --max_local_ranks)")));
  }
  // Stored resolved, so GetJob shows what actually runs.
  const v1::TrainRequest resolved = ResolvedRequest(*request, *plan);
  absl::StatusOr<std::shared_ptr<Job>> job = jobs_->Submit(resolved);
  if (!job.ok()) return Refuse<v1::JobEvent>(log, job.status());
  return new JobEventStream(*std::move(job), /*from_sequence=*/1, std::move(log), *std::move(slot));
}

::grpc::ServerWriteReactor<v1::JobEvent>* ClassifierService::WatchJob(
    ::grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  RpcLog log("WatchJob", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return Refuse<v1::JobEvent>(log, admitted);
  }
  absl::StatusOr<StreamLimiter::Slot> slot = AcquireStream(*context);
  if (!slot.ok()) return Refuse<v1::JobEvent>(log, slot.status());
  if (request->from_sequence() < 0) {
    return Refuse<v1::JobEvent>(
        log, absl::InvalidArgumentError(
                 absl::StrCat("from_sequence must be >= 0, got ", request->from_sequence())));
  }
  absl::StatusOr<std::shared_ptr<Job>> job = jobs_->Get(request->job_id());
  if (!job.ok()) return Refuse<v1::JobEvent>(log, job.status());
  return new JobEventStream(*std::move(job), request->from_sequence(), std::move(log),
                            *std::move(slot));
}

::grpc::ServerUnaryReactor* ClassifierService::GetJob(::grpc::CallbackServerContext* context,
                                                      const v1::GetJobRequest* request,
                                                      v1::Job* response) {
  RpcLog log("GetJob", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  absl::StatusOr<std::shared_ptr<Job>> job = jobs_->Get(request->job_id());
  if (job.ok()) *response = (*job)->Snapshot();
  return FinishUnary(context, log, job.status());
}

::grpc::ServerUnaryReactor* ClassifierService::ListJobs(::grpc::CallbackServerContext* context,
                                                        const v1::ListJobsRequest* request,
                                                        v1::ListJobsResponse* response) {
  RpcLog log("ListJobs", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  return FinishUnary(context, log, ListJobsPage(*request, jobs_->List(), absl::Now(), response));
}

::grpc::ServerUnaryReactor* ClassifierService::CancelJob(::grpc::CallbackServerContext* context,
                                                         const v1::CancelJobRequest* request,
                                                         v1::Job* response) {
  RpcLog log("CancelJob", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  absl::StatusOr<v1::Job> job = jobs_->Cancel(request->job_id());
  if (job.ok()) *response = *std::move(job);
  return FinishUnary(context, log, job.status());
}

::grpc::ServerUnaryReactor* ClassifierService::Evaluate(::grpc::CallbackServerContext* context,
                                                        const v1::EvaluateRequest* request,
                                                        v1::EvaluateResponse* response) {
  RpcLog log("Evaluate", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  inference_->Submit([this, request, response, reactor, log] {
    ::grpc::Status status = ToGrpcStatus(DoEvaluate(*request, response));
    log.Done(status);
    reactor->Finish(status);
  });
  return reactor;
}

absl::Status ClassifierService::DoEvaluate(const v1::EvaluateRequest& request,
                                           v1::EvaluateResponse* response) {
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = models_->Resolve(request.model_id());
  if (!model.ok()) return model.status();
  const std::string dataset_name =
      request.dataset().empty() ? (*model)->record.dataset : request.dataset();
  if (request.split() != v1::DATASET_SPLIT_UNSPECIFIED &&
      request.split() != v1::DATASET_SPLIT_TEST && request.split() != v1::DATASET_SPLIT_TRAIN) {
    return absl::InvalidArgumentError(
        absl::StrCat("split must be TEST or TRAIN, got ", request.split()));
  }
  const bool train_split = request.split() == v1::DATASET_SPLIT_TRAIN;
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset =
      datasets_->Load(dataset_name, train_split ? Split::kTrain : Split::kTest);
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<EvaluationResult> result = (*model)->network->Evaluate(**dataset);
  if (!result.ok()) return result.status();

  response->set_model_id((*model)->record.model_id);
  response->set_dataset(dataset_name);
  response->set_split(train_split ? v1::DATASET_SPLIT_TRAIN : v1::DATASET_SPLIT_TEST);
  WriteEvaluation(*result, response);
  return absl::OkStatus();
}

::grpc::ServerUnaryReactor* ClassifierService::Predict(::grpc::CallbackServerContext* context,
                                                       const v1::PredictRequest* request,
                                                       v1::PredictResponse* response) {
  // The hot path: a line per call would cost more than its forward pass at batch 1 (see
  // bench/README.md); --log_level=debug shows them.
  RpcLog log("Predict", context, metrics_, spdlog::level::debug);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  // What costs nothing to check is checked here, so that a bad call never queues.
  const int count = request->images_size();
  if (count == 0) {
    return FinishUnary(context, log,
                       absl::InvalidArgumentError("images is empty: send at least one image"));
  }
  if (count > limits_.max_predict_images) {
    return FinishUnary(
        context, log,
        absl::ResourceExhaustedError(
            absl::StrCat("images has ", count, " images, more than the server's limit of ",
                         limits_.max_predict_images, " (--max_predict_images); split the batch")));
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = models_->Resolve(request->model_id());
  if (!model.ok()) return FinishUnary(context, log, model.status());
  const int num_classes = (*model)->network->architecture().num_classes;
  const int side = (*model)->network->architecture().image_size;
  if (request->top_k() < 0 || request->top_k() > num_classes) {
    return FinishUnary(
        context, log,
        absl::InvalidArgumentError(absl::StrCat("top_k must be in [0, ", num_classes,
                                                "] (0 = 1), got ", request->top_k())));
  }
  bool encoded = false;
  for (int i = 0; i < count; ++i) {
    const v1::Image& image = request->images(i);
    if (absl::Status status = CheckImage(image, i, side); !status.ok()) {
      return FinishUnary(context, log, status);
    }
    encoded = encoded || image.data_case() == v1::Image::kEncoded;
  }

  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const int top_k = request->top_k() == 0 ? 1 : request->top_k();
  // Runs on a batcher thread (or a work queue thread when decoding fails).
  auto finish = [this, response, reactor, log, model = *model, count, num_classes,
                 top_k](absl::StatusOr<std::vector<float>> probabilities) {
    absl::Status status = probabilities.status();
    if (status.ok()) {
      response->set_model_id(model->record.model_id);
      WritePredictions(*probabilities, count, num_classes, top_k, response);
      if (metrics_ != nullptr) metrics_->ObservePredict(count);
    }
    ::grpc::Status grpc_status = ToGrpcStatus(status);
    log.Done(grpc_status);
    reactor->Finish(grpc_status);
  };
  if (!encoded) {
    // Raw and float pixels are converted by the batcher thread straight into its batch.
    SubmitPredict(*request, *context, *std::move(model), std::move(finish));
    return reactor;
  }
  // PNG / JPEG: decoded on the work queue first, so that decoding neither holds a gRPC thread
  // nor waits behind (or delays) the forward passes.
  inference_->Submit(
      [this, request, context, model = *std::move(model), finish = std::move(finish)]() mutable {
        SubmitPredict(*request, *context, std::move(model), std::move(finish));
      });
  return reactor;
}

void ClassifierService::SubmitPredict(
    const v1::PredictRequest& request, ::grpc::CallbackServerContext& context,
    std::shared_ptr<const LoadedModel> model,
    std::function<void(absl::StatusOr<std::vector<float>>)> finish) {
  // The images are the network's input: side x side, as its architecture says.
  const int side = model->network->architecture().image_size;
  Batcher::Call call;
  call.network = model->network;
  call.images = request.images_size();
  call.deadline = context.deadline();
  call.done = std::move(finish);
  bool encoded = false;
  for (const v1::Image& image : request.images()) {
    encoded = encoded || image.data_case() == v1::Image::kEncoded;
  }
  if (!encoded) {
    // The request outlives the call (it is freed after Finish): read it in place.
    call.fill = FillFromRequest(request, side);
    batcher_->Submit(std::move(call));
    return;
  }
  // On a work queue thread: decode every image now, hand the batcher the pixels.
  absl::StatusOr<PixelFill> fill = DecodeRequest(request, side);
  if (!fill.ok()) {
    call.done(fill.status());
    return;
  }
  call.fill = *std::move(fill);
  batcher_->Submit(std::move(call));
}

::grpc::ServerWriteReactor<v1::WeightsChunk>* ClassifierService::ExportWeights(
    ::grpc::CallbackServerContext* context, const v1::ExportWeightsRequest* request) {
  RpcLog log("ExportWeights", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return Refuse<v1::WeightsChunk>(log, admitted);
  }
  absl::StatusOr<StreamLimiter::Slot> slot = AcquireStream(*context);
  if (!slot.ok()) return Refuse<v1::WeightsChunk>(log, slot.status());
  const v1::WeightsFormat format = request->format();
  if (format != v1::WEIGHTS_FORMAT_UNSPECIFIED && format != v1::PYTORCH_STATE_DICT &&
      format != v1::ONNX) {
    return Refuse<v1::WeightsChunk>(
        log, absl::InvalidArgumentError(absl::StrCat(
                 "format ", format, " is not supported; use PYTORCH_STATE_DICT or ONNX")));
  }
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = models_->Resolve(request->model_id());
  if (!model.ok()) return Refuse<v1::WeightsChunk>(log, model.status());
  const ModelRecord& record = (*model)->record;
  std::string contents;
  std::string file_name;
  if (format == v1::ONNX) {
    // Built from the loaded network, a few tens of KB for these models.
    absl::StatusOr<std::string> onnx = ExportOnnx(*(*model)->network);
    if (!onnx.ok()) return Refuse<v1::WeightsChunk>(log, onnx.status());
    contents = *std::move(onnx);
    file_name = absl::StrCat(record.model_id, ".onnx");
  } else {
    // The registered file itself, checked against the hash recorded when it was written.
    absl::StatusOr<std::string> file = models_->ReadWeights(record);
    if (!file.ok()) return Refuse<v1::WeightsChunk>(log, file.status());
    contents = *std::move(file);
    file_name = absl::StrCat(record.model_id, ".pth");
  }
  std::string sha256 = Sha256Hex(contents);
  return new ChunkStream(std::move(contents), std::move(sha256), record.model_id,
                         std::move(file_name), std::move(log), *std::move(slot));
}

::grpc::ServerUnaryReactor* ClassifierService::ListModels(::grpc::CallbackServerContext* context,
                                                          const v1::ListModelsRequest* request,
                                                          v1::ListModelsResponse* response) {
  RpcLog log("ListModels", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  return FinishUnary(context, log,
                     ListModelsPage(
                         *request, [this](const ModelQuery& query) { return models_->List(query); },
                         models_->deployed_model_id(), absl::Now(), response));
}

::grpc::ServerReadReactor<v1::ImportWeightsRequest>* ClassifierService::ImportWeights(
    ::grpc::CallbackServerContext* context, v1::ImportWeightsResponse* response) {
  RpcLog log("ImportWeights", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    ::grpc::Status status = ToGrpcStatus(admitted);
    log.Done(status);
    return new RefusedReader<v1::ImportWeightsRequest>(status);
  }
  return new ImportStream(
      context, limits_.max_import_bytes, inference_,
      [this, response](const std::string& dataset, const std::string& bytes) {
        return DoImport(dataset, bytes, response);
      },
      std::move(log));
}

absl::Status ClassifierService::DoImport(const std::string& dataset, const std::string& bytes,
                                         v1::ImportWeightsResponse* response) {
  if (bytes.empty()) return absl::InvalidArgumentError("data: the upload is empty");
  const std::string dataset_name = DatasetOrDefault(dataset);
  if (absl::StatusOr<DatasetInfo> info = datasets_->Inspect(dataset_name); !info.ok()) {
    return info.status();
  }
  // The file's own shapes say which network it is (the tutorial's, or any architecture this
  // service trains); loading then checks every key and shape against that network.
  absl::StatusOr<Architecture> architecture = InferArchitecture(bytes);
  if (!architecture.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: not usable weights: ", architecture.status().message()));
  }
  absl::StatusOr<std::unique_ptr<TrainedModel>> network =
      TrainedModel::FromStateDictBytes(bytes, *architecture, device_);
  if (!network.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: not usable weights: ", network.status().message()));
  }
  ModelRecord record;
  record.dataset = dataset_name;
  absl::StatusOr<std::shared_ptr<const LoadedModel>> registered =
      models_->Register(*std::move(network), std::move(record));
  if (!registered.ok()) return registered.status();
  // Measured after the answer, so the registry shows how good the imported weights are without
  // making every import wait for a pass over the test split.
  evaluator_->Submit((*registered)->record.model_id, dataset_name, (*registered)->network);
  *response->mutable_model() = ToModelProto((*registered)->record);
  return absl::OkStatus();
}

::grpc::ServerUnaryReactor* ClassifierService::DeployModel(::grpc::CallbackServerContext* context,
                                                           const v1::DeployModelRequest* request,
                                                           v1::Model* response) {
  RpcLog log("DeployModel", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  absl::Status status = models_->Deploy(request->model_id());
  if (status.ok()) {
    absl::StatusOr<ModelRecord> record = models_->GetRecord(request->model_id());
    if (record.ok()) {
      *response = ToModelProto(*record);
      response->set_deployed(true);
    }
  }
  return FinishUnary(context, log, status);
}

::grpc::ServerUnaryReactor* ClassifierService::DeleteModel(::grpc::CallbackServerContext* context,
                                                           const v1::DeleteModelRequest* request,
                                                           v1::DeleteModelResponse* /*response*/) {
  RpcLog log("DeleteModel", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  return FinishUnary(context, log, models_->Delete(request->model_id()));
}

::grpc::ServerUnaryReactor* ClassifierService::RegisterDataset(
    ::grpc::CallbackServerContext* context, const v1::RegisterDatasetRequest* request,
    v1::DatasetInfo* response) {
  RpcLog log("RegisterDataset", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/false); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  // Reads every file in full: off gRPC's callback threads.
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  inference_->Submit([this, request, response, reactor, log] {
    absl::StatusOr<DatasetInfo> info = datasets_->Register(request->name(), request->path());
    if (info.ok()) {
      DatasetListing listing;
      listing.name = info->name;
      listing.path = info->path;
      listing.registered_unix_ms = info->registered_unix_ms;
      listing.info = *info;
      ToDatasetProto(listing, response);
    }
    ::grpc::Status status = ToGrpcStatus(info.status());
    log.Done(status);
    reactor->Finish(status);
  });
  return reactor;
}

::grpc::ServerUnaryReactor* ClassifierService::ListDatasets(::grpc::CallbackServerContext* context,
                                                            const v1::ListDatasetsRequest* request,
                                                            v1::ListDatasetsResponse* response) {
  RpcLog log("ListDatasets", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  const absl::Time now = absl::Now();
  absl::StatusOr<PageRequest> page = ReadListDatasetsRequest(*request, now);
  if (!page.ok()) return FinishUnary(context, log, page.status());
  // Reads headers (and label files the first time): off gRPC's callback threads.
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  inference_->Submit([this, request, page = *std::move(page), now, response, reactor, log] {
    ListDatasetsPage(*request, page, datasets_->List(), now, response);
    log.Done(::grpc::Status::OK);
    reactor->Finish(::grpc::Status::OK);
  });
  return reactor;
}

::grpc::ServerUnaryReactor* ClassifierService::GetDatasetSamples(
    ::grpc::CallbackServerContext* context, const v1::GetDatasetSamplesRequest* request,
    v1::GetDatasetSamplesResponse* response) {
  RpcLog log("GetDatasetSamples", context, metrics_);
  if (absl::Status admitted = Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  if (request->split() != v1::DATASET_SPLIT_UNSPECIFIED &&
      request->split() != v1::DATASET_SPLIT_TEST && request->split() != v1::DATASET_SPLIT_TRAIN) {
    return FinishUnary(context, log,
                       absl::InvalidArgumentError(
                           absl::StrCat("split must be TRAIN or TEST, got ", request->split())));
  }
  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // May load the split first: off gRPC's callback threads.
  inference_->Submit([this, request, response, reactor, log] {
    const std::string dataset = request->dataset().empty() ? "mnist" : request->dataset();
    const bool test = request->split() == v1::DATASET_SPLIT_TEST;
    absl::StatusOr<DatasetSamples> samples = datasets_->Sample(
        dataset, test ? Split::kTest : Split::kTrain, request->count(), request->seed());
    if (samples.ok()) {
      response->set_dataset(dataset);
      response->set_split(test ? v1::DATASET_SPLIT_TEST : v1::DATASET_SPLIT_TRAIN);
      WriteDatasetSamples(*samples, response);
    }
    ::grpc::Status status = ToGrpcStatus(samples.status());
    log.Done(status);
    reactor->Finish(status);
  });
  return reactor;
}

}  // namespace classifier
