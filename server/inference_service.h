// The Open Inference Protocol (KServe v2) over gRPC, on the same port as classifier.v1:
// inference.GRPCInferenceService translated to the model registry and the dynamic batcher, so a
// v2 client (Triton's, KServe's, MLServer's) classifies images as Predict does, through the same
// batcher, limits, token, metrics and drain.
//
// Models are the registry's: a model's name is its model id, and `classifier` names the deployed
// one. Each has one version, "1". One input, `input`: FP32 [N, 1, side, side] grey values in
// [0, 1], or UINT8 [N, side, side] (0-255); in raw_input_contents or in the typed contents. Two
// outputs: `probabilities` FP32 [N, classes] and `label` INT64 [N] (the most probable class);
// both unless the request names some. The answer's outputs are raw (raw_output_contents) when
// the request's input was, else typed, as Triton does (its Python client reads raw outputs only).
#ifndef CLASSIFIER_SERVER_INFERENCE_SERVICE_H_
#define CLASSIFIER_SERVER_INFERENCE_SERVICE_H_

#include <string>

#include "absl/status/statusor.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/batcher.h"
#include "server/classifier_service.h"
#include "server/metrics.h"
#include "server/model_registry.h"

namespace classifier {

// The name that stands for the deployed model.
inline constexpr char kDeployedModelName[] = "classifier";

struct InferenceLimits {
  // Images in one ModelInfer call (the batch dimension); more is RESOURCE_EXHAUSTED. Also the
  // max_batch_size Triton's ModelConfig shows.
  int max_images = 10000;
  // What ModelConfig's dynamic_batching shows: the batcher's own settings.
  int batcher_max_images = 256;
  int64_t batcher_max_delay_microseconds = 1000;
};

class InferenceService : public inference::GRPCInferenceService::CallbackService {
 public:
  // Every pointer must outlive the service. `gate` admits each call (its drain and token, see
  // ClassifierService::Admit); ServerLive and ServerReady need no token, as health checks.
  InferenceService(const ClassifierService* gate, ModelRegistry* models, Batcher* batcher,
                   InferenceLimits limits, Metrics* metrics = nullptr);

  ::grpc::ServerUnaryReactor* ServerLive(::grpc::CallbackServerContext* context,
                                         const inference::ServerLiveRequest* request,
                                         inference::ServerLiveResponse* response) override;
  ::grpc::ServerUnaryReactor* ServerReady(::grpc::CallbackServerContext* context,
                                          const inference::ServerReadyRequest* request,
                                          inference::ServerReadyResponse* response) override;
  ::grpc::ServerUnaryReactor* ModelReady(::grpc::CallbackServerContext* context,
                                         const inference::ModelReadyRequest* request,
                                         inference::ModelReadyResponse* response) override;
  ::grpc::ServerUnaryReactor* ServerMetadata(::grpc::CallbackServerContext* context,
                                             const inference::ServerMetadataRequest* request,
                                             inference::ServerMetadataResponse* response) override;
  ::grpc::ServerUnaryReactor* ModelMetadata(::grpc::CallbackServerContext* context,
                                            const inference::ModelMetadataRequest* request,
                                            inference::ModelMetadataResponse* response) override;
  ::grpc::ServerUnaryReactor* ModelInfer(::grpc::CallbackServerContext* context,
                                         const inference::ModelInferRequest* request,
                                         inference::ModelInferResponse* response) override;
  ::grpc::ServerUnaryReactor* ModelConfig(::grpc::CallbackServerContext* context,
                                          const inference::ModelConfigRequest* request,
                                          inference::ModelConfigResponse* response) override;

 private:
  // The model `name` (at `version`) stands for: INVALID_ARGUMENT for an empty name, NOT_FOUND
  // for an unknown model or version, naming the field.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> Resolve(const std::string& name,
                                                             const std::string& version,
                                                             const char* name_field,
                                                             const char* version_field);
  // Admits the call (see ClassifierService::Admit), then Resolve.
  absl::StatusOr<std::shared_ptr<const LoadedModel>> AdmitAndResolve(
      const ::grpc::CallbackServerContext& context, const std::string& name,
      const std::string& version, const char* name_field, const char* version_field);

  const ClassifierService* const gate_;
  ModelRegistry* const models_;
  Batcher* const batcher_;
  const InferenceLimits limits_;
  Metrics* const metrics_;
};

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_INFERENCE_SERVICE_H_
