#include "client/commands.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/format.h"
#include "client/pictures.h"
#include "client/weights_file.h"

namespace classifier::cli {
namespace {

using grpc::ClientContext;

void SetDeadline(ClientContext* context, const Invocation& invocation, double default_seconds) {
  const double seconds =
      invocation.timeout_seconds > 0 ? invocation.timeout_seconds : default_seconds;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

int RpcFailed(const CommandEnvironment& env, const grpc::Status& status) {
  *env.err << FormatRpcError(status) << "\n";
  return kExitServerError;
}

int UsageFailed(const CommandEnvironment& env, const absl::Status& status) {
  *env.err << "error: " << status.message() << "\n";
  return kExitUsage;
}

int LocalFailed(const CommandEnvironment& env, const absl::Status& status) {
  *env.err << "error: " << status.message() << "\n";
  return kExitLocalError;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::string bytes;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) bytes.append(buffer, n);
  if (std::ferror(file.get())) {
    return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  return bytes;
}

// Prints a job's events until its Finished event; the exit code follows the job's end state.
// With `epochs`, collects the job's epoch_end events there (for `watch --plot`), and with
// `trials` the sweep trial of each.
int FollowJob(ClientContext* context, grpc::ClientReaderInterface<v1::JobEvent>* reader,
              const CommandEnvironment& env, bool json, bool detach,
              std::vector<v1::JobEvent::EpochEnd>* epochs = nullptr,
              std::vector<int>* trials = nullptr) {
  JobEventPrinter printer(*env.out, env.terminal, json);
  std::optional<v1::JobEvent::Finished> finished;
  std::string job_id;
  v1::JobEvent event;
  while (reader->Read(&event)) {
    job_id = event.job_id();
    if (detach) {
      // The job is queued: leave it to the server (closing the stream does not stop it).
      if (json) {
        printer.Print(event);
      } else {
        *env.out << event.job_id() << "\n" << std::flush;
      }
      context->TryCancel();
      while (reader->Read(&event)) {
      }
      (void)reader->Finish();
      return kExitOk;
    }
    printer.Print(event);
    if (epochs != nullptr && event.has_epoch_end()) {
      epochs->push_back(event.epoch_end());
      if (trials != nullptr) trials->push_back(event.trial());
    }
    if (event.has_finished()) finished = event.finished();
  }
  printer.EndLine();
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return RpcFailed(env, status);
  if (!finished.has_value()) {
    *env.err << "error: the server closed the stream before job " << (job_id.empty() ? "?" : job_id)
             << " finished\n";
    return kExitServerError;
  }
  if (finished->state() == v1::JOB_STATE_SUCCEEDED) return kExitOk;
  *env.err << "error: job " << job_id << " " << StateName(finished->state());
  if (!finished->error().empty()) *env.err << ": " << finished->error();
  *env.err << "\n";
  return kExitJobFailed;
}

int Health(const Invocation& invocation, const CommandEnvironment& env) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(invocation.String("service"));
  grpc::health::v1::HealthCheckResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kHealthTimeoutSeconds);
  const grpc::Status status = env.health->Check(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitServerError;
}

int Train(const Invocation& invocation, const CommandEnvironment& env) {
  absl::StatusOr<v1::TrainRequest> request = BuildTrainRequest(invocation);
  if (!request.ok()) return UsageFailed(env, request.status());
  ClientContext context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::JobEvent>> reader =
      env.classifier->Train(&context, *request);
  return FollowJob(&context, reader.get(), env, invocation.Bool("json"), invocation.Bool("detach"));
}

int Watch(const Invocation& invocation, const CommandEnvironment& env) {
  v1::WatchJobRequest request;
  request.set_job_id(invocation.args[0]);
  request.set_from_sequence(invocation.Int64("from"));
  ClientContext context;
  std::unique_ptr<grpc::ClientReaderInterface<v1::JobEvent>> reader =
      env.classifier->WatchJob(&context, request);
  if (!invocation.Has("plot")) {
    return FollowJob(&context, reader.get(), env, invocation.Bool("json"), /*detach=*/false);
  }
  std::vector<v1::JobEvent::EpochEnd> epochs;
  std::vector<int> trials;
  const int code = FollowJob(&context, reader.get(), env, invocation.Bool("json"),
                             /*detach=*/false, &epochs, &trials);
  // The job ended (well or not): its curves are complete. A broken stream leaves no file.
  if (code != kExitOk && code != kExitJobFailed) return code;
  const std::string plot = invocation.String("plot");
  if (absl::Status written =
          WriteOutputFile(plot, TrainingCurvesSvg(request.job_id(), epochs, trials));
      !written.ok()) {
    return LocalFailed(env, written);
  }
  *(invocation.Bool("json") ? env.err : env.out)
      << "saved the curves of " << epochs.size() << " epoch" << (epochs.size() == 1 ? "" : "s")
      << " to " << plot << "\n";
  return code;
}

int Jobs(const Invocation& invocation, const CommandEnvironment& env) {
  v1::ListJobsResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->ListJobs(&context, v1::ListJobsRequest(), &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n" : JobsTable(response));
  return kExitOk;
}

int GetJob(const Invocation& invocation, const CommandEnvironment& env) {
  v1::GetJobRequest request;
  request.set_job_id(invocation.args[0]);
  v1::Job job;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->GetJob(&context, request, &job);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(job) + "\n" : JobDetails(job));
  return kExitOk;
}

int Cancel(const Invocation& invocation, const CommandEnvironment& env) {
  v1::CancelJobRequest request;
  request.set_job_id(invocation.args[0]);
  v1::Job job;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->CancelJob(&context, request, &job);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(job) << "\n";
  } else {
    *env.out << "job " << job.job_id() << " " << StateName(job.state());
    if (job.state() == v1::JOB_STATE_RUNNING) *env.out << " (stops at its next batch)";
    *env.out << "\n";
  }
  return kExitOk;
}

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
  v1::ListModelsResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status =
      env.classifier->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return RpcFailed(env, status);
  *env.out << (invocation.Bool("json") ? ToJsonLine(response) + "\n" : ModelsTable(response));
  return kExitOk;
}

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

