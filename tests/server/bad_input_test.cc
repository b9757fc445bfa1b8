// The catalogue of bad inputs: every RPC, every field a caller sets, with the hostile values
// (empty, huge, negative, NaN, infinity, wrong size, path-shaped, unicode, NUL), each sent to a
// real server on loopback; each must get its documented status and a message naming the field.
// Afterwards nothing was half-written: the models, jobs and datasets are those of before, and the
// server still serves.
//
// The same rows are the table in docs/bad-inputs.md: the test fails when the two differ, and
// CLASSIFIER_UPDATE_DOCS=1 writes the table anew.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/build_version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "tests/server/server_fixture.h"

namespace classifier {
namespace {

using ::grpc::StatusCode;

const double kNaN = std::nan("");
const double kInfinity = HUGE_VAL;
const std::string kHuge(1 << 20, 'x');  // 1 MiB: under gRPC's 4 MiB message limit.
const std::string kNul("mni\0st", 6);   // A NUL inside a name.
const std::string kUnicode = "\xd0\xbc\xd0\xbd\xd0\xb8\xd1\x81\xd1\x82";  // "мнист".
const std::string kPath = "../../etc/passwd";

// The two services on the server's port.
struct Stubs {
  v1::Classifier::Stub& classifier;
  inference::GRPCInferenceService::Stub& inference;
};
using Call = std::function<::grpc::Status(Stubs&)>;

// One row of the catalogue.
struct BadInput {
  std::string rpc;
  std::string field;
  std::string value;  // The hostile value, as the table shows it.
  StatusCode code;
  std::string message;  // What the status message must hold (usually the field's name).
  Call call;
};

std::string CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case StatusCode::OK:
      return "OK";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

// The request builders: a valid request, edited into a hostile one.
Call Train(std::function<void(v1::TrainRequest&)> edit) {
  return [edit](Stubs& stubs) {
    v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/1);
    edit(request);
    ::grpc::ClientContext context;
    auto reader = stubs.classifier.Train(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  };
}

Call Architecture(std::function<void(v1::Architecture&)> edit) {
  return Train([edit](v1::TrainRequest& request) { edit(*request.mutable_architecture()); });
}

Call Augmentation(std::function<void(v1::Augmentation&)> edit) {
  return Train([edit](v1::TrainRequest& request) { edit(*request.mutable_augmentation()); });
}

Call Predict(std::function<void(v1::PredictRequest&)> edit) {
  return [edit](Stubs& stubs) {
    v1::PredictRequest request;
    request.add_images()->set_raw_pixels(std::string(28 * 28, '\0'));
    edit(request);
    ::grpc::ClientContext context;
    v1::PredictResponse response;
    return stubs.classifier.Predict(&context, request, &response);
  };
}

Call FloatPixels(std::vector<float> values) {
  return Predict([values](v1::PredictRequest& request) {
    auto* pixels = request.mutable_images(0)->mutable_float_pixels();
    for (const float value : values) pixels->add_values(value);
  });
}

// A valid ModelInfer (one raw UINT8 image for the deployed model), edited into a hostile one.
Call ModelInfer(std::function<void(inference::ModelInferRequest&)> edit) {
  return [edit](Stubs& stubs) {
    inference::ModelInferRequest request;
    request.set_model_name("classifier");
    auto* input = request.add_inputs();
    input->set_name("input");
    input->set_datatype("UINT8");
    for (const int64_t dimension : {1, 28, 28}) input->add_shape(dimension);
    request.add_raw_input_contents(std::string(28 * 28, '\0'));
    edit(request);
    ::grpc::ClientContext context;
    inference::ModelInferResponse response;
    return stubs.inference.ModelInfer(&context, request, &response);
  };
}

Call ModelMetadata(std::string name, std::string version) {
  return [name, version](Stubs& stubs) {
    inference::ModelMetadataRequest request;
    request.set_name(name);
    request.set_version(version);
    ::grpc::ClientContext context;
    inference::ModelMetadataResponse response;
    return stubs.inference.ModelMetadata(&context, request, &response);
  };
}

Call Evaluate(std::function<void(v1::EvaluateRequest&)> edit) {
  return [edit](Stubs& stubs) {
    v1::EvaluateRequest request;
    request.set_dataset("mnist");
    edit(request);
    ::grpc::ClientContext context;
    v1::EvaluateResponse response;
    return stubs.classifier.Evaluate(&context, request, &response);
  };
}

Call Export(std::function<void(v1::ExportWeightsRequest&)> edit) {
  return [edit](Stubs& stubs) {
    v1::ExportWeightsRequest request;
    edit(request);
    ::grpc::ClientContext context;
    auto reader = stubs.classifier.ExportWeights(&context, request);
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  };
}

// ImportWeights of `messages` as they are.
Call Import(std::vector<v1::ImportWeightsRequest> messages) {
  return [messages](Stubs& stubs) {
    ::grpc::ClientContext context;
    v1::ImportWeightsResponse response;
    auto writer = stubs.classifier.ImportWeights(&context, &response);
    for (const v1::ImportWeightsRequest& message : messages) {
      if (!writer->Write(message)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  };
}

v1::ImportWeightsRequest ImportMessage(const std::string& data, const std::string& dataset = "",
                                       int format = 0) {
  v1::ImportWeightsRequest message;
  message.set_data(data);
  message.set_dataset(dataset);
  message.set_format(static_cast<v1::WeightsFormat>(format));
  return message;
}

template <typename Request, typename Response>
Call Unary(::grpc::Status (v1::Classifier::Stub::*method)(::grpc::ClientContext*, const Request&,
                                                          Response*),
           std::function<void(Request&)> edit) {
  return [method, edit](Stubs& stubs) {
    Request request;
    edit(request);
    ::grpc::ClientContext context;
    Response response;
    return (stubs.classifier.*method)(&context, request, &response);
  };
}

Call GetJob(const std::string& job_id) {
  return Unary<v1::GetJobRequest, v1::Job>(
      &v1::Classifier::Stub::GetJob, [job_id](v1::GetJobRequest& r) { r.set_job_id(job_id); });
}
Call CancelJob(const std::string& job_id) {
  return Unary<v1::CancelJobRequest, v1::Job>(
      &v1::Classifier::Stub::CancelJob,
      [job_id](v1::CancelJobRequest& r) { r.set_job_id(job_id); });
}
Call Deploy(const std::string& model_id) {
  return Unary<v1::DeployModelRequest, v1::Model>(
      &v1::Classifier::Stub::DeployModel,
      [model_id](v1::DeployModelRequest& r) { r.set_model_id(model_id); });
}
Call Delete(const std::string& model_id) {
  return Unary<v1::DeleteModelRequest, v1::DeleteModelResponse>(
      &v1::Classifier::Stub::DeleteModel,
      [model_id](v1::DeleteModelRequest& r) { r.set_model_id(model_id); });
}
Call ListJobs(std::function<void(v1::ListJobsRequest&)> edit) {
  return Unary<v1::ListJobsRequest, v1::ListJobsResponse>(&v1::Classifier::Stub::ListJobs, edit);
}
Call ListModels(std::function<void(v1::ListModelsRequest&)> edit) {
  return Unary<v1::ListModelsRequest, v1::ListModelsResponse>(&v1::Classifier::Stub::ListModels,
                                                              edit);
}
Call ListDatasets(std::function<void(v1::ListDatasetsRequest&)> edit) {
  return Unary<v1::ListDatasetsRequest, v1::ListDatasetsResponse>(
      &v1::Classifier::Stub::ListDatasets, edit);
}
Call RegisterDataset(const std::string& name, const std::string& path) {
  return Unary<v1::RegisterDatasetRequest, v1::DatasetInfo>(
      &v1::Classifier::Stub::RegisterDataset, [name, path](v1::RegisterDatasetRequest& r) {
        r.set_name(name);
        r.set_path(path);
      });
}
// A valid worker session request, edited into a hostile one: the call's status (OK would mean
// the worker was registered, and its session is then closed).
Call WorkerSession(std::function<void(v1::WorkerSessionRequest&)> edit) {
  return [edit](Stubs& stubs) {
    v1::WorkerSessionRequest request;
    request.set_worker_name("bad-input-worker");
    request.set_build_version(BuildVersion());
    request.set_max_ranks(1);
    request.set_server_address("127.0.0.1");
    edit(request);
    ::grpc::ClientContext context;
    auto reader = stubs.classifier.WorkerSession(&context, request);
    v1::WorkerCommand command;
    if (reader->Read(&command)) {
      context.TryCancel();
      while (reader->Read(&command)) {
      }
      reader->Finish();
      return ::grpc::Status::OK;
    }
    return reader->Finish();
  };
}

Call Samples(std::function<void(v1::GetDatasetSamplesRequest&)> edit) {
  return Unary<v1::GetDatasetSamplesRequest, v1::GetDatasetSamplesResponse>(
      &v1::Classifier::Stub::GetDatasetSamples, edit);
}

Call Watch(const std::string& job_id, int64_t from_sequence) {
  return [job_id, from_sequence](Stubs& stubs) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_from_sequence(from_sequence);
    ::grpc::ClientContext context;
    auto reader = stubs.classifier.WatchJob(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  };
}

std::vector<BadInput> Catalogue(const std::string& job_id, const std::string& model_id) {
  using SC = StatusCode;
  const SC kInvalid = SC::INVALID_ARGUMENT;
  std::vector<BadInput> rows = {
      // Train: the request's scalars.
      {"Train", "dataset", "unknown name", SC::NOT_FOUND, "dataset",
       Train([](auto& r) { r.set_dataset("no-such-set"); })},
      {"Train", "dataset", "path-shaped", SC::NOT_FOUND, "dataset",
       Train([](auto& r) { r.set_dataset(kPath); })},
      {"Train", "dataset", "unicode", SC::NOT_FOUND, "dataset",
       Train([](auto& r) { r.set_dataset(kUnicode); })},
      {"Train", "dataset", "NUL inside", SC::NOT_FOUND, "dataset",
       Train([](auto& r) { r.set_dataset(kNul); })},
      {"Train", "dataset", "1 MiB", SC::NOT_FOUND, "dataset",
       Train([](auto& r) { r.set_dataset(kHuge); })},
      {"Train", "epochs", "-1", kInvalid, "epochs", Train([](auto& r) { r.set_epochs(-1); })},
      {"Train", "epochs", "1001", kInvalid, "epochs", Train([](auto& r) { r.set_epochs(1001); })},
      {"Train", "epochs", "2^31-1", kInvalid, "epochs",
       Train([](auto& r) { r.set_epochs(2147483647); })},
      {"Train", "batch_size", "-60", kInvalid, "batch_size",
       Train([](auto& r) { r.set_batch_size(-60); })},
      {"Train", "batch_size", "larger than the training set", kInvalid, "batch_size",
       Train([](auto& r) { r.set_batch_size(1000000); })},
      {"Train", "learning_rate", "NaN", kInvalid, "learning_rate",
       Train([](auto& r) { r.set_learning_rate(kNaN); })},
      {"Train", "learning_rate", "infinity", kInvalid, "learning_rate",
       Train([](auto& r) { r.set_learning_rate(kInfinity); })},
      {"Train", "learning_rate", "-0.001", kInvalid, "learning_rate",
       Train([](auto& r) { r.set_learning_rate(-0.001); })},
      {"Train", "optimizer", "99 (no such enum value)", kInvalid, "optimizer",
       Train([](auto& r) { r.set_optimizer(static_cast<v1::OptimizerKind>(99)); })},
      {"Train", "progress_reports_per_epoch", "-1", kInvalid, "progress_reports_per_epoch",
       Train([](auto& r) { r.set_progress_reports_per_epoch(-1); })},
      {"Train", "progress_reports_per_epoch", "2^31-1", kInvalid, "progress_reports_per_epoch",
       Train([](auto& r) { r.set_progress_reports_per_epoch(2147483647); })},
      {"Train", "validation_fraction", "NaN", kInvalid, "validation_fraction",
       Train([](auto& r) { r.set_validation_fraction(kNaN); })},
      {"Train", "validation_fraction", "-0.1", kInvalid, "validation_fraction",
       Train([](auto& r) { r.set_validation_fraction(-0.1); })},
      {"Train", "validation_fraction", "0.9", kInvalid, "validation_fraction",
       Train([](auto& r) { r.set_validation_fraction(0.9); })},
      {"Train", "validation_fraction", "infinity", kInvalid, "validation_fraction",
       Train([](auto& r) { r.set_validation_fraction(kInfinity); })},
      {"Train", "keep_best", "true without validation", kInvalid, "keep_best",
       Train([](auto& r) { r.set_keep_best(true); })},
      {"Train", "early_stopping_patience", "-1", kInvalid, "early_stopping_patience",
       Train([](auto& r) { r.set_early_stopping_patience(-1); })},
      {"Train", "early_stopping_patience", "1001", kInvalid, "early_stopping_patience",
       Train([](auto& r) {
         r.set_validation_fraction(0.1);
         r.set_early_stopping_patience(1001);
       })},
      {"Train", "momentum", "NaN (SGD)", kInvalid, "momentum",
       Train([](auto& r) {
         r.set_optimizer(v1::OPTIMIZER_KIND_SGD);
         r.set_momentum(kNaN);
       })},
      {"Train", "momentum", "1.0 (SGD)", kInvalid, "momentum",
       Train([](auto& r) {
         r.set_optimizer(v1::OPTIMIZER_KIND_SGD);
         r.set_momentum(1.0);
       })},
      {"Train", "momentum", "-0.5 (SGD)", kInvalid, "momentum",
       Train([](auto& r) {
         r.set_optimizer(v1::OPTIMIZER_KIND_SGD);
         r.set_momentum(-0.5);
       })},
      {"Train", "momentum", "0.9 with Adam", kInvalid, "momentum",
       Train([](auto& r) { r.set_momentum(0.9); })},
      {"Train", "weight_decay", "NaN", kInvalid, "weight_decay",
       Train([](auto& r) { r.set_weight_decay(kNaN); })},
      {"Train", "weight_decay", "-1", kInvalid, "weight_decay",
       Train([](auto& r) { r.set_weight_decay(-1); })},
      {"Train", "weight_decay", "infinity", kInvalid, "weight_decay",
       Train([](auto& r) { r.set_weight_decay(kInfinity); })},
      {"Train", "lr_schedule", "99 (no such enum value)", kInvalid, "lr_schedule",
       Train([](auto& r) { r.set_lr_schedule(static_cast<v1::LearningRateSchedule>(99)); })},
      {"Train", "lr_step_size", "-1 (STEP)", kInvalid, "lr_step_size",
       Train([](auto& r) {
         r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
         r.set_lr_step_size(-1);
       })},
      {"Train", "lr_step_size", "more than epochs (STEP)", kInvalid, "lr_step_size",
       Train([](auto& r) {
         r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
         r.set_lr_step_size(5);
       })},
      {"Train", "lr_gamma", "NaN (STEP)", kInvalid, "lr_gamma",
       Train([](auto& r) {
         r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
         r.set_lr_gamma(kNaN);
       })},
      {"Train", "lr_gamma", "1.5 (STEP)", kInvalid, "lr_gamma",
       Train([](auto& r) {
         r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
         r.set_lr_gamma(1.5);
       })},
      {"Train", "lr_gamma", "-0.5 (STEP)", kInvalid, "lr_gamma",
       Train([](auto& r) {
         r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
         r.set_lr_gamma(-0.5);
       })},
      {"Train", "label_smoothing", "NaN", kInvalid, "label_smoothing",
       Train([](auto& r) { r.set_label_smoothing(kNaN); })},
      {"Train", "label_smoothing", "1.0", kInvalid, "label_smoothing",
       Train([](auto& r) { r.set_label_smoothing(1.0); })},
      {"Train", "label_smoothing", "-0.1", kInvalid, "label_smoothing",
       Train([](auto& r) { r.set_label_smoothing(-0.1); })},
      {"Train", "init_from_model", "unknown id", SC::NOT_FOUND, "model-nope",
       Train([](auto& r) { r.set_init_from_model("model-nope"); })},
      {"Train", "init_from_model", "path-shaped", SC::NOT_FOUND, kPath,
       Train([](auto& r) { r.set_init_from_model(kPath); })},
      {"Train", "init_from_model", "NUL inside", SC::NOT_FOUND, "model_id",
       Train([](auto& r) { r.set_init_from_model(std::string("model\0x", 7)); })},
      {"Train", "freeze_convolutions", "true without init_from_model", kInvalid,
       "freeze_convolutions", Train([](auto& r) { r.set_freeze_convolutions(true); })},
      // Train: the architecture.
      {"Train", "architecture.conv_channels", "[0]", kInvalid, "conv_channels",
       Architecture([](auto& a) { a.add_conv_channels(0); })},
      {"Train", "architecture.conv_channels", "[-8, 16]", kInvalid, "conv_channels",
       Architecture([](auto& a) {
         a.add_conv_channels(-8);
         a.add_conv_channels(16);
       })},
      {"Train", "architecture.conv_channels", "[2^31-1]", kInvalid, "conv_channels",
       Architecture([](auto& a) { a.add_conv_channels(2147483647); })},
      {"Train", "architecture.conv_channels", "5 layers (28 halves 4 times)", kInvalid,
       "conv_channels", Architecture([](auto& a) {
         for (int i = 0; i < 5; ++i) a.add_conv_channels(4);
       })},
      {"Train", "architecture.conv_channels", "100,000 layers", kInvalid, "conv_channels",
       Architecture([](auto& a) {
         for (int i = 0; i < 100000; ++i) a.add_conv_channels(1);
       })},
      {"Train", "architecture.kernel_size", "-3", kInvalid, "kernel_size",
       Architecture([](auto& a) { a.set_kernel_size(-3); })},
      {"Train", "architecture.kernel_size", "4 (even)", kInvalid, "kernel_size",
       Architecture([](auto& a) { a.set_kernel_size(4); })},
      {"Train", "architecture.kernel_size", "17", kInvalid, "kernel_size",
       Architecture([](auto& a) { a.set_kernel_size(17); })},
      {"Train", "architecture.hidden_units", "-1", kInvalid, "hidden_units",
       Architecture([](auto& a) { a.set_hidden_units(-1); })},
      {"Train", "architecture.hidden_units", "4097", kInvalid, "hidden_units",
       Architecture([](auto& a) { a.set_hidden_units(4097); })},
      {"Train", "architecture.dropout", "NaN", kInvalid, "dropout",
       Architecture([](auto& a) { a.set_dropout(kNaN); })},
      {"Train", "architecture.dropout", "0.95", kInvalid, "dropout",
       Architecture([](auto& a) { a.set_dropout(0.95); })},
      {"Train", "architecture.dropout", "-0.5", kInvalid, "dropout",
       Architecture([](auto& a) { a.set_dropout(-0.5); })},
      // Train: augmentation.
      {"Train", "augmentation.rotation_degrees", "NaN", kInvalid, "rotation_degrees",
       Augmentation([](auto& a) { a.set_rotation_degrees(kNaN); })},
      {"Train", "augmentation.rotation_degrees", "181", kInvalid, "rotation_degrees",
       Augmentation([](auto& a) { a.set_rotation_degrees(181); })},
      {"Train", "augmentation.rotation_degrees", "-10", kInvalid, "rotation_degrees",
       Augmentation([](auto& a) { a.set_rotation_degrees(-10); })},
      {"Train", "augmentation.translation", "infinity", kInvalid, "translation",
       Augmentation([](auto& a) { a.set_translation(kInfinity); })},
      {"Train", "augmentation.translation", "0.6", kInvalid, "translation",
       Augmentation([](auto& a) { a.set_translation(0.6); })},
      {"Train", "augmentation.scale_min", "0.1", kInvalid, "scale_min",
       Augmentation([](auto& a) { a.set_scale_min(0.1); })},
      {"Train", "augmentation.scale_max", "NaN", kInvalid, "scale_max",
       Augmentation([](auto& a) { a.set_scale_max(kNaN); })},
      {"Train", "augmentation.scale_min", "above scale_max", kInvalid, "scale_min",
       Augmentation([](auto& a) {
         a.set_scale_min(1.5);
         a.set_scale_max(0.8);
       })},
      {"Train", "augmentation.horizontal_flip", "true on digits", kInvalid, "horizontal_flip",
       Augmentation([](auto& a) { a.set_horizontal_flip(true); })},
      {"Train", "augmentation.vertical_flip", "true on digits", kInvalid, "vertical_flip",
       Augmentation([](auto& a) { a.set_vertical_flip(true); })},
      // Train: sweep and distribution.
      {"Train", "sweep", "without validation_fraction", kInvalid, "validation_fraction",
       Train([](auto& r) { r.mutable_sweep()->add_learning_rates(0.01); })},
      {"Train", "sweep.learning_rates", "[NaN]", kInvalid, "learning_rate",
       Train([](auto& r) {
         r.set_validation_fraction(0.1);
         r.mutable_sweep()->add_learning_rates(kNaN);
       })},
      {"Train", "sweep.batch_sizes", "[-1]", kInvalid, "batch_size",
       Train([](auto& r) {
         r.set_validation_fraction(0.1);
         r.mutable_sweep()->add_batch_sizes(-1);
       })},
      {"Train", "sweep", "17 trials", SC::RESOURCE_EXHAUSTED, "16",
       Train([](auto& r) {
         r.set_validation_fraction(0.1);
         for (int i = 1; i <= 17; ++i) r.mutable_sweep()->add_learning_rates(0.001 * i);
       })},
      {"Train", "sweep", "10,000 x 10,000 trials", SC::RESOURCE_EXHAUSTED, "16",
       Train([](auto& r) {
         r.set_validation_fraction(0.1);
         for (int i = 1; i <= 10000; ++i) {
           r.mutable_sweep()->add_learning_rates(0.001);
           r.mutable_sweep()->add_batch_sizes(30);
         }
       })},
      {"Train", "distributed.world_size", "-1", kInvalid, "world_size",
       Train([](auto& r) { r.mutable_distributed()->set_world_size(-1); })},
      {"Train", "distributed.world_size", "1025", kInvalid, "world_size",
       Train([](auto& r) { r.mutable_distributed()->set_world_size(1025); })},
      {"Train", "distributed.world_size", "1024 (more than --max_local_ranks)",
       SC::FAILED_PRECONDITION, "max_local_ranks",
       Train([](auto& r) { r.mutable_distributed()->set_world_size(1024); })},

      // WatchJob, GetJob, CancelJob.
      {"WatchJob", "job_id", "empty", kInvalid, "job_id", Watch("", 0)},
      {"WatchJob", "job_id", "unknown", SC::NOT_FOUND, "job-nope", Watch("job-nope", 0)},
      {"WatchJob", "job_id", "path-shaped", SC::NOT_FOUND, "job_id", Watch(kPath, 0)},
      {"WatchJob", "job_id", "1 MiB", SC::NOT_FOUND, "job_id", Watch(kHuge, 0)},
      {"WatchJob", "from_sequence", "-1", kInvalid, "from_sequence", Watch(job_id, -1)},
      {"GetJob", "job_id", "empty", kInvalid, "job_id", GetJob("")},
      {"GetJob", "job_id", "unknown", SC::NOT_FOUND, "job-nope", GetJob("job-nope")},
      {"GetJob", "job_id", "NUL inside", SC::NOT_FOUND, "job_id", GetJob(std::string("job\0", 4))},
      {"GetJob", "job_id", "unicode", SC::NOT_FOUND, "job_id", GetJob(kUnicode)},
      {"CancelJob", "job_id", "empty", kInvalid, "job_id", CancelJob("")},
      {"CancelJob", "job_id", "unknown", SC::NOT_FOUND, "job-nope", CancelJob("job-nope")},

      // ListJobs, ListModels, ListDatasets.
      {"ListJobs", "page_size", "-1", kInvalid, "page_size",
       ListJobs([](auto& r) { r.set_page_size(-1); })},
      {"ListJobs", "page_size", "1001", kInvalid, "page_size",
       ListJobs([](auto& r) { r.set_page_size(1001); })},
      {"ListJobs", "page_token", "garbage", kInvalid, "page_token",
       ListJobs([](auto& r) { r.set_page_token("not-a-token"); })},
      {"ListJobs", "page_token", "1 MiB", kInvalid, "page_token",
       ListJobs([](auto& r) { r.set_page_token(kHuge); })},
      {"ListJobs", "page_token", "unicode", kInvalid, "page_token",
       ListJobs([](auto& r) { r.set_page_token(kUnicode); })},
      {"ListJobs", "state", "99 (no such enum value)", kInvalid, "state",
       ListJobs([](auto& r) { r.set_state(static_cast<v1::JobState>(99)); })},
      {"ListJobs", "created_after", "nanos -1", kInvalid, "created_after",
       ListJobs([](auto& r) { r.mutable_created_after()->set_nanos(-1); })},
      {"ListJobs", "created_after", "seconds past year 9999", kInvalid, "created_after",
       ListJobs([](auto& r) { r.mutable_created_after()->set_seconds(253402300800LL); })},
      {"ListModels", "page_size", "-5", kInvalid, "page_size",
       ListModels([](auto& r) { r.set_page_size(-5); })},
      {"ListModels", "page_size", "2^31-1", kInvalid, "page_size",
       ListModels([](auto& r) { r.set_page_size(2147483647); })},
      {"ListModels", "page_token", "garbage", kInvalid, "page_token",
       ListModels([](auto& r) { r.set_page_token("AAAA"); })},
      {"ListModels", "page_token", "NUL bytes", kInvalid, "page_token",
       ListModels([](auto& r) { r.set_page_token(std::string(8, '\0')); })},
      {"ListModels", "created_after", "nanos 10^9", kInvalid, "created_after",
       ListModels([](auto& r) { r.mutable_created_after()->set_nanos(1000000000); })},
      {"ListModels", "created_after", "seconds before year 1", kInvalid, "created_after",
       ListModels([](auto& r) { r.mutable_created_after()->set_seconds(-62135596801LL); })},
      {"ListDatasets", "page_size", "-1", kInvalid, "page_size",
       ListDatasets([](auto& r) { r.set_page_size(-1); })},
      {"ListDatasets", "page_token", "garbage", kInvalid, "page_token",
       ListDatasets([](auto& r) { r.set_page_token("!!!"); })},

      // Evaluate.
      {"Evaluate", "model_id", "unknown", SC::NOT_FOUND, "model-nope",
       Evaluate([](auto& r) { r.set_model_id("model-nope"); })},
      {"Evaluate", "model_id", "path-shaped", SC::NOT_FOUND, kPath,
       Evaluate([](auto& r) { r.set_model_id(kPath); })},
      {"Evaluate", "model_id", "1 MiB", SC::NOT_FOUND, "model_id",
       Evaluate([](auto& r) { r.set_model_id(kHuge); })},
      {"Evaluate", "dataset", "unknown", SC::NOT_FOUND, "no-such-set",
       Evaluate([](auto& r) { r.set_dataset("no-such-set"); })},
      {"Evaluate", "dataset", "NUL inside", SC::NOT_FOUND, "dataset",
       Evaluate([](auto& r) { r.set_dataset(kNul); })},
      {"Evaluate", "dataset", "path-shaped", SC::NOT_FOUND, "dataset",
       Evaluate([](auto& r) { r.set_dataset(kPath); })},

      // Predict.
      {"Predict", "images", "none", kInvalid, "images",
       Predict([](auto& r) { r.clear_images(); })},
      {"Predict", "images", "10,001 (over --max_predict_images)", SC::RESOURCE_EXHAUSTED,
       "max_predict_images", Predict([](auto& r) {
         for (int i = 0; i < 10000; ++i) r.add_images()->set_raw_pixels(std::string(784, '\0'));
       })},
      {"Predict", "images[0]", "no data set", kInvalid, "images[0]",
       Predict([](auto& r) { r.mutable_images(0)->Clear(); })},
      {"Predict", "images[0].raw_pixels", "empty", kInvalid, "raw_pixels",
       Predict([](auto& r) { r.mutable_images(0)->set_raw_pixels(""); })},
      {"Predict", "images[0].raw_pixels", "783 bytes", kInvalid, "raw_pixels",
       Predict([](auto& r) { r.mutable_images(0)->set_raw_pixels(std::string(783, '\0')); })},
      {"Predict", "images[0].raw_pixels", "1 MiB", kInvalid, "raw_pixels",
       Predict([](auto& r) { r.mutable_images(0)->set_raw_pixels(kHuge); })},
      {"Predict", "images[1].raw_pixels", "785 bytes (second image)", kInvalid, "images[1]",
       Predict([](auto& r) { r.add_images()->set_raw_pixels(std::string(785, '\0')); })},
      {"Predict", "images[0].float_pixels", "783 values", kInvalid, "float_pixels",
       FloatPixels(std::vector<float>(783, 0.5f))},
      {"Predict", "images[0].float_pixels", "NaN", kInvalid, "float_pixels", [] {
         std::vector<float> values(784, 0.5f);
         values[100] = std::nanf("");
         return FloatPixels(values);
       }()},
      {"Predict", "images[0].float_pixels", "infinity", kInvalid, "float_pixels", [] {
         std::vector<float> values(784, 0.5f);
         values[0] = HUGE_VALF;
         return FloatPixels(values);
       }()},
      {"Predict", "images[0].float_pixels", "-0.5", kInvalid, "float_pixels", [] {
         std::vector<float> values(784, 0.5f);
         values[783] = -0.5f;
         return FloatPixels(values);
       }()},
      {"Predict", "images[0].float_pixels", "1.5", kInvalid, "float_pixels", [] {
         std::vector<float> values(784, 0.5f);
         values[1] = 1.5f;
         return FloatPixels(values);
       }()},
      {"Predict", "images[0].encoded", "empty", kInvalid, "encoded",
       Predict([](auto& r) { r.mutable_images(0)->set_encoded(""); })},
      {"Predict", "images[0].encoded", "not PNG or JPEG", kInvalid, "encoded",
       Predict([](auto& r) { r.mutable_images(0)->set_encoded("GIF89a not an image"); })},
      {"Predict", "images[0].encoded", "a PNG signature, then garbage", kInvalid, "encoded",
       Predict([](auto& r) {
         r.mutable_images(0)->set_encoded(std::string("\x89PNG\r\n\x1a\n", 8) + kHuge);
       })},
      {"Predict", "images[0].encoded", "a JPEG header, then nothing", kInvalid, "encoded",
       Predict([](auto& r) { r.mutable_images(0)->set_encoded(std::string("\xff\xd8\xff", 3)); })},
      {"Predict", "top_k", "-1", kInvalid, "top_k", Predict([](auto& r) { r.set_top_k(-1); })},
      {"Predict", "top_k", "11 (more than the classes)", kInvalid, "top_k",
       Predict([](auto& r) { r.set_top_k(11); })},
      {"Predict", "top_k", "2^31-1", kInvalid, "top_k",
       Predict([](auto& r) { r.set_top_k(2147483647); })},
      {"Predict", "model_id", "unknown", SC::NOT_FOUND, "model-nope",
       Predict([](auto& r) { r.set_model_id("model-nope"); })},
      {"Predict", "model_id", "unicode", SC::NOT_FOUND, "model_id",
       Predict([](auto& r) { r.set_model_id(kUnicode); })},

      // ExportWeights.
      {"ExportWeights", "model_id", "unknown", SC::NOT_FOUND, "model-nope",
       Export([](auto& r) { r.set_model_id("model-nope"); })},
      {"ExportWeights", "model_id", "path-shaped", SC::NOT_FOUND, kPath,
       Export([](auto& r) { r.set_model_id(kPath); })},
      {"ExportWeights", "format", "99 (no such enum value)", kInvalid, "format",
       Export([](auto& r) { r.set_format(static_cast<v1::WeightsFormat>(99)); })},

      // ImportWeights.
      {"ImportWeights", "data", "no message at all", kInvalid, "data", Import({})},
      {"ImportWeights", "data", "empty", kInvalid, "data", Import({ImportMessage("")})},
      {"ImportWeights", "data", "1 MiB of garbage", kInvalid, "data",
       Import({ImportMessage(kHuge)})},
      {"ImportWeights", "data", "a zip signature, then garbage", kInvalid, "data",
       Import({ImportMessage(std::string("PK\x03\x04", 4) + std::string(1000, '\x7f'))})},
      {"ImportWeights", "data", "a pickle that calls os.system", kInvalid, "data",
       Import({ImportMessage("cos\nsystem\n(S'true'\ntR.")})},
      {"ImportWeights", "dataset", "unknown", SC::NOT_FOUND, "no-such-set",
       Import({ImportMessage("x", "no-such-set")})},
      {"ImportWeights", "dataset", "path-shaped", SC::NOT_FOUND, "dataset",
       Import({ImportMessage("x", kPath)})},
      {"ImportWeights", "format", "ONNX (export only)", kInvalid, "format",
       Import({ImportMessage("x", "", v1::ONNX)})},
      {"ImportWeights", "format", "99 (no such enum value)", kInvalid, "format",
       Import({ImportMessage("x", "", 99)})},

      // DeployModel, DeleteModel.
      {"DeployModel", "model_id", "empty", kInvalid, "model_id", Deploy("")},
      {"DeployModel", "model_id", "unknown", SC::NOT_FOUND, "model-nope", Deploy("model-nope")},
      {"DeployModel", "model_id", "path-shaped", SC::NOT_FOUND, kPath, Deploy(kPath)},
      {"DeployModel", "model_id", "NUL inside", SC::NOT_FOUND, "model_id",
       Deploy(std::string("model-\0", 7))},
      {"DeleteModel", "model_id", "empty", kInvalid, "model_id", Delete("")},
      {"DeleteModel", "model_id", "unknown", SC::NOT_FOUND, "model-nope", Delete("model-nope")},
      {"DeleteModel", "model_id", "path-shaped", SC::NOT_FOUND, kPath, Delete(kPath)},
      {"DeleteModel", "model_id", "the deployed model", SC::FAILED_PRECONDITION, "deployed",
       Delete(model_id)},

      // RegisterDataset.
      {"RegisterDataset", "name", "empty", kInvalid, "name", RegisterDataset("", "sets/a")},
      {"RegisterDataset", "name", "upper case", kInvalid, "name",
       RegisterDataset("Digits", "sets/a")},
      {"RegisterDataset", "name", "65 characters", kInvalid, "name",
       RegisterDataset(std::string(65, 'a'), "sets/a")},
      {"RegisterDataset", "name", "path-shaped", kInvalid, "name",
       RegisterDataset(kPath, "sets/a")},
      {"RegisterDataset", "name", "unicode", kInvalid, "name", RegisterDataset(kUnicode, "sets/a")},
      {"RegisterDataset", "name", "NUL inside", kInvalid, "name", RegisterDataset(kNul, "sets/a")},
      {"RegisterDataset", "name", "reserved (mnist)", kInvalid, "mnist",
       RegisterDataset("mnist", "mnist")},
      {"RegisterDataset", "path", "empty", kInvalid, "path", RegisterDataset("digits", "")},
      {"RegisterDataset", "path", "absolute", kInvalid, "path",
       RegisterDataset("digits", "/etc")},
      {"RegisterDataset", "path", "leaves the data directory", kInvalid, "path",
       RegisterDataset("digits", kPath)},
      {"RegisterDataset", "path", "NUL inside", kInvalid, "path",
       RegisterDataset("digits", std::string("mnist\0/x", 8))},
      {"RegisterDataset", "path", "a folder that does not exist", SC::NOT_FOUND, "path",
       RegisterDataset("digits", "no/such/folder")},
      {"RegisterDataset", "path", "1 MiB", SC::NOT_FOUND, "path",
       RegisterDataset("digits", kHuge)},

      // The Open Inference Protocol (inference.GRPCInferenceService).
      {"ModelInfer", "model_name", "empty", kInvalid, "model_name",
       ModelInfer([](auto& r) { r.set_model_name(""); })},
      {"ModelInfer", "model_name", "unknown", SC::NOT_FOUND, "model-nope",
       ModelInfer([](auto& r) { r.set_model_name("model-nope"); })},
      {"ModelInfer", "model_name", "path-shaped", SC::NOT_FOUND, "model",
       ModelInfer([](auto& r) { r.set_model_name(kPath); })},
      {"ModelInfer", "model_version", "2", SC::NOT_FOUND, "model_version '2'",
       ModelInfer([](auto& r) { r.set_model_version("2"); })},
      {"ModelInfer", "inputs", "none", kInvalid, "inputs has 0 tensors",
       ModelInfer([](auto& r) { r.clear_inputs(); })},
      {"ModelInfer", "inputs", "two", kInvalid, "inputs has 2 tensors",
       ModelInfer([](auto& r) { *r.add_inputs() = r.inputs(0); })},
      {"ModelInfer", "inputs[0].name", "unknown", kInvalid, "inputs[0].name",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_name("images"); })},
      {"ModelInfer", "inputs[0].datatype", "BYTES", kInvalid, "datatype 'BYTES'",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_datatype("BYTES"); })},
      {"ModelInfer", "inputs[0].datatype", "empty", kInvalid, "datatype ''",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_datatype(""); })},
      {"ModelInfer", "inputs[0].shape", "27 x 28 images", kInvalid, "does not match",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_shape(1, 27); })},
      {"ModelInfer", "inputs[0].shape", "no dimensions", kInvalid, "shape []",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->clear_shape(); })},
      {"ModelInfer", "inputs[0].shape", "0 images", kInvalid, "no images",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_shape(0, 0); })},
      {"ModelInfer", "inputs[0].shape", "-1 images", kInvalid, "no images",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_shape(0, -1); })},
      {"ModelInfer", "inputs[0].shape", "2^62 images", SC::RESOURCE_EXHAUSTED,
       "--max_predict_images",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->set_shape(0, int64_t{1} << 62); })},
      {"ModelInfer", "raw_input_contents[0]", "one byte short", kInvalid,
       "raw_input_contents[0] has 783 bytes",
       ModelInfer([](auto& r) { r.mutable_raw_input_contents(0)->pop_back(); })},
      {"ModelInfer", "raw_input_contents", "two entries", kInvalid, "raw_input_contents has 2",
       ModelInfer([](auto& r) { r.add_raw_input_contents("x"); })},
      {"ModelInfer", "inputs[0].contents", "as well as raw", kInvalid, "both contents",
       ModelInfer([](auto& r) { r.mutable_inputs(0)->mutable_contents()->add_uint_contents(1); })},
      {"ModelInfer", "inputs[0].contents.uint_contents", "783 values", kInvalid,
       "uint_contents has 783", ModelInfer([](auto& r) {
         r.clear_raw_input_contents();
         for (int i = 0; i < 783; ++i) r.mutable_inputs(0)->mutable_contents()->add_uint_contents(0);
       })},
      {"ModelInfer", "inputs[0].contents.uint_contents", "256", kInvalid, "is 256",
       ModelInfer([](auto& r) {
         r.clear_raw_input_contents();
         for (int i = 0; i < 784; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_uint_contents(i == 5 ? 256 : 0);
         }
       })},
      {"ModelInfer", "inputs[0].contents.fp32_contents", "NaN", kInvalid, "element 0 is nan",
       ModelInfer([](auto& r) {
         r.clear_raw_input_contents();
         r.mutable_inputs(0)->set_datatype("FP32");
         r.mutable_inputs(0)->clear_shape();
         for (const int64_t dimension : {1, 1, 28, 28}) r.mutable_inputs(0)->add_shape(dimension);
         for (int i = 0; i < 784; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(i == 0 ? kNaN : 0.5f);
         }
       })},
      {"ModelInfer", "inputs[0].contents.fp32_contents", "infinity", kInvalid,
       "element 3 is inf", ModelInfer([](auto& r) {
         r.clear_raw_input_contents();
         r.mutable_inputs(0)->set_datatype("FP32");
         r.mutable_inputs(0)->clear_shape();
         for (const int64_t dimension : {1, 1, 28, 28}) r.mutable_inputs(0)->add_shape(dimension);
         for (int i = 0; i < 784; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_fp32_contents(i == 3 ? kInfinity : 0.5f);
         }
       })},
      {"ModelInfer", "outputs[0].name", "unknown", kInvalid, "outputs[0].name is 'logits'",
       ModelInfer([](auto& r) { r.add_outputs()->set_name("logits"); })},
      {"ModelMetadata", "name", "empty", kInvalid, "name is empty", ModelMetadata("", "")},
      {"ModelMetadata", "name", "unicode", SC::NOT_FOUND, "model", ModelMetadata(kUnicode, "")},
      {"ModelMetadata", "version", "1 MiB", SC::NOT_FOUND, "version", ModelMetadata("classifier", kHuge)},

      // GetDatasetSamples.
      {"GetDatasetSamples", "dataset", "unknown", SC::NOT_FOUND, "no-such-set",
       Samples([](auto& r) { r.set_dataset("no-such-set"); })},
      {"GetDatasetSamples", "dataset", "unicode", SC::NOT_FOUND, "dataset",
       Samples([](auto& r) { r.set_dataset(kUnicode); })},
      {"GetDatasetSamples", "count", "-1", kInvalid, "count",
       Samples([](auto& r) { r.set_count(-1); })},
      {"GetDatasetSamples", "count", "257", kInvalid, "count",
       Samples([](auto& r) { r.set_count(257); })},
      {"GetDatasetSamples", "count", "2^31-1", kInvalid, "count",
       Samples([](auto& r) { r.set_count(2147483647); })},
      {"GetDatasetSamples", "split", "99 (no such enum value)", kInvalid, "split",
       Samples([](auto& r) { r.set_split(static_cast<v1::DatasetSplit>(99)); })},

      // WorkerSession (a classifier-worker registering).
      {"WorkerSession", "build_version", "another build", SC::FAILED_PRECONDITION, "other-build",
       WorkerSession([](auto& r) { r.set_build_version("other-build"); })},
      {"WorkerSession", "build_version", "empty", SC::FAILED_PRECONDITION, "build_version",
       WorkerSession([](auto& r) { r.set_build_version(""); })},
      {"WorkerSession", "build_version", "1 MiB", SC::FAILED_PRECONDITION, "build_version",
       WorkerSession([](auto& r) { r.set_build_version(kHuge); })},
      {"WorkerSession", "max_ranks", "0", kInvalid, "max_ranks",
       WorkerSession([](auto& r) { r.set_max_ranks(0); })},
      {"WorkerSession", "max_ranks", "-1", kInvalid, "max_ranks",
       WorkerSession([](auto& r) { r.set_max_ranks(-1); })},
      {"WorkerSession", "max_ranks", "1025", kInvalid, "max_ranks",
       WorkerSession([](auto& r) { r.set_max_ranks(1025); })},
      {"WorkerSession", "server_address", "empty", kInvalid, "server_address",
       WorkerSession([](auto& r) { r.set_server_address(""); })},
      {"WorkerSession", "server_address", "1 MiB", kInvalid, "server_address",
       WorkerSession([](auto& r) { r.set_server_address(kHuge); })},
      {"WorkerSession", "worker_name", "1 MiB", kInvalid, "worker_name",
       WorkerSession([](auto& r) { r.set_worker_name(kHuge); })},
  };
  return rows;
}

