// Runs classifier-cli's commands through a real channel against an in-process fake server on
// an ephemeral loopback port.
#include "client/commands.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/args.h"
#include "client/weights_file.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// Canned answers, and the requests it saw. Set the answers before the call; read the requests
// after it (the RPC's completion orders the two).
class FakeClassifier final : public v1::Classifier::Service {
 public:
  template <typename Item, typename Request, typename Response>
  grpc::Status Page(const google::protobuf::RepeatedPtrField<Item>& all, const Request& request,
                    google::protobuf::RepeatedPtrField<Item>* page, Response* response) {
    const int offset = request.page_token().empty() ? 0 : std::stoi(request.page_token());
    const int size =
        std::min(request.page_size() == 0 ? default_page_size : request.page_size(), max_page_size);
    for (int i = offset; i < std::min(all.size(), offset + size); ++i) *page->Add() = all[i];
    if (offset + size < all.size()) response->set_next_page_token(std::to_string(offset + size));
    return grpc::Status::OK;
  }

  std::vector<v1::JobEvent> events;
  grpc::Status stream_status = grpc::Status::OK;
  // When set, what WatchJob streams (then OK) instead of `events` and `stream_status`: the job
  // seen again after Train's stream broke.
  std::optional<std::vector<v1::JobEvent>> watch_events;
  bool hold_stream_open = false;  // After the events, wait until the client cancels.
  std::vector<v1::WeightsChunk> chunks;
  // Listed page by page: a page_size of 0 is `default_page_size`; a token is the offset.
  v1::ListJobsResponse jobs;
  v1::ListModelsResponse models;
  int default_page_size = 100;
  int max_page_size = 1000;  // Larger page sizes get shorter pages (as a server may answer).
  std::vector<v1::ListJobsRequest> list_jobs_requests;
  std::vector<v1::ListModelsRequest> list_models_requests;
  v1::EvaluateResponse evaluation;
  int extra_predictions = 0;

  v1::TrainRequest train_request;
  v1::WatchJobRequest watch_request;
  v1::EvaluateRequest evaluate_request;
  v1::PredictRequest predict_request;
  v1::ExportWeightsRequest export_request;
  bool client_cancelled = false;
  // ImportWeights: every message received, and the answer. The answer's model gets the
  // received bytes' size and digest unless `import_model` sets them.
  std::vector<v1::ImportWeightsRequest> import_messages;
  v1::Model import_model;
  bool import_fill_figures = true;
  grpc::Status import_status = grpc::Status::OK;
  // DeployModel / DeleteModel: the models that exist, which one is deployed, what was asked.
  std::vector<std::string> model_ids = {"model-1", "model-2"};
  std::string deployed_id = "model-1";
  std::string deploy_request_id;
  std::string delete_request_id;

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainRequest* request,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    train_request = *request;
    return StreamEvents(context, writer);
  }
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    watch_request = *request;
    if (watch_events.has_value()) {
      for (const v1::JobEvent& event : *watch_events) writer->Write(event);
      return grpc::Status::OK;
    }
    return StreamEvents(context, writer);
  }
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* request,
                      v1::Job* job) override {
    for (const v1::Job& j : jobs.jobs()) {
      if (j.job_id() == request->job_id()) {
        *job = j;
        return grpc::Status::OK;
      }
    }
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job \"" + request->job_id() + "\"");
  }
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override {
    list_jobs_requests.push_back(*request);
    return Page(jobs.jobs(), *request, response->mutable_jobs(), response);
  }
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* request,
                         v1::Job* job) override {
    job->set_job_id(request->job_id());
    job->set_state(v1::JOB_STATE_RUNNING);
    return grpc::Status::OK;
  }
  grpc::Status Evaluate(grpc::ServerContext*, const v1::EvaluateRequest* request,
                        v1::EvaluateResponse* response) override {
    evaluate_request = *request;
    *response = evaluation;
    return grpc::Status::OK;
  }
  // Label = the image's byte count modulo 10, so a test can tell the images apart.
  grpc::Status Predict(grpc::ServerContext*, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override {
    predict_request = *request;
    for (int i = 0; i < request->images_size() + extra_predictions; ++i) {
      const int label = i < request->images_size()
                            ? static_cast<int>(request->images(i).encoded().size() % 10)
                            : 0;
      v1::Prediction* p = response->add_predictions();
      p->set_label(label);
      p->set_probability(0.75f);
      for (int k = 0; k < request->top_k(); ++k) {
        v1::LabelProbability* top = p->add_top_k();
        top->set_label(k == 0 ? label : (label + k) % 10);
        top->set_probability(k == 0 ? 0.75f : 0.25f / request->top_k());
      }
    }
    return grpc::Status::OK;
  }
  grpc::Status ExportWeights(grpc::ServerContext*, const v1::ExportWeightsRequest* request,
                             grpc::ServerWriter<v1::WeightsChunk>* writer) override {
    export_request = *request;
    for (const v1::WeightsChunk& chunk : chunks) writer->Write(chunk);
    return stream_status;
  }
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest* request,
                          v1::ListModelsResponse* response) override {
    list_models_requests.push_back(*request);
    return Page(models.models(), *request, response->mutable_models(), response);
  }
  grpc::Status ImportWeights(grpc::ServerContext*,
                             grpc::ServerReader<v1::ImportWeightsRequest>* reader,
                             v1::ImportWeightsResponse* response) override {
    // A rejection arrives before the upload ends, as a server that checks the first message.
    if (!import_status.ok()) return import_status;
    std::string bytes;
    v1::ImportWeightsRequest request;
    while (reader->Read(&request)) {
      import_messages.push_back(request);
      bytes += request.data();
    }
    *response->mutable_model() = import_model;
    if (import_fill_figures) {
      response->mutable_model()->set_size_bytes(static_cast<int64_t>(bytes.size()));
      response->mutable_model()->set_sha256(Sha256Hex(bytes));
    }
    return grpc::Status::OK;
  }
  grpc::Status DeployModel(grpc::ServerContext*, const v1::DeployModelRequest* request,
                           v1::Model* model) override {
    deploy_request_id = request->model_id();
    if (std::find(model_ids.begin(), model_ids.end(), request->model_id()) == model_ids.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model \"" + request->model_id() + "\"");
    }
    deployed_id = request->model_id();
    model->set_model_id(request->model_id());
    model->set_deployed(true);
    return grpc::Status::OK;
  }
  grpc::Status DeleteModel(grpc::ServerContext*, const v1::DeleteModelRequest* request,
                           v1::DeleteModelResponse*) override {
    delete_request_id = request->model_id();
    const auto it = std::find(model_ids.begin(), model_ids.end(), request->model_id());
    if (it == model_ids.end()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no model \"" + request->model_id() + "\"");
    }
    if (request->model_id() == deployed_id) {
      return grpc::Status(
          grpc::StatusCode::FAILED_PRECONDITION,
          "model \"" + request->model_id() + "\" is deployed; deploy another first");
    }
    model_ids.erase(it);
    return grpc::Status::OK;
  }

 private:
  grpc::Status StreamEvents(grpc::ServerContext* context,
                            grpc::ServerWriter<v1::JobEvent>* writer) {
    for (const v1::JobEvent& event : events) writer->Write(event);
    if (hold_stream_open) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!context->IsCancelled() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      client_cancelled = context->IsCancelled();
    }
    return stream_status;
  }
};