// "1,2,3" -> {1, 2, 3}; INVALID_ARGUMENT naming `flag` for anything else.
template <typename T>
absl::StatusOr<std::vector<T>> ParseList(const std::string& text, const std::string& flag) {
  std::vector<T> values;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    T value{};
    bool ok = false;
    if constexpr (std::is_same_v<T, double>) {
      ok = absl::SimpleAtod(item, &value);
    } else {
      ok = absl::SimpleAtoi(item, &value);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value '", std::string(item), "' in ",
                                                     flag,
                                                     ": expected numbers "
                                                     "separated by commas"));
    }
    values.push_back(value);
  }
  if (values.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " needs at least one value"));
  }
  return values;
}

std::string ImageSize(int64_t height, int64_t width) { return absl::StrCat(height, "x", width); }

int Datasets(const Invocation& invocation, const CommandEnvironment& env) {
  v1::ListDatasetsResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status =
      env.classifier->ListDatasets(&context, v1::ListDatasetsRequest(), &response);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(response) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::DatasetInfo& d : response.datasets()) {
    const bool usable = d.error().empty();
    rows.push_back({d.name(), usable ? absl::StrCat(d.train_images()) : "-",
                    usable ? absl::StrCat(d.test_images()) : "-",
                    usable ? absl::StrCat(d.num_classes()) : "-",
                    usable ? ImageSize(d.image_height(), d.image_width()) : "-",
                    d.builtin() ? "built-in" : "registered", d.path()});
    // Only an unusable dataset has a note: the others' lines end without trailing spaces.
    if (!usable) rows.back().push_back("unavailable: " + d.error());
  }
  *env.out << FormatTable({"NAME", "TRAIN", "TEST", "CLASSES", "SIZE", "SOURCE", "PATH", "NOTE"},
                          rows);
  return kExitOk;
}

