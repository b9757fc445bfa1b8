#include "server/inference_service.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/image.h"
#include "server/rpc_log.h"
#include "server/status_util.h"
#include "spdlog/spdlog.h"

namespace classifier {
namespace {

// Every model's one version.
constexpr char kVersion[] = "1";
// What ServerMetadata reports: the generation of the API this server speaks (classifier.v1).
constexpr char kServerVersion[] = "1";
constexpr char kInputName[] = "input";
constexpr char kProbabilities[] = "probabilities";
constexpr char kLabel[] = "label";
// Triton's name for a TorchScript / LibTorch model.
constexpr char kPlatform[] = "pytorch_libtorch";

// Raw contents are little-endian by the protocol; so is every machine this builds for.
static_assert(sizeof(float) == 4, "FP32 is 4 bytes");

template <typename Shape>
std::string ShapeText(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::vector<int64_t> Fp32Shape(int side) { return {-1, 1, side, side}; }
std::vector<int64_t> Uint8Shape(int side) { return {-1, side, side}; }

// What ModelInfer's one input holds, checked against the model before the call queues.
struct InputTensor {
  bool fp32 = false;  // Else UINT8.
  int64_t images = 0;
  const std::string* raw = nullptr;                          // raw_input_contents[0], or
  const inference::InferTensorContents* contents = nullptr;  // the typed contents.
};

absl::StatusOr<InputTensor> CheckInput(const inference::ModelInferRequest& request, int side,
                                       int max_images) {
  const std::string accepted =
      absl::StrCat("FP32 ", ShapeText(Fp32Shape(side)), " or UINT8 ", ShapeText(Uint8Shape(side)));
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("inputs has ", request.inputs_size(),
                                                   " tensors; the model takes one, '", kInputName,
                                                   "' (", accepted, ")"));
  }
  const inference::ModelInferRequest::InferInputTensor& input = request.inputs(0);
  if (input.name() != kInputName) {
    return absl::InvalidArgumentError(absl::StrCat("inputs[0].name is '", input.name(),
                                                   "'; the model's input is '", kInputName, "'"));
  }
  InputTensor tensor;
  std::vector<int64_t> expected;
  if (input.datatype() == "FP32") {
    tensor.fp32 = true;
    expected = Fp32Shape(side);
  } else if (input.datatype() == "UINT8") {
    expected = Uint8Shape(side);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("input '", kInputName, "': datatype '",
                                                   input.datatype(), "' is not accepted; send ",
                                                   accepted));
  }
  bool shape_matches = input.shape_size() == static_cast<int>(expected.size());
  for (size_t i = 1; shape_matches && i < expected.size(); ++i) {
    shape_matches = input.shape(static_cast<int>(i)) == expected[i];
  }
  if (!shape_matches) {
    return absl::InvalidArgumentError(absl::StrCat("input '", kInputName, "': shape ",
                                                   ShapeText(input.shape()), " does not match ",
                                                   input.datatype(), " ", ShapeText(expected)));
  }
  tensor.images = input.shape(0);
  if (tensor.images < 1) {
    return absl::InvalidArgumentError(absl::StrCat("input '", kInputName, "': shape ",
                                                   ShapeText(input.shape()),
                                                   " has no images; send at least one"));
  }
  if (tensor.images > max_images) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "input '", kInputName, "' has ", tensor.images, " images, more than the server's limit of ",
        max_images, " (--max_predict_images); split the batch"));
  }
  const int64_t elements = tensor.images * side * side;
  if (request.raw_input_contents_size() > 0) {
    if (request.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "raw_input_contents has ", request.raw_input_contents_size(), " entries for 1 input"));
    }
    if (input.has_contents()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", kInputName,
                       "' has both contents and raw_input_contents[0]; send one of them"));
    }
    tensor.raw = &request.raw_input_contents(0);
    const int64_t want = elements * (tensor.fp32 ? 4 : 1);
    if (static_cast<int64_t>(tensor.raw->size()) != want) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", kInputName, "': raw_input_contents[0] has ", tensor.raw->size(),
          " bytes; shape ", ShapeText(input.shape()), " of ", input.datatype(), " needs ", want));
    }
    return tensor;
  }
  tensor.contents = &input.contents();
  const int given =
      tensor.fp32 ? tensor.contents->fp32_contents_size() : tensor.contents->uint_contents_size();
  if (given != elements) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", kInputName, "': contents.", tensor.fp32 ? "fp32_contents" : "uint_contents",
        " has ", given, " values; shape ", ShapeText(input.shape()), " needs ", elements));
  }
  return tensor;
}