class FakeHealth final : public grpc::health::v1::Health::Service {
 public:
  grpc::health::v1::HealthCheckResponse::ServingStatus status =
      grpc::health::v1::HealthCheckResponse::SERVING;
  std::string service;

  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* request,
                     grpc::health::v1::HealthCheckResponse* response) override {
    service = request->service();
    response->set_status(status);
    return grpc::Status::OK;
  }
};

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

class ClientCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&classifier_);
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    address_ = "127.0.0.1:" + std::to_string(port);
    auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    classifier_stub_ = v1::Classifier::NewStub(channel);
    health_stub_ = grpc::health::v1::Health::NewStub(channel);
  }

  void TearDown() override { server_->Shutdown(); }

  Result Run(std::vector<std::string> argv, bool terminal = false) {
    absl::StatusOr<Invocation> invocation = ParseArgs(argv, address_);
    EXPECT_TRUE(invocation.ok()) << invocation.status();
    if (!invocation.ok()) return {kExitUsage, "", ""};
    std::ostringstream out;
    std::ostringstream err;
    CommandEnvironment environment;
    environment.classifier = classifier_stub_.get();
    environment.health = health_stub_.get();
    environment.out = &out;
    environment.err = &err;
    environment.terminal = terminal;
    const int code = RunCommand(*invocation, environment);
    return {code, out.str(), err.str()};
  }

  static v1::JobEvent Event(int64_t sequence) {
    v1::JobEvent event;
    event.set_job_id("job-1");
    event.set_sequence(sequence);
    event.mutable_time()->set_seconds(1714564800 + sequence);
    return event;
  }

  // queued, started, a progress report, one epoch, then the end in `state`.
  void CannedJob(v1::JobState state, const std::string& error = "") {
    v1::JobEvent event = Event(1);
    event.mutable_queued()->set_position(0);
    classifier_.events.push_back(event);
    event = Event(2);
    event.mutable_started()->set_device("cpu");
    event.mutable_started()->set_train_images(60000);
    event.mutable_started()->set_epochs(1);
    classifier_.events.push_back(event);
    event = Event(3);
    v1::JobEvent::Progress* progress = event.mutable_progress();
    progress->set_epoch(1);
    progress->set_epochs(1);
    progress->set_batch(500);
    progress->set_batches(1000);
    progress->set_train_loss(0.3);
    progress->set_train_accuracy(0.9);
    progress->set_images_per_second(20000);
    classifier_.events.push_back(event);
    event = Event(4);
    v1::JobEvent::EpochEnd* epoch = event.mutable_epoch_end();
    epoch->set_epoch(1);
    epoch->set_epochs(1);
    epoch->set_train_loss(0.0712);
    epoch->set_train_accuracy(0.9785);
    epoch->set_images_per_second(18234);
    epoch->set_elapsed_seconds(4.1);
    epoch->set_eta_seconds(0);
    classifier_.events.push_back(event);
    event = Event(5);
    v1::JobEvent::Finished* finished = event.mutable_finished();
    finished->set_state(state);
    finished->set_error(error);
    if (state == v1::JOB_STATE_SUCCEEDED) {
      finished->set_model_id("model-1");
      finished->mutable_test_metrics()->set_accuracy(0.9891);
      finished->mutable_test_metrics()->set_loss(0.0345);
      finished->mutable_test_metrics()->set_count(10000);
    }
    classifier_.events.push_back(event);
  }

  FakeClassifier classifier_;
  FakeHealth health_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::unique_ptr<v1::Classifier::Stub> classifier_stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST_F(ClientCommandsTest, HealthServing) {
  Result r = Run({"health"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "SERVING\n");
  EXPECT_EQ(health_.service, "");
}

TEST_F(ClientCommandsTest, HealthNotServing) {
  health_.status = grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  Result r = Run({"health", "--service", "classifier.v1.Classifier"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.out, "NOT_SERVING\n");
  EXPECT_EQ(health_.service, "classifier.v1.Classifier");
}

TEST(ClientCommandsUnreachableTest, UnreachableServerIsAServerError) {
  // Port 1 on loopback: nothing listens there.
  auto channel = grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials());
  auto classifier = v1::Classifier::NewStub(channel);
  auto health = grpc::health::v1::Health::NewStub(channel);
  std::ostringstream out;
  std::ostringstream err;
  CommandEnvironment environment;
  environment.classifier = classifier.get();
  environment.health = health.get();
  environment.out = &out;
  environment.err = &err;
  for (const std::vector<std::string>& argv :
       std::vector<std::vector<std::string>>{{"health"}, {"jobs"}, {"train"}}) {
    absl::StatusOr<Invocation> invocation = ParseArgs(argv, "");
    ASSERT_TRUE(invocation.ok());
    err.str("");
    EXPECT_EQ(RunCommand(*invocation, environment), kExitServerError);
    EXPECT_THAT(err.str(), StartsWith("error: UNAVAILABLE: "));
  }
  EXPECT_EQ(out.str(), "");
}

TEST_F(ClientCommandsTest, TrainSendsEveryFlagAndPrintsALog) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  Result r = Run({"train", "--dataset", "fashion-mnist", "--epochs", "1", "--batch_size", "64",
                  "--learning_rate", "0.002", "--seed", "42", "--optimizer", "adam",
                  "--progress_reports_per_epoch", "4"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "job job-1 queued (position 0)\n"
            "job job-1 started on cpu: 60000 training images, 1 epochs\n"
            "epoch 1/1 |████████████████████| 100% loss 0.0712 acc 97.85% 18234 img/s "
            "elapsed 4.1s eta 0.0s\n"
            "job job-1 succeeded: model model-1, test accuracy 98.91% (loss 0.0345, 10000 "
            "images)\n");
  const v1::TrainRequest& request = classifier_.train_request;
  EXPECT_EQ(request.dataset(), "fashion-mnist");
  EXPECT_EQ(request.epochs(), 1);
  EXPECT_EQ(request.batch_size(), 64);
  EXPECT_DOUBLE_EQ(request.learning_rate(), 0.002);
  EXPECT_EQ(request.seed(), 42u);
  EXPECT_EQ(request.optimizer(), v1::OPTIMIZER_KIND_ADAM);
  EXPECT_EQ(request.progress_reports_per_epoch(), 4);
  EXPECT_FALSE(request.deploy_when_done());
}

TEST_F(ClientCommandsTest, TrainSendsTheValidationAndOptimizerFlags) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  Result r = Run({"train",
                  "--validation_fraction",
                  "0.1",
                  "--keep_best",
                  "--early_stopping_patience",
                  "3",
                  "--optimizer",
                  "sgd",
                  "--momentum",
                  "0.9",
                  "--weight_decay",
                  "1e-4",
                  "--label_smoothing",
                  "0.1",
                  "--lr_schedule",
                  "step",
                  "--lr_step_size",
                  "2",
                  "--lr_gamma",
                  "0.5"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  const v1::TrainRequest& request = classifier_.train_request;
  EXPECT_DOUBLE_EQ(request.validation_fraction(), 0.1);
  EXPECT_TRUE(request.keep_best());
  EXPECT_EQ(request.early_stopping_patience(), 3);
  EXPECT_EQ(request.optimizer(), v1::OPTIMIZER_KIND_SGD);
  EXPECT_DOUBLE_EQ(request.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(request.weight_decay(), 1e-4);
  EXPECT_DOUBLE_EQ(request.label_smoothing(), 0.1);
  EXPECT_EQ(request.lr_schedule(), v1::LEARNING_RATE_SCHEDULE_STEP);
  EXPECT_EQ(request.lr_step_size(), 2);
  EXPECT_DOUBLE_EQ(request.lr_gamma(), 0.5);
  EXPECT_FALSE(request.has_augmentation());

  EXPECT_EQ(Run({"train", "--dataset", "fashion-mnist", "--rotation_degrees", "10", "--translation",
                 "0.1", "--scale_min", "0.9", "--scale_max", "1.1", "--horizontal_flip",
                 "--vertical_flip"})
                .exit_code,
            kExitOk);
  const v1::Augmentation& augmentation = classifier_.train_request.augmentation();
  EXPECT_DOUBLE_EQ(augmentation.rotation_degrees(), 10);
  EXPECT_DOUBLE_EQ(augmentation.translation(), 0.1);
  EXPECT_DOUBLE_EQ(augmentation.scale_min(), 0.9);
  EXPECT_DOUBLE_EQ(augmentation.scale_max(), 1.1);
  EXPECT_TRUE(augmentation.horizontal_flip());
  EXPECT_TRUE(augmentation.vertical_flip());

  EXPECT_EQ(Run({"train", "--optimizer", "adamw", "--lr_schedule", "cosine"}).exit_code, kExitOk);
  EXPECT_EQ(classifier_.train_request.optimizer(), v1::OPTIMIZER_KIND_ADAMW);
  EXPECT_EQ(classifier_.train_request.lr_schedule(), v1::LEARNING_RATE_SCHEDULE_COSINE);

  r = Run({"train", "--optimizer", "rmsprop"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("adam, adamw or sgd"));
  r = Run({"train", "--lr_schedule", "linear"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("none, step or cosine"));
}

TEST_F(ClientCommandsTest, TrainDeploySetsDeployWhenDone) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Run({"train", "--deploy_when_done"}).exit_code, kExitOk);
  EXPECT_TRUE(classifier_.train_request.deploy_when_done());
  EXPECT_EQ(Run({"train", "--deploy_when_done=false"}).exit_code, kExitOk);
  EXPECT_FALSE(classifier_.train_request.deploy_when_done());
}

// A job the server resumed after a restart: the resume shows, checkpoints do not (--json has
// every event).
TEST_F(ClientCommandsTest, WatchShowsAResumeButNotCheckpoints) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  v1::JobEvent checkpoint = Event(3);
  checkpoint.mutable_checkpoint_saved()->set_epoch(0);
  checkpoint.mutable_checkpoint_saved()->set_batch(500);
  v1::JobEvent resumed = Event(4);
  resumed.mutable_resumed()->set_epoch(0);
  resumed.mutable_resumed()->set_batch(500);
  classifier_.events.insert(classifier_.events.begin() + 3, {checkpoint, resumed});
  for (int i = 0; i < static_cast<int>(classifier_.events.size()); ++i) {
    classifier_.events[i].set_sequence(i + 1);
  }
  Result r = Run({"watch", "job-1"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "job job-1 queued (position 0)\n"
            "job job-1 started on cpu: 60000 training images, 1 epochs\n"
            "job job-1 resumed at epoch 0, batch 500\n"
            "epoch 1/1 |████████████████████| 100% loss 0.0712 acc 97.85% 18234 img/s "
            "elapsed 4.1s eta 0.0s\n"
            "job job-1 succeeded: model model-1, test accuracy 98.91% (loss 0.0345, 10000 "
            "images)\n");

  r = Run({"watch", "job-1", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 7);
  EXPECT_THAT(r.out, HasSubstr("\"checkpoint_saved\":{\"epoch\":0,\"batch\":\"500\"}"));
  EXPECT_THAT(r.out, HasSubstr("\"resumed\":{\"epoch\":0,\"batch\":\"500\"}"));
}

TEST_F(ClientCommandsTest, TrainDefaults) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(Run({"train"}).exit_code, kExitOk);
  const v1::TrainRequest& request = classifier_.train_request;
  EXPECT_EQ(request.dataset(), "mnist");
  EXPECT_EQ(request.epochs(), 0);
  EXPECT_EQ(request.batch_size(), 0);
  EXPECT_EQ(request.learning_rate(), 0);
  EXPECT_EQ(request.optimizer(), v1::OPTIMIZER_KIND_UNSPECIFIED);
  EXPECT_EQ(request.progress_reports_per_epoch(), 0);
}

TEST_F(ClientCommandsTest, TrainOnATerminalRedrawsProgress) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  Result r = Run({"train"}, /*terminal=*/true);
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("\repoch 1/1 |██████████          |  50% 500/1000 loss 0.3000 "
                               "acc 90.00% 20000 img/s\x1b[K\repoch 1/1 |█████"));
}

TEST_F(ClientCommandsTest, TrainJsonPrintsOneObjectPerEvent) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  Result r = Run({"train", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  std::vector<std::string> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_THAT(lines[0], StartsWith("{\"job_id\":\"job-1\",\"sequence\":\"1\""));
  EXPECT_THAT(lines[0], HasSubstr("\"queued\":{\"position\":0}"));
  EXPECT_THAT(lines[2], HasSubstr("\"progress\":{"));
  EXPECT_THAT(lines[3], HasSubstr("\"eta_seconds\":0"));
  EXPECT_THAT(lines[4], HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));
  EXPECT_THAT(lines[4], HasSubstr("\"time\":\"2024-05-01T12:00:05Z\""));
}

TEST_F(ClientCommandsTest, FailedJobExitsWithTheJobCode) {
  CannedJob(v1::JOB_STATE_FAILED, "loss became NaN in epoch 1");
  Result r = Run({"train"});
  EXPECT_EQ(r.exit_code, kExitJobFailed);
  EXPECT_THAT(r.out, HasSubstr("job job-1 failed\n"));
  EXPECT_EQ(r.err, "error: job job-1 failed: loss became NaN in epoch 1\n");

  classifier_.events.clear();
  CannedJob(v1::JOB_STATE_CANCELLED, "cancelled by request");
  r = Run({"watch", "job-1"});
  EXPECT_EQ(r.exit_code, kExitJobFailed);
  EXPECT_EQ(r.err, "error: job job-1 cancelled: cancelled by request\n");
}

TEST_F(ClientCommandsTest, RejectedTrainRequestPrintsTheServerError) {
  classifier_.stream_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "epochs: 0 is outside 1..1000");
  Result r = Run({"train", "--epochs", "-3"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: epochs: 0 is outside 1..1000\n");
}

TEST_F(ClientCommandsTest, StreamEndingWithoutFinishedIsAnError) {
  v1::JobEvent event = Event(1);
  event.mutable_queued();
  classifier_.events.push_back(event);
  Result r = Run({"train"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_THAT(r.err, HasSubstr("before job job-1 finished"));
}

// A stream cut on the way (the server restarted, or a load balancer in front lost the replica:
// HAProxy 2.6 says UNAVAILABLE or INTERNAL, HAProxy 3.0 resets the stream, CANCELLED) is opened
// again from the next event, and the job is followed to its end.
TEST_F(ClientCommandsTest, TrainFollowsItsJobThroughABrokenStream) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  const std::vector<v1::JobEvent> all = classifier_.events;
  classifier_.events.assign(all.begin(), all.begin() + 2);
  classifier_.watch_events.emplace(all.begin() + 2, all.end());
  const grpc::StatusCode breaks[] = {grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::INTERNAL,
                                     grpc::StatusCode::CANCELLED};
  for (grpc::StatusCode code : breaks) {
    SCOPED_TRACE(code);
    classifier_.stream_status = grpc::Status(code, "Received RST_STREAM with error code 8");
    classifier_.watch_request.Clear();
    Result r = Run({"train", "--json"});
    EXPECT_EQ(r.exit_code, kExitOk) << r.err;
    EXPECT_THAT(r.err, HasSubstr("the stream of job job-1 broke"));
    EXPECT_THAT(r.err, HasSubstr("watching it again from event 3"));
    EXPECT_EQ(classifier_.watch_request.job_id(), "job-1");
    EXPECT_EQ(classifier_.watch_request.from_sequence(), 3);
    // Every event exactly once: five lines, each sequence among them.
    for (int sequence = 1; sequence <= 5; ++sequence) {
      EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"sequence\":\"", sequence, "\"")));
    }
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 5) << r.out;
  }
}