int RegisterDataset(const Invocation& invocation, const CommandEnvironment& env) {
  v1::RegisterDatasetRequest request;
  request.set_name(invocation.args[0]);
  request.set_path(invocation.args[1]);
  v1::DatasetInfo info;
  ClientContext context;
  // The server reads every file in full: allow for a big set on a slow disk.
  SetDeadline(&context, invocation, kEvaluateTimeoutSeconds);
  const grpc::Status status = env.classifier->RegisterDataset(&context, request, &info);
  if (!status.ok()) return RpcFailed(env, status);
  if (invocation.Bool("json")) {
    *env.out << ToJsonLine(info) << "\n";
  } else {
    *env.out << absl::StrFormat("registered %s (%s): %d train + %d test images of %s, %d classes\n",
                                info.name(), info.path(), info.train_images(), info.test_images(),
                                ImageSize(info.image_height(), info.image_width()),
                                info.num_classes());
  }
  return kExitOk;
}

int Samples(const Invocation& invocation, const CommandEnvironment& env) {
  if (!invocation.Has("out")) {
    return UsageFailed(env, absl::InvalidArgumentError("samples needs --out FILE (a .png)"));
  }
  v1::GetDatasetSamplesRequest request;
  request.set_dataset(invocation.String("dataset", "mnist"));
  request.set_count(invocation.Int32("count"));
  request.set_seed(invocation.Uint64("seed"));
  const std::string split = absl::AsciiStrToLower(invocation.String("split", "train"));
  if (split == "train") {
    request.set_split(v1::DATASET_SPLIT_TRAIN);
  } else if (split == "test") {
    request.set_split(v1::DATASET_SPLIT_TEST);
  } else {
    return UsageFailed(
        env, absl::InvalidArgumentError(absl::StrCat("invalid value '", invocation.String("split"),
                                                     "' for --split: expected train or test")));
  }
  const int scale = invocation.Int32("scale", 1);
  const int columns = invocation.Int32("columns");
  if (scale < 1 || scale > 16 || columns < 0) {
    return UsageFailed(
        env, absl::InvalidArgumentError("--scale must be in [1, 16] and --columns at least 1"));
  }
  v1::GetDatasetSamplesResponse response;
  ClientContext context;
  SetDeadline(&context, invocation, kDefaultTimeoutSeconds);
  const grpc::Status status = env.classifier->GetDatasetSamples(&context, request, &response);
  if (!status.ok()) return RpcFailed(env, status);
  absl::StatusOr<SampleGrid> grid = LayOutSamples(response, columns, scale);
  if (!grid.ok()) {
    *env.err << "error: " << grid.status().message() << "\n";
    return kExitServerError;
  }
  absl::StatusOr<std::string> png = EncodeGridPng(*grid);
  if (!png.ok()) return LocalFailed(env, png.status());
  const std::string out = invocation.String("out");
  if (absl::Status written = WriteOutputFile(out, *png); !written.ok()) {
    return LocalFailed(env, written);
  }
  *env.out << absl::StrFormat(
      "saved %s: %d images of %s (%s split, seed %d), %d rows of %d, %dx%d pixels\n", out,
      response.labels_size(), response.dataset(), SplitName(response.split()), request.seed(),
      grid->rows, grid->columns, grid->width, grid->height);
  *env.out << "labels in grid order:\n";
  for (int row = 0; row < grid->rows; ++row) {
    std::string line;
    for (int column = 0; column < grid->columns; ++column) {
      const int i = row * grid->columns + column;
      if (i >= response.labels_size()) break;
      absl::StrAppend(&line, column == 0 ? "" : " ", response.labels(i));
    }
    *env.out << line << "\n";
  }
  return kExitOk;
}

}  // namespace