// Writes images [first, first + count) of the checked input as grey values in [0, 1]; a value
// out of range is INVALID_ARGUMENT naming its element.
absl::Status FillPixels(const InputTensor& tensor, int side, int64_t first, int64_t count,
                        float* out) {
  const int64_t begin = first * side * side;
  const int64_t n = count * side * side;
  const char* field = tensor.raw != nullptr ? "raw_input_contents[0]"
                      : tensor.fp32         ? "contents.fp32_contents"
                                            : "contents.uint_contents";
  if (tensor.fp32) {
    if (tensor.raw != nullptr) {
      std::memcpy(out, tensor.raw->data() + begin * 4, n * 4);
    } else {
      std::copy_n(tensor.contents->fp32_contents().begin() + begin, n, out);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (!(out[i] >= 0.0f && out[i] <= 1.0f)) {  // Also catches NaN.
        return absl::InvalidArgumentError(absl::StrCat("input '", kInputName, "': ", field,
                                                       " element ", begin + i, " is ", out[i],
                                                       ", want a value in [0, 1]"));
      }
    }
    return absl::OkStatus();
  }
  for (int64_t i = 0; i < n; ++i) {
    uint32_t value;
    if (tensor.raw != nullptr) {
      value = static_cast<unsigned char>((*tensor.raw)[begin + i]);
    } else {
      value = tensor.contents->uint_contents(static_cast<int>(begin + i));
      if (value > 255) {
        return absl::InvalidArgumentError(absl::StrCat("input '", kInputName, "': ", field,
                                                       " element ", begin + i, " is ", value,
                                                       ", want a value in [0, 255]"));
      }
    }
    out[i] = PixelToUnit(static_cast<uint8_t>(value));
  }
  return absl::OkStatus();
}