// A refusal is not a break: the CLI reports it and does not watch again.
TEST_F(ClientCommandsTest, TrainDoesNotWatchAgainAfterARefusal) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  classifier_.events.resize(2);
  classifier_.stream_status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no");
  Result r = Run({"train"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  EXPECT_EQ(classifier_.watch_request.job_id(), "");
}

TEST_F(ClientCommandsTest, DetachPrintsTheJobIdAndLeaves) {
  v1::JobEvent event = Event(1);
  event.mutable_queued()->set_position(3);
  classifier_.events.push_back(event);
  classifier_.hold_stream_open = true;
  const auto start = std::chrono::steady_clock::now();
  Result r = Run({"train", "--detach"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "job-1\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(ClientCommandsTest, WatchSendsTheJobAndSequence) {
  CannedJob(v1::JOB_STATE_SUCCEEDED);
  Result r = Run({"watch", "job-1", "--from", "4"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(classifier_.watch_request.job_id(), "job-1");
  EXPECT_EQ(classifier_.watch_request.from_sequence(), 4);
}

TEST_F(ClientCommandsTest, JobsJobAndCancel) {
  v1::Job* job = classifier_.jobs.add_jobs();
  job->set_job_id("job-1");
  job->set_state(v1::JOB_STATE_RUNNING);
  job->mutable_request()->set_dataset("mnist");
  job->mutable_request()->set_epochs(10);
  job->mutable_latest_epoch()->set_epoch(3);
  job->mutable_latest_epoch()->set_epochs(10);

  Result r = Run({"jobs"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out,
            "JOB ID  STATE    DATASET  EPOCHS  PROGRESS  MODEL ID  TEST ACC\n"
            "job-1   running  mnist    10      3/10      -         -\n");

  r = Run({"jobs", "--json"});
  EXPECT_THAT(r.out, StartsWith("{\"jobs\":[{\"job_id\":\"job-1\""));

  r = Run({"job", "job-1"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("state:                      running\n"));

  r = Run({"job", "nope"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no job \"nope\"\n");

  r = Run({"cancel", "job-1"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "job job-1 running (stops at its next batch)\n");
}

TEST_F(ClientCommandsTest, JobsPagesWithLimitOrAllAndSendsTheFilters) {
  for (int i = 1; i <= 5; ++i) {
    v1::Job* job = classifier_.jobs.add_jobs();
    job->set_job_id("job-" + std::to_string(i));
    job->set_state(v1::JOB_STATE_SUCCEEDED);
  }
  classifier_.default_page_size = 2;
  auto job_lines = [](const std::string& out) {
    std::vector<std::string> ids;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      if (absl::StartsWith(line, "job-")) ids.emplace_back(line.substr(0, line.find(' ')));
    }
    return ids;
  };
  // By default one page of the server's, and a note that more exist.
  Result r = Run({"jobs"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(job_lines(r.out), (std::vector<std::string>{"job-1", "job-2"}));
  EXPECT_EQ(r.err, "more jobs exist than shown: --all lists every one, --limit N the first N\n");
  ASSERT_EQ(classifier_.list_jobs_requests.size(), 1u);
  EXPECT_EQ(classifier_.list_jobs_requests[0].page_size(), 0);

  classifier_.list_jobs_requests.clear();
  r = Run({"jobs", "--all"});
  EXPECT_EQ(job_lines(r.out),
            (std::vector<std::string>{"job-1", "job-2", "job-3", "job-4", "job-5"}));
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(classifier_.list_jobs_requests.size(), 1u);  // --all asks for the largest pages.

  classifier_.list_jobs_requests.clear();
  r = Run({"jobs", "--limit", "3", "--state", "Succeeded", "--dataset", "digits", "--created_after",
           "2026-01-31T12:00:00.5Z"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(job_lines(r.out), (std::vector<std::string>{"job-1", "job-2", "job-3"}));
  EXPECT_THAT(r.err, HasSubstr("more jobs exist"));
  ASSERT_EQ(classifier_.list_jobs_requests.size(), 1u);
  const v1::ListJobsRequest& sent = classifier_.list_jobs_requests[0];
  EXPECT_EQ(sent.page_size(), 3);
  EXPECT_EQ(sent.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(sent.dataset(), "digits");
  EXPECT_EQ(sent.created_after().seconds(), 1769860800);
  EXPECT_EQ(sent.created_after().nanos(), 500'000'000);

  classifier_.list_jobs_requests.clear();
  classifier_.default_page_size = 100;
  r = Run({"jobs", "--limit", "5", "--json", "--state", "succeeded"});
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, StartsWith("{\"jobs\":[{\"job_id\":\"job-1\""));
  EXPECT_THAT(r.out, EndsWith(",\"next_page_token\":\"\"}\n"));  // Nothing more.

  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{"jobs", "--limit", "0"},
                                             {"jobs", "--limit", "2", "--all"},
                                             {"jobs", "--state", "done"},
                                             {"jobs", "--created_after", "yesterday"}}) {
    r = Run(bad);
    EXPECT_EQ(r.exit_code, kExitUsage) << bad.back();
  }
  EXPECT_THAT(Run({"jobs", "--state", "done"}).err,
              HasSubstr("expected queued, running, succeeded, failed, cancelled, interrupted"));
  EXPECT_THAT(Run({"jobs", "--created_after", "yesterday"}).err, HasSubstr("--created_after"));
}

TEST_F(ClientCommandsTest, ModelsPageThroughShortPagesAndKeepJsonValid) {
  for (int i = 1; i <= 5; ++i)
    classifier_.models.add_models()->set_model_id("model-" + std::to_string(i));
  classifier_.max_page_size = 2;
  // The server's pages are shorter than --limit: a second call asks for what is left, with the
  // token and the same filters.
  Result r = Run({"models", "--limit", "4", "--json", "--job_id", "job-9", "--dataset", "d"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  ASSERT_EQ(classifier_.list_models_requests.size(), 2u);
  EXPECT_EQ(classifier_.list_models_requests[0].page_size(), 4);
  EXPECT_EQ(classifier_.list_models_requests[1].page_size(), 2);
  EXPECT_EQ(classifier_.list_models_requests[1].page_token(), "2");
  for (const v1::ListModelsRequest& sent : classifier_.list_models_requests) {
    EXPECT_EQ(sent.job_id(), "job-9");
    EXPECT_EQ(sent.dataset(), "d");
  }
  // One JSON object on one line, with the token of what remains.
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  EXPECT_THAT(r.out, HasSubstr("\"model_id\":\"model-4\""));
  EXPECT_THAT(r.out, Not(HasSubstr("\"model_id\":\"model-5\"")));
  EXPECT_THAT(r.out, HasSubstr("\"next_page_token\":\"4\""));
  EXPECT_THAT(r.err, HasSubstr("more models exist"));

  classifier_.list_models_requests.clear();
  r = Run({"models", "--all"});
  EXPECT_THAT(r.out, HasSubstr("\nmodel-5 "));
  EXPECT_EQ(r.err, "");
}

TEST_F(ClientCommandsTest, Evaluate) {
  classifier_.evaluation.set_model_id("model-1");
  classifier_.evaluation.set_accuracy(0.5);
  Result r = Run({"evaluate", "--model", "model-1", "--split", "train"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("accuracy: 50.00%\n"));
  EXPECT_EQ(classifier_.evaluate_request.model_id(), "model-1");
  EXPECT_EQ(classifier_.evaluate_request.dataset(), "");  // The server uses the model's own.
  EXPECT_EQ(classifier_.evaluate_request.split(), v1::DATASET_SPLIT_TRAIN);

  r = Run({"evaluate", "--split", "validation"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_EQ(r.err, "error: invalid value 'validation' for --split: expected test or train\n");
}

TEST_F(ClientCommandsTest, PredictSendsFileBytes) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  std::ofstream(dir + "/a.png", std::ios::binary) << std::string("\x89PNG-ish", 8);  // 8 bytes
  std::ofstream(dir + "/b.jpg", std::ios::binary) << "\xFF\xD8\xFF";                 // 3 bytes
  Result r = Run({"predict", dir + "/a.png", dir + "/b.jpg", "--model", "m"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, dir + "/a.png: 8 (p=0.7500)\n" + dir + "/b.jpg: 3 (p=0.7500)\n");
  ASSERT_EQ(classifier_.predict_request.images_size(), 2);
  EXPECT_EQ(classifier_.predict_request.images(0).encoded(), std::string("\x89PNG-ish", 8));
  EXPECT_EQ(classifier_.predict_request.model_id(), "m");
  EXPECT_EQ(classifier_.predict_request.top_k(), 1);

  r = Run({"predict", dir + "/b.jpg", "--top_k", "2"});
  EXPECT_EQ(r.out, dir + "/b.jpg: 3 (p=0.7500)\n  top 1: 3 (p=0.7500)\n  top 2: 4 (p=0.1250)\n");

  r = Run({"predict", dir + "/b.jpg", "--json"});
  EXPECT_THAT(r.out, StartsWith("{\"model_id\":\"\",\"predictions\":[{\"label\":3"));

  r = Run({"predict", dir + "/missing.png"});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_THAT(r.err, StartsWith("error: cannot read " + dir + "/missing.png: "));

  classifier_.extra_predictions = 1;
  r = Run({"predict", dir + "/b.jpg"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_THAT(r.err, HasSubstr("2 predictions for 1 images"));
}

TEST_F(ClientCommandsTest, Models) {
  v1::Model* model = classifier_.models.add_models();
  model->set_model_id("model-1");
  model->set_deployed(true);
  classifier_.models.add_models()->set_model_id("model-2");
  Result r = Run({"models"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, StartsWith("MODEL ID  JOB ID"));
  EXPECT_THAT(r.out, HasSubstr("  SHA256  DEPLOYED\n"));
  EXPECT_THAT(r.out, HasSubstr("\nmodel-1 "));
  EXPECT_THAT(r.out, HasSubstr("  *\nmodel-2 "));
  EXPECT_THAT(r.out, EndsWith("  -\n"));

  r = Run({"models", "--json"});
  EXPECT_THAT(r.out, HasSubstr("\"deployed\":true"));
  EXPECT_THAT(r.out, HasSubstr("\"deployed\":false"));
}

// ---------------------------------------------------------------------------------------------
// import, deploy, delete

TEST_F(ClientCommandsTest, ImportSendsTheFormatThenTheFileInMebibyteChunks) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  std::string file(2 * kImportChunkBytes + 12345, '\0');
  for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<char>(i * 7 % 251);
  std::ofstream(dir + "/MulticlassCNN.pth", std::ios::binary) << file;
  classifier_.import_model.set_model_id("model-9");
  Result r = Run({"import", dir + "/MulticlassCNN.pth", "--dataset", "fashion-mnist"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "imported model-9 (" + std::to_string(file.size()) + " bytes, sha256 " +
                       Sha256Hex(file) + ") from " + dir + "/MulticlassCNN.pth\n");

  const std::vector<v1::ImportWeightsRequest>& messages = classifier_.import_messages;
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].format(), v1::PYTORCH_STATE_DICT);
  EXPECT_EQ(messages[0].dataset(), "fashion-mnist");
  EXPECT_EQ(messages[0].data(), "");
  std::string received;
  for (size_t i = 1; i < messages.size(); ++i) {
    EXPECT_EQ(messages[i].format(), v1::WEIGHTS_FORMAT_UNSPECIFIED);
    EXPECT_EQ(messages[i].dataset(), "");
    EXPECT_EQ(messages[i].data().size(), i < 3 ? kImportChunkBytes : 12345u);
    received += messages[i].data();
  }
  EXPECT_EQ(received, file);
}

TEST_F(ClientCommandsTest, ImportPrintsTheFilesFiguresWhenTheServerGivesNone) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  std::ofstream(dir + "/w.pth", std::ios::binary) << "tiny";
  classifier_.import_model.set_model_id("model-3");
  classifier_.import_fill_figures = false;
  Result r = Run({"import", dir + "/w.pth"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "imported model-3 (4 bytes, sha256 " + Sha256Hex("tiny") + ") from " + dir +
                       "/w.pth\n");
  ASSERT_EQ(classifier_.import_messages.size(), 2u);
  EXPECT_EQ(classifier_.import_messages[0].dataset(), "");  // The server's default.
  EXPECT_EQ(classifier_.import_messages[1].data(), "tiny");

  r = Run({"import", dir + "/w.pth", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, StartsWith("{\"model\":{\"model_id\":\"model-3\""));
}

TEST_F(ClientCommandsTest, ImportOfAnEmptyFileSendsOnlyTheFormat) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  std::ofstream(dir + "/empty.pth", std::ios::binary) << "";
  classifier_.import_model.set_model_id("model-4");
  EXPECT_EQ(Run({"import", dir + "/empty.pth"}).exit_code, kExitOk);
  ASSERT_EQ(classifier_.import_messages.size(), 1u);
  EXPECT_EQ(classifier_.import_messages[0].format(), v1::PYTORCH_STATE_DICT);
}

TEST_F(ClientCommandsTest, ImportOfAMissingFileSendsNothing) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  Result r = Run({"import", dir + "/missing.pth"});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_THAT(r.err, StartsWith("error: cannot read " + dir + "/missing.pth: "));
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(classifier_.import_messages, IsEmpty());
}

TEST_F(ClientCommandsTest, ImportRejectedByTheServer) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  // Big enough that the server answers while the upload is still going.
  std::ofstream(dir + "/big.pth", std::ios::binary) << std::string(3 * kImportChunkBytes, 'x');
  std::ofstream(dir + "/small.pth", std::ios::binary) << "not a state dict";
  classifier_.import_status =
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not a PyTorch state dict");
  for (const std::string name : {"big.pth", "small.pth"}) {
    Result r = Run({"import", dir + "/" + name});
    EXPECT_EQ(r.exit_code, kExitServerError) << name;
    EXPECT_EQ(r.err, "error: INVALID_ARGUMENT: not a PyTorch state dict\n") << name;
    EXPECT_EQ(r.out, "") << name;
  }
}

TEST_F(ClientCommandsTest, ImportTakesExactlyOneFile) {
  EXPECT_FALSE(ParseArgs({"import"}, address_).ok());
  EXPECT_FALSE(ParseArgs({"import", "a.pth", "b.pth"}, address_).ok());
}

TEST_F(ClientCommandsTest, DeployAndDelete) {
  Result r = Run({"deploy", "model-2"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "deployed model-2\n");
  EXPECT_EQ(classifier_.deploy_request_id, "model-2");

  r = Run({"deploy", "nope"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no model \"nope\"\n");

  r = Run({"delete", "model-2"});  // The deployed one.
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err,
            "error: FAILED_PRECONDITION: model \"model-2\" is deployed; deploy another first\n");

  r = Run({"delete", "model-1"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "deleted model-1\n");
  EXPECT_EQ(classifier_.delete_request_id, "model-1");

  r = Run({"delete", "model-1"});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: NOT_FOUND: no model \"model-1\"\n");
}

TEST_F(ClientCommandsTest, DeployAndDeleteJson) {
  Result r = Run({"deploy", "model-1", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, StartsWith("{\"model_id\":\"model-1\""));
  EXPECT_THAT(r.out, HasSubstr("\"deployed\":true"));
  r = Run({"delete", "model-2", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "{}\n");
}

// The file split in chunks of `chunk_size`, the digest on the last one only.
std::vector<v1::WeightsChunk> Chunks(const std::string& file, size_t chunk_size,
                                     const std::string& name = "model-1.pth") {
  std::vector<v1::WeightsChunk> chunks;
  for (size_t offset = 0; offset < file.size(); offset += chunk_size) {
    v1::WeightsChunk chunk;
    chunk.set_data(file.substr(offset, chunk_size));
    chunk.set_offset(static_cast<int64_t>(offset));
    chunk.set_total_size(static_cast<int64_t>(file.size()));
    chunk.set_model_id("model-1");
    chunk.set_file_name(name);
    chunks.push_back(chunk);
  }
  chunks.back().set_sha256(Sha256Hex(file));
  return chunks;
}

TEST_F(ClientCommandsTest, ExportWritesAVerifiedFile) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string file(10000, 'w');
  classifier_.chunks = Chunks(file, 4096, "../evil/model-1.pth");
  Result r = Run({"export", "--out", dir, "--model", "model-1"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out, "saved " + dir + "/model-1.pth (10000 bytes, sha256 " + Sha256Hex(file) +
                       ", model model-1)\n");
  EXPECT_THAT(ListDir(dir), ElementsAre("model-1.pth"));
  EXPECT_EQ(ReadFile(dir + "/model-1.pth"), file);
  EXPECT_EQ(classifier_.export_request.model_id(), "model-1");
  EXPECT_EQ(classifier_.export_request.format(), v1::PYTORCH_STATE_DICT);

  r = Run({"export", "--out", dir + "/named.pth"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(ReadFile(dir + "/named.pth"), file);
}

TEST_F(ClientCommandsTest, ExportRejectsABadDigest) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  classifier_.chunks = Chunks("weights", 3);
  classifier_.chunks.back().set_sha256(Sha256Hex("other"));
  Result r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_THAT(r.err, StartsWith("error: SHA-256 mismatch"));
  EXPECT_THAT(ListDir(dir), IsEmpty());
}

TEST_F(ClientCommandsTest, ExportRejectsGapsAndShortFiles) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  classifier_.chunks = Chunks("weights!", 3);
  classifier_.chunks.erase(classifier_.chunks.begin() + 1);
  Result r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_EQ(r.err, "error: chunk at offset 6, expected 3\n");
  EXPECT_THAT(ListDir(dir), IsEmpty());

  classifier_.chunks = Chunks("weights!", 3);
  for (v1::WeightsChunk& chunk : classifier_.chunks) chunk.set_total_size(9);
  r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_THAT(r.err, HasSubstr("size mismatch"));
  EXPECT_THAT(ListDir(dir), IsEmpty());
}

TEST_F(ClientCommandsTest, ExportStreamErrorRemovesTheTemporaryFile) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  classifier_.chunks = Chunks("weights!", 3);
  classifier_.chunks.pop_back();
  classifier_.stream_status = grpc::Status(grpc::StatusCode::INTERNAL, "disk on fire");
  Result r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: INTERNAL: disk on fire\n");
  EXPECT_THAT(ListDir(dir), IsEmpty());

  classifier_.chunks.clear();
  classifier_.stream_status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no model yet");
  r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitServerError);
  EXPECT_EQ(r.err, "error: FAILED_PRECONDITION: no model yet\n");
}

TEST_F(ClientCommandsTest, ExportFormatIsChecked) {
  Result r = Run({"export", "--format", "tflite"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_EQ(r.err, "error: invalid value 'tflite' for --format: expected pytorch or onnx\n");
}

TEST_F(ClientCommandsTest, ExportOnnx) {
  const classifier::testing::TempDir temp;
  const std::string& dir = temp.path();
  const std::string file(5000, 'o');
  classifier_.chunks = Chunks(file, 4096, "model-1.onnx");
  Result r = Run({"export", "--format", "onnx", "--out", dir, "--model", "model-1"});
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(classifier_.export_request.format(), v1::ONNX);
  EXPECT_EQ(classifier_.export_request.model_id(), "model-1");
  EXPECT_EQ(r.out, "saved " + dir + "/model-1.onnx (5000 bytes, sha256 " + Sha256Hex(file) +
                       ", model model-1)\n");
  EXPECT_EQ(ReadFile(dir + "/model-1.onnx"), file);

  // The server's name always gets the .onnx extension; a name of the user's is kept.
  classifier_.chunks = Chunks(file, 4096, "model-2.pth");
  EXPECT_EQ(Run({"export", "--format", "ONNX", "--out", dir}).exit_code, kExitOk);
  classifier_.chunks = Chunks(file, 4096, "");
  EXPECT_EQ(Run({"export", "--format", "onnx", "--out", dir}).exit_code, kExitOk);
  EXPECT_EQ(Run({"export", "--format", "onnx", "--out", dir + "/mine.bin"}).exit_code, kExitOk);
  EXPECT_THAT(ListDir(dir),
              ElementsAre("mine.bin", "model-1.onnx", "model-2.onnx", "model-model-1.onnx"));

  // Without --out: the current directory.
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof(cwd)), nullptr);
  const classifier::testing::TempDir other_temp;
  const std::string& other = other_temp.path();
  ASSERT_EQ(chdir(other.c_str()), 0);
  classifier_.chunks = Chunks(file, 4096, "model-3.pth");
  r = Run({"export", "--format", "onnx"});
  ASSERT_EQ(chdir(cwd), 0);
  EXPECT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_EQ(r.out,
            "saved model-3.onnx (5000 bytes, sha256 " + Sha256Hex(file) + ", model model-1)\n");
  EXPECT_THAT(ListDir(other), ElementsAre("model-3.onnx"));

  // pytorch keeps the server's name as it is.
  classifier_.chunks = Chunks(file, 4096, "model-4.pth");
  EXPECT_EQ(Run({"export", "--format", "pytorch", "--out", other}).exit_code, kExitOk);
  EXPECT_EQ(classifier_.export_request.format(), v1::PYTORCH_STATE_DICT);
  EXPECT_THAT(ListDir(other), ElementsAre("model-3.onnx", "model-4.pth"));
}

}  // namespace
}  // namespace classifier::cli
