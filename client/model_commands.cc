// The commands of trained models: models, evaluate, predict, export, import, deploy, delete;
// and the requests their flags describe.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/command_util.h"
#include "client/commands.h"
#include "client/format.h"
#include "client/paging.h"
#include "client/pictures.h"
#include "client/weights_file.h"

namespace classifier::cli {
namespace {

using grpc::ClientContext;

// Checks each chunk against the file so far; the file itself checks the final size and digest.
absl::Status CheckChunk(const v1::WeightsChunk& chunk, int64_t written, int64_t total_size) {
  if (chunk.offset() != written) {
    return absl::DataLossError(
        absl::StrFormat("chunk at offset %d, expected %d", chunk.offset(), written));
  }
  if (chunk.total_size() != total_size) {
    return absl::DataLossError(
        absl::StrFormat("total size changed from %d to %d bytes", total_size, chunk.total_size()));
  }
  if (written + static_cast<int64_t>(chunk.data().size()) > total_size) {
    return absl::DataLossError(
        absl::StrFormat("the server sent more than the %d bytes it announced", total_size));
  }
  return absl::OkStatus();
}

}  // namespace

int Evaluate(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<v1::EvaluateRequest> request = BuildEvaluateRequest(invocation);
  if (!request.ok()) return UsageFailed(env, request.status());
  v1::EvaluateResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kEvaluateTimeoutSeconds);
  const grpc::Status status = env.classifier->Evaluate(&context, *request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n" : EvaluationReport(response));
  if (invocation.Has("plot")) {
    const std::string plot = invocation.String("plot");
    if (absl::Status written = WriteOutputFile(plot, ConfusionMatrixSvg(response)); !written.ok()) {
      return LocalFailed(env, written);
    }
    if (!invocation.Bool("json")) *env.out << "saved the confusion matrix to " << plot << "\n";
  }
  return kExitOk;
}

int Predict(const Invocation& invocation, const CommandEnvironment& env) {
  v1::PredictRequest request;
  request.set_model_id(invocation.String("model"));
  const int top_k = invocation.Int32("top_k", 1);
  if (top_k < 1) return UsageFailed(env, absl::InvalidArgumentError("--top_k must be at least 1"));
  request.set_top_k(top_k);
  for (const std::string& path : invocation.args) {
    // The server decodes and converts the file: the client sends its bytes untouched.
    absl::StatusOr<std::string> bytes = ReadWholeFile(path);
    if (!bytes.ok()) return LocalFailed(env, bytes.status());
    request.add_images()->set_encoded(*std::move(bytes));
  }
  v1::PredictResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->Predict(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  if (response.predictions_size() != request.images_size()) {
    *env.err << "error: the server returned " << response.predictions_size() << " predictions for "
             << request.images_size() << " images\n";
    return kExitServerError;
  }
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n"
                                       : PredictionReport(invocation.args, response, top_k));
  return kExitOk;
}

int Models(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<Paging> paging = ReadPaging(invocation);
  if (!paging.ok()) return UsageFailed(env, paging.status());
  v1::ListModelsRequest request;
  request.set_dataset(invocation.String("dataset"));
  request.set_job_id(invocation.String("job_id"));
  if (invocation.Has("created_after")) {
    absl::StatusOr<google::protobuf::Timestamp> after =
        ParseCreatedAfter(invocation.String("created_after"));
    if (!after.ok()) return UsageFailed(env, after.status());
    *request.mutable_created_after() = *after;
  }
  v1::ListModelsResponse response;
  const grpc::Status status = ListPages(
      env, invocation, &v1::Classifier::StubInterface::ListModels, request, *paging,
      [](v1::ListModelsResponse* r) { return r->mutable_models(); }, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n" : ModelsTable(response));
  NoteMore(response.next_page_token(), "models", env);
  return kExitOk;
}

int Export(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<v1::ExportWeightsRequest> request = BuildExportRequest(invocation);
  if (!request.ok()) return UsageFailed(env, request.status());
  const bool onnx = request->format() == v1::ONNX;
  ClientContext context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::WeightsChunk>> reader =
      env.classifier->ExportWeights(&context, *request);

  std::unique_ptr<VerifiedFileWriter> file;  // Removes the temporary file unless committed.
  int64_t total_size = 0;
  std::string sha256;
  std::string model_id;
  absl::Status local;
  v1::WeightsChunk chunk;
  while (reader->Read(&chunk)) {
    if (file == nullptr) {
      // The first chunk names the file.
      model_id = chunk.model_id();
      total_size = chunk.total_size();
      std::string name = SafeFileName(chunk.file_name(), chunk.model_id(), onnx ? ".onnx" : ".pth");
      if (onnx) name = WithExtension(name, ".onnx");  // Only used when --out is not a file.
      const std::string path = ResolveOutputPath(invocation.String("out"), name);
      absl::StatusOr<std::unique_ptr<VerifiedFileWriter>> created =
          VerifiedFileWriter::Create(path);
      if (!created.ok()) {
        local = created.status();
        break;
      }
      file = *std::move(created);
    }
    local = CheckChunk(chunk, file->size(), total_size);
    if (local.ok()) local = file->Append(chunk.data());
    if (!local.ok()) break;
    sha256 = chunk.sha256();  // Only the last chunk's counts.
  }
  if (!local.ok()) {
    context.TryCancel();
    while (reader->Read(&chunk)) {
    }
    (void)reader->Finish();
    file.reset();
    return LocalFailed(env, local);
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    file.reset();
    return RpcFailed(env, status);
  }
  if (file == nullptr) {
    *env.err << "error: the server sent no weights\n";
    return kExitServerError;
  }
  if (absl::Status committed = file->Commit(total_size, sha256); !committed.ok()) {
    return LocalFailed(env, committed);
  }
  *env.out << absl::StrFormat("saved %s (%d bytes, sha256 %s, model %s)\n", file->path(),
                              file->size(), file->sha256(), model_id.empty() ? "-" : model_id);
  return kExitOk;
}

int Import(const Invocation& invocation, const CommandEnvironment& env) {
  const std::string& path = invocation.args[0];
  // Read first: a missing file is a local error before any call. Weights files are small
  // enough (megabytes) to hold whole, and the digest is then known.
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return LocalFailed(env, bytes.status());

  ClientContext context;
  // A stream of unknown length: no deadline unless asked for.
  if (invocation.timeout_seconds > 0) SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  v1::ImportWeightsResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::ImportWeightsRequest>> writer =
      env.classifier->ImportWeights(&context, &response);
  // The first message says what the bytes are; the following ones carry them.
  v1::ImportWeightsRequest request;
  request.set_format(v1::PYTORCH_STATE_DICT);
  request.set_dataset(invocation.String("dataset"));
  bool open = writer->Write(request);
  for (size_t offset = 0; open && offset < bytes->size(); offset += kImportChunkBytes) {
    request.Clear();
    request.set_data(bytes->substr(offset, kImportChunkBytes));
    // False once the server has ended the call (e.g. rejected the format): Finish says why.
    open = writer->Write(request);
  }
  if (open) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(response) << "\n";
    return kExitOk;
  }
  // What the server registered (`models` lists the same); the file's own figures when it did
  // not say.
  const v1::Model& model = response.model();
  *env.out << absl::StrFormat(
      "imported %s (%d bytes, sha256 %s) from %s\n",
      model.model_id().empty() ? "-" : model.model_id(),
      model.size_bytes() > 0 ? model.size_bytes() : static_cast<int64_t>(bytes->size()),
      model.sha256().empty() ? Sha256Hex(*bytes) : model.sha256(), path);
  return kExitOk;
}

int Deploy(const Invocation& invocation, const CommandEnvironment& env) {
  v1::DeployModelRequest request;
  request.set_model_id(invocation.args[0]);
  v1::Model model;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->DeployModel(&context, request, &model);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(model) << "\n";
  } else {
    *env.out << "deployed " << (model.model_id().empty() ? request.model_id() : model.model_id())
             << "\n";
  }
  return kExitOk;
}