std::string FormatRpcError(const grpc::Status& status) {
  std::string out = absl::StrCat(
      "error: ", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
  if (!status.error_message().empty()) absl::StrAppend(&out, ": ", status.error_message());
  // gRPC's own size check ("Received message larger than max (SIZE vs. LIMIT)") names the limit
  // in bytes, but neither where it is set nor what to do about it.
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      absl::StrContains(status.error_message(), "larger than max")) {
    absl::StrAppend(&out,
                    "\nhint: that limit is the server's --max_message_bytes (a request) or this "
                    "client's 4 MiB (an answer); send fewer or smaller images per predict call. "
                    "Model weights never need one big message: `export` and `import` stream them "
                    "in 1 MiB chunks (ExportWeights / ImportWeights)");
  }
  return out;
}

absl::StatusOr<v1::TrainRequest> BuildTrainRequest(const Invocation& invocation) {
  v1::TrainRequest request;
  request.set_dataset(invocation.String("dataset", "mnist"));
  request.set_epochs(invocation.Int32("epochs"));
  request.set_batch_size(invocation.Int32("batch_size"));
  request.set_learning_rate(invocation.Double("learning_rate"));
  request.set_seed(invocation.Uint64("seed"));
  request.set_progress_reports_per_epoch(invocation.Int32("progress_reports_per_epoch"));
  request.set_deploy_when_done(invocation.Bool("deploy_when_done"));
  request.set_validation_fraction(invocation.Double("validation_fraction"));
  request.set_keep_best(invocation.Bool("keep_best"));
  request.set_early_stopping_patience(invocation.Int32("early_stopping_patience"));
  if (invocation.Has("optimizer")) {
    const std::string optimizer = absl::AsciiStrToLower(invocation.String("optimizer"));
    if (optimizer == "adam") {
      request.set_optimizer(v1::OPTIMIZER_KIND_ADAM);
    } else if (optimizer == "adamw") {
      request.set_optimizer(v1::OPTIMIZER_KIND_ADAMW);
    } else if (optimizer == "sgd") {
      request.set_optimizer(v1::OPTIMIZER_KIND_SGD);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", invocation.String("optimizer"),
                       "' for --optimizer: expected adam, adamw or sgd"));
    }
  }
  request.set_momentum(invocation.Double("momentum"));
  request.set_weight_decay(invocation.Double("weight_decay"));
  request.set_label_smoothing(invocation.Double("label_smoothing"));
  if (invocation.Has("world_size")) {
    request.mutable_distributed()->set_world_size(invocation.Int32("world_size"));
  }
  if (invocation.Has("lr_schedule")) {
    const std::string schedule = absl::AsciiStrToLower(invocation.String("lr_schedule"));
    if (schedule == "none") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_CONSTANT);
    } else if (schedule == "step") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
    } else if (schedule == "cosine") {
      request.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_COSINE);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", invocation.String("lr_schedule"),
                       "' for --lr_schedule: expected none, step or cosine"));
    }
  }
  request.set_lr_step_size(invocation.Int32("lr_step_size"));
  request.set_lr_gamma(invocation.Double("lr_gamma"));
  for (const char* flag : {"rotation_degrees", "translation", "scale_min", "scale_max",
                           "horizontal_flip", "vertical_flip"}) {
    if (!invocation.Has(flag)) continue;
    v1::Augmentation* augmentation = request.mutable_augmentation();
    augmentation->set_rotation_degrees(invocation.Double("rotation_degrees"));
    augmentation->set_translation(invocation.Double("translation"));
    augmentation->set_scale_min(invocation.Double("scale_min"));
    augmentation->set_scale_max(invocation.Double("scale_max"));
    augmentation->set_horizontal_flip(invocation.Bool("horizontal_flip"));
    augmentation->set_vertical_flip(invocation.Bool("vertical_flip"));
    break;
  }

  v1::Architecture architecture;
  if (invocation.Has("conv_channels")) {
    absl::StatusOr<std::vector<int32_t>> channels =
        ParseList<int32_t>(invocation.String("conv_channels"), "--conv_channels");
    if (!channels.ok()) return channels.status();
    for (int32_t c : *channels) architecture.add_conv_channels(c);
  }
  architecture.set_kernel_size(invocation.Int32("kernel_size"));
  architecture.set_hidden_units(invocation.Int32("hidden_units"));
  architecture.set_dropout(invocation.Double("dropout"));
  for (const char* flag : {"conv_channels", "kernel_size", "hidden_units", "dropout"}) {
    if (invocation.Has(flag)) *request.mutable_architecture() = architecture;
  }
  request.set_init_from_model(invocation.String("init_from_model"));
  request.set_freeze_convolutions(invocation.Bool("freeze_convolutions"));

  v1::Sweep sweep;
  if (invocation.Has("sweep_learning_rates")) {
    absl::StatusOr<std::vector<double>> rates =
        ParseList<double>(invocation.String("sweep_learning_rates"), "--sweep_learning_rates");
    if (!rates.ok()) return rates.status();
    for (double rate : *rates) sweep.add_learning_rates(rate);
  }
  if (invocation.Has("sweep_batch_sizes")) {
    absl::StatusOr<std::vector<int32_t>> sizes =
        ParseList<int32_t>(invocation.String("sweep_batch_sizes"), "--sweep_batch_sizes");
    if (!sizes.ok()) return sizes.status();
    for (int32_t size : *sizes) sweep.add_batch_sizes(size);
  }
  if (invocation.Has("sweep_conv_channels")) {
    for (absl::string_view group :
         absl::StrSplit(invocation.String("sweep_conv_channels"), ';', absl::SkipEmpty())) {
      absl::StatusOr<std::vector<int32_t>> channels =
          ParseList<int32_t>(std::string(group), "--sweep_conv_channels");
      if (!channels.ok()) return channels.status();
      v1::Architecture* option = sweep.add_architectures();
      *option = architecture;
      option->clear_conv_channels();
      for (int32_t c : *channels) option->add_conv_channels(c);
    }
  }
  if (invocation.Has("sweep_augment")) {
    for (absl::string_view value :
         absl::StrSplit(invocation.String("sweep_augment"), ',', absl::SkipEmpty())) {
      if (value != "on" && value != "off") {
        return absl::InvalidArgumentError(absl::StrCat("invalid value '", std::string(value),
                                                       "' in --sweep_augment: expected on or off"));
      }
      sweep.add_augment(value == "on");
    }
  }
  for (const char* flag :
       {"sweep_learning_rates", "sweep_batch_sizes", "sweep_conv_channels", "sweep_augment"}) {
    if (invocation.Has(flag)) *request.mutable_sweep() = sweep;
  }
  return request;
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

int RunCommand(const Invocation& invocation, const CommandEnvironment& environment) {
  using Handler = int (*)(const Invocation&, const CommandEnvironment&);
  static const auto* const handlers = new std::map<std::string, Handler, std::less<>>{
      {"health", Health},     {"train", Train},       {"watch", Watch},
      {"jobs", Jobs},         {"job", GetJob},        {"cancel", Cancel},
      {"evaluate", Evaluate}, {"predict", Predict},   {"models", Models},
      {"export", Export},     {"import", Import},     {"deploy", Deploy},
      {"delete", Delete},     {"datasets", Datasets}, {"register-dataset", RegisterDataset},
      {"samples", Samples},
  };
  auto it = handlers->find(invocation.command);
  if (it == handlers->end()) {
    return UsageFailed(environment, absl::InvalidArgumentError(absl::StrCat(
                                        "unknown command '", invocation.command, "'")));
  }
  return it->second(invocation, environment);
}

}  // namespace classifier::cli