// The outputs the request asks for, in its order (every output when it names none).
absl::StatusOr<std::vector<std::string>> RequestedOutputs(
    const inference::ModelInferRequest& request) {
  if (request.outputs_size() == 0) return std::vector<std::string>{kProbabilities, kLabel};
  std::vector<std::string> names;
  for (int i = 0; i < request.outputs_size(); ++i) {
    const std::string& name = request.outputs(i).name();
    if (name != kProbabilities && name != kLabel) {
      return absl::InvalidArgumentError(absl::StrCat("outputs[", i, "].name is '", name,
                                                     "'; the model's outputs are '", kProbabilities,
                                                     "' and '", kLabel, "'"));
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

void WriteOutputs(const std::vector<float>& probabilities, int64_t images, int classes, bool raw,
                  const std::vector<std::string>& names, inference::ModelInferResponse* response) {
  for (const std::string& name : names) {
    inference::ModelInferResponse::InferOutputTensor* output = response->add_outputs();
    output->set_name(name);
    if (name == kProbabilities) {
      output->set_datatype("FP32");
      output->add_shape(images);
      output->add_shape(classes);
      if (raw) {
        response->add_raw_output_contents()->assign(
            reinterpret_cast<const char*>(probabilities.data()), probabilities.size() * 4);
      } else {
        output->mutable_contents()->mutable_fp32_contents()->Add(probabilities.begin(),
                                                                 probabilities.end());
      }
      continue;
    }
    output->set_datatype("INT64");
    output->add_shape(images);
    std::vector<int64_t> labels(images);
    for (int64_t i = 0; i < images; ++i) {
      const float* row = probabilities.data() + i * classes;
      labels[i] = std::max_element(row, row + classes) - row;
    }
    if (raw) {
      response->add_raw_output_contents()->assign(reinterpret_cast<const char*>(labels.data()),
                                                  labels.size() * sizeof(int64_t));
    } else {
      output->mutable_contents()->mutable_int64_contents()->Add(labels.begin(), labels.end());
    }
  }
}

void DescribeTensor(const std::string& name, const std::string& datatype,
                    const std::vector<int64_t>& shape,
                    inference::ModelMetadataResponse::TensorMetadata* out) {
  out->set_name(name);
  out->set_datatype(datatype);
  for (const int64_t dimension : shape) out->add_shape(dimension);
}

}  // namespace

InferenceService::InferenceService(const ClassifierService* gate, ModelRegistry* models,
                                   Batcher* batcher, InferenceLimits limits, Metrics* metrics)
    : gate_(gate), models_(models), batcher_(batcher), limits_(limits), metrics_(metrics) {}

absl::StatusOr<std::shared_ptr<const LoadedModel>> InferenceService::Resolve(
    const std::string& name, const std::string& version, const char* name_field,
    const char* version_field) {
  if (name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name_field, " is empty: name a model id, or '",
                                                   kDeployedModelName, "' for the deployed one"));
  }
  if (!version.empty() && version != kVersion) {
    return absl::NotFoundError(absl::StrCat(version_field, " '", version, "' of model '", name,
                                            "' does not exist: each model has one version, '",
                                            kVersion, "'"));
  }
  // The registry's empty id is the deployed model (or, with none deployed, the newest).
  return models_->Resolve(name == kDeployedModelName ? std::string() : name);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> InferenceService::AdmitAndResolve(
    const ::grpc::CallbackServerContext& context, const std::string& name,
    const std::string& version, const char* name_field, const char* version_field) {
  if (absl::Status admitted = gate_->Admit(context, /*read_only=*/true); !admitted.ok()) {
    return admitted;
  }
  return Resolve(name, version, name_field, version_field);
}

::grpc::ServerUnaryReactor* InferenceService::ServerLive(::grpc::CallbackServerContext* context,
                                                         const inference::ServerLiveRequest*,
                                                         inference::ServerLiveResponse* response) {
  RpcLog log("inference.ServerLive", context, metrics_, spdlog::level::debug);
  response->set_live(true);
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ServerReady(
    ::grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  RpcLog log("inference.ServerReady", context, metrics_, spdlog::level::debug);
  response->set_ready(!gate_->draining());
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ModelReady(
    ::grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  RpcLog log("inference.ModelReady", context, metrics_, spdlog::level::debug);
  if (absl::Status admitted = gate_->Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  if (request->name().empty()) {
    return FinishUnary(context, log, Resolve("", "", "name", "version").status());
  }
  // Not ready (rather than an error) for a model that does not exist or does not load: the
  // answer a readiness probe wants.
  response->set_ready(Resolve(request->name(), request->version(), "name", "version").ok());
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    ::grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  RpcLog log("inference.ServerMetadata", context, metrics_, spdlog::level::debug);
  if (absl::Status admitted = gate_->Admit(*context, /*read_only=*/true); !admitted.ok()) {
    return FinishUnary(context, log, admitted);
  }
  response->set_name("classifier-server");
  response->set_version(kServerVersion);
  response->add_extensions("model_configuration");
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    ::grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  RpcLog log("inference.ModelMetadata", context, metrics_);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model =
      AdmitAndResolve(*context, request->name(), request->version(), "name", "version");
  if (!model.ok()) return FinishUnary(context, log, model.status());
  const int side = (*model)->network->architecture().image_size;
  const int classes = (*model)->network->architecture().num_classes;
  response->set_name(request->name());
  response->add_versions(kVersion);
  response->set_platform(kPlatform);
  DescribeTensor(kInputName, "FP32", Fp32Shape(side), response->add_inputs());
  DescribeTensor(kInputName, "UINT8", Uint8Shape(side), response->add_inputs());
  DescribeTensor(kProbabilities, "FP32", {-1, classes}, response->add_outputs());
  DescribeTensor(kLabel, "INT64", {-1}, response->add_outputs());
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    ::grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  RpcLog log("inference.ModelConfig", context, metrics_);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model =
      AdmitAndResolve(*context, request->name(), request->version(), "name", "version");
  if (!model.ok()) return FinishUnary(context, log, model.status());
  const int side = (*model)->network->architecture().image_size;
  const int classes = (*model)->network->architecture().num_classes;
  inference::ModelConfig* config = response->mutable_config();
  config->set_name(request->name());
  config->set_platform(kPlatform);
  config->set_backend("pytorch");
  config->set_max_batch_size(limits_.max_images);
  inference::ModelInput* input = config->add_input();
  input->set_name(kInputName);
  input->set_data_type(inference::TYPE_FP32);
  input->set_format(inference::ModelInput::FORMAT_NCHW);
  for (const int64_t dimension : {1, side, side}) input->add_dims(dimension);
  inference::ModelOutput* probabilities = config->add_output();
  probabilities->set_name(kProbabilities);
  probabilities->set_data_type(inference::TYPE_FP32);
  probabilities->add_dims(classes);
  inference::ModelOutput* label = config->add_output();
  label->set_name(kLabel);
  label->set_data_type(inference::TYPE_INT64);
  label->add_dims(1);
  inference::ModelDynamicBatching* batching = config->mutable_dynamic_batching();
  batching->add_preferred_batch_size(limits_.batcher_max_images);
  batching->set_max_queue_delay_microseconds(limits_.batcher_max_delay_microseconds);
  return FinishUnary(context, log, absl::OkStatus());
}

::grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    ::grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  // The hot path, as Predict: its line at debug.
  RpcLog log("inference.ModelInfer", context, metrics_, spdlog::level::debug);
  absl::StatusOr<std::shared_ptr<const LoadedModel>> model = AdmitAndResolve(
      *context, request->model_name(), request->model_version(), "model_name", "model_version");
  if (!model.ok()) return FinishUnary(context, log, model.status());
  const int side = (*model)->network->architecture().image_size;
  const int classes = (*model)->network->architecture().num_classes;
  absl::StatusOr<InputTensor> input = CheckInput(*request, side, limits_.max_images);
  if (!input.ok()) return FinishUnary(context, log, input.status());
  absl::StatusOr<std::vector<std::string>> outputs = RequestedOutputs(*request);
  if (!outputs.ok()) return FinishUnary(context, log, outputs.status());

  ::grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Batcher::Call call;
  call.network = (*model)->network;
  call.images = input->images;
  call.deadline = context->deadline();
  // The request outlives the call (it is freed after Finish): read in place.
  call.fill = [tensor = *input, side](int64_t first, int64_t count, float* out) {
    return FillPixels(tensor, side, first, count, out);
  };
  // Runs on a batcher thread.
  call.done = [this, request, response, reactor, log, images = input->images, classes,
               raw = input->raw != nullptr,
               names = *std::move(outputs)](absl::StatusOr<std::vector<float>> probabilities) {
    absl::Status status = probabilities.status();
    if (status.ok()) {
      response->set_model_name(request->model_name());
      response->set_model_version(kVersion);
      response->set_id(request->id());
      WriteOutputs(*probabilities, images, classes, raw, names, response);
      if (metrics_ != nullptr) metrics_->ObservePredict(images);
    }
    const ::grpc::Status grpc_status = ToGrpcStatus(status);
    log.Done(grpc_status);
    reactor->Finish(grpc_status);
  };
  batcher_->Submit(std::move(call));
  return reactor;
}

}  // namespace classifier