int Delete(const Invocation& invocation, const CommandEnvironment& env) {
  v1::DeleteModelRequest request;
  request.set_model_id(invocation.args[0]);
  v1::DeleteModelResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->DeleteModel(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) : "deleted " + request.model_id())
           << "\n";
  return kExitOk;
}

absl::StatusOr<v1::EvaluateRequest> BuildEvaluateRequest(const Invocation& invocation) {
  v1::EvaluateRequest request;
  request.set_model_id(invocation.String("model"));
  // Empty: the dataset the model was trained on (the server resolves it).
  request.set_dataset(invocation.String("dataset"));
  const std::string split = absl::AsciiStrToLower(invocation.String("split", "test"));
  if (split == "test") {
    request.set_split(v1::DATASET_SPLIT_TEST);
  } else if (split == "train") {
    request.set_split(v1::DATASET_SPLIT_TRAIN);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid value '", invocation.String("split"),
                                                   "' for --split: expected test or train"));
  }
  return request;
}

absl::StatusOr<v1::ExportWeightsRequest> BuildExportRequest(const Invocation& invocation) {
  v1::ExportWeightsRequest request;
  request.set_model_id(invocation.String("model"));
  const std::string format = absl::AsciiStrToLower(invocation.String("format", "pytorch"));
  if (format == "pytorch" || format == "pytorch_state_dict") {
    request.set_format(v1::PYTORCH_STATE_DICT);
  } else if (format == "onnx") {
    request.set_format(v1::ONNX);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid value '", invocation.String("format"),
                                                   "' for --format: expected pytorch or onnx"));
  }
  return request;
}

}  // namespace classifier::cli
