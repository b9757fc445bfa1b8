// Runs classifier-cli's commands through a real channel against an in-process fake server on
// an ephemeral loopback port.
#include "client/commands.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/args.h"
#include "client/weights_file.h"

namespace classifier::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// Canned answers, and the requests it saw. Set the answers before the call; read the requests
// after it (the RPC's completion orders the two).
class FakeClassifier final : public v1::Classifier::Service {
 public:
  std::vector<v1::JobEvent> events;
  grpc::Status stream_status = grpc::Status::OK;
  bool hold_stream_open = false;  // After the events, wait until the client cancels.
  std::vector<v1::WeightsChunk> chunks;
  v1::ListJobsResponse jobs;
  v1::ListModelsResponse models;
  v1::EvaluateResponse evaluation;
  int extra_predictions = 0;

  v1::TrainRequest train_request;
  v1::WatchJobRequest watch_request;
  v1::EvaluateRequest evaluate_request;
  v1::PredictRequest predict_request;
  v1::ExportWeightsRequest export_request;
  bool client_cancelled = false;

  grpc::Status Train(grpc::ServerContext* context, const v1::TrainRequest* request,
                     grpc::ServerWriter<v1::JobEvent>* writer) override {
    train_request = *request;
    return StreamEvents(context, writer);
  }
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    watch_request = *request;
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
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* response) override {
    *response = jobs;
    return grpc::Status::OK;
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
  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    *response = models;
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

std::string MakeTempDir() {
  std::string pattern = testing::TempDir() + "/commands_test.XXXXXX";
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

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
                  "--progress_reports", "4"});
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
  const std::string dir = MakeTempDir();
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
  Result r = Run({"models"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, StartsWith("MODEL ID  JOB ID"));
  EXPECT_THAT(r.out, HasSubstr("\nmodel-1 "));
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
  const std::string dir = MakeTempDir();
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
  const std::string dir = MakeTempDir();
  classifier_.chunks = Chunks("weights", 3);
  classifier_.chunks.back().set_sha256(Sha256Hex("other"));
  Result r = Run({"export", "--out", dir});
  EXPECT_EQ(r.exit_code, kExitLocalError);
  EXPECT_THAT(r.err, StartsWith("error: SHA-256 mismatch"));
  EXPECT_THAT(ListDir(dir), IsEmpty());
}

TEST_F(ClientCommandsTest, ExportRejectsGapsAndShortFiles) {
  const std::string dir = MakeTempDir();
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
  const std::string dir = MakeTempDir();
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
  Result r = Run({"export", "--format", "onnx"});
  EXPECT_EQ(r.exit_code, kExitUsage);
  EXPECT_THAT(r.err, HasSubstr("for --format: expected pytorch"));
}

}  // namespace
}  // namespace classifier::cli