// The rows as the markdown table of docs/bad-inputs.md.
std::string Table(const std::vector<BadInput>& rows) {
  std::ostringstream out;
  out << "| # | RPC | field | hostile value | status | the message names |\n"
      << "| --- | --- | --- | --- | --- | --- |\n";
  int number = 0;
  for (const BadInput& row : rows) {
    // Ids made at run time (the trained model's and job's) read as what they are.
    std::string names = row.message;
    if (names.rfind("job-", 0) == 0 && names != "job-nope") names = "the job's id";
    if (names.rfind("model-", 0) == 0 && names != "model-nope") names = "the model's id";
    names = absl::StrReplaceAll(names, {{"|", "\\|"}});
    out << "| " << ++number << " | " << row.rpc << " | `" << row.field << "` | " << row.value
        << " | " << CodeName(row.code) << " | `" << names << "` |\n";
  }
  return out.str();
}

class BadInputTest : public testing::ServerFixture {};

TEST_F(BadInputTest, EveryHostileValueGetsItsStatusAndAMessageNamingTheField) {
  const std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.back().job_id();
  const std::string model_id = events.back().finished().model_id();
  ASSERT_FALSE(model_id.empty());
  {
    ::grpc::ClientContext context;
    v1::DeployModelRequest request;
    request.set_model_id(model_id);
    v1::Model deployed;
    ASSERT_TRUE(stub_->DeployModel(&context, request, &deployed).ok());
  }
  const std::vector<BadInput> rows = Catalogue(job_id, model_id);
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference_stub =
      inference::GRPCInferenceService::NewStub(channel_);
  Stubs stubs{*stub_, *inference_stub};
  EXPECT_GE(rows.size(), 100u);

  for (size_t i = 0; i < rows.size(); ++i) {
    const BadInput& row = rows[i];
    SCOPED_TRACE(absl::StrCat("row ", i + 1, ": ", row.rpc, " ", row.field, " = ", row.value));
    const ::grpc::Status status = row.call(stubs);
    EXPECT_EQ(CodeName(status.error_code()), CodeName(row.code)) << status.error_message();
    EXPECT_THAT(status.error_message(), ::testing::HasSubstr(row.message));
  }

  // Nothing was half-written: one job, one model (deployed), the built-in datasets, one weight
  // file and no temporary ones; and the server still answers.
  ::grpc::ClientContext jobs_context;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(&jobs_context, v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 1);
  ::grpc::ClientContext models_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub_->ListModels(&models_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_TRUE(models.models(0).deployed());
  ::grpc::ClientContext datasets_context;
  v1::ListDatasetsResponse datasets;
  ASSERT_TRUE(stub_->ListDatasets(&datasets_context, v1::ListDatasetsRequest(), &datasets).ok());
  EXPECT_EQ(datasets.datasets_size(), 2);
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path() + "/state/models")) {
    files.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(files, ::testing::ElementsAre(model_id + ".pth"));
  v1::PredictRequest predict;
  *predict.add_images() = RawImage(test_, 0);
  v1::PredictResponse predicted;
  EXPECT_TRUE(Predict(predict, &predicted).ok());

  // The documented table is these rows.
  const char* source_dir = std::getenv("CLASSIFIER_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr);
  const std::string doc_path = std::string(source_dir) + "/docs/bad-inputs.md";
  std::ifstream doc_file(doc_path);
  std::stringstream doc;
  doc << doc_file.rdbuf();
  const std::string table = Table(rows);
  const char* update = std::getenv("CLASSIFIER_UPDATE_DOCS");
  if (update != nullptr && std::string(update) == "1") {
    std::string text = doc.str();
    const std::string begin = "<!-- table: tests/server/bad_input_test.cc -->\n";
    const std::string end = "<!-- end of table -->";
    const size_t from = text.find(begin);
    const size_t to = text.find(end);
    ASSERT_TRUE(from != std::string::npos && to != std::string::npos) << doc_path;
    text = text.substr(0, from + begin.size()) + table + text.substr(to);
    std::ofstream(doc_path) << text;
  } else {
    EXPECT_THAT(doc.str(), ::testing::HasSubstr(table))
        << doc_path << " does not hold this table; rerun with CLASSIFIER_UPDATE_DOCS=1";
  }
}

}  // namespace
}  // namespace classifier
