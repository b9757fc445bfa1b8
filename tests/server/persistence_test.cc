// Jobs, events and models survive restarts; interrupted jobs resume; the registry deploys
// without failing a request; imports are checked. The real server on loopback, restarted on
// the same state directory.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "tests/server/server_fixture.h"
#include "tests/testing/postgres_server.h"

namespace classifier {
namespace {

using ::grpc::ClientContext;
using ::grpc::StatusCode;
using testing::ExpectStatus;

class PersistenceTest : public testing::ServerFixture {
 protected:
  // Probabilities of every test image, all classes, from `model_id`.
  std::vector<float> Probabilities(const std::string& model_id) {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_top_k(10);
    for (int i = 0; i < 20; ++i) *request.add_images() = RawImage(test_, i);
    v1::PredictResponse response;
    EXPECT_TRUE(Predict(request, &response).ok());
    std::vector<float> probabilities(200);
    for (int i = 0; i < response.predictions_size(); ++i) {
      for (const auto& entry : response.predictions(i).top_k()) {
        probabilities[i * 10 + entry.label()] = entry.probability();
      }
    }
    return probabilities;
  }

  // Equal up to float rounding: concurrent calls share forward passes (the dynamic batcher), and
  // a pass over more images may round the last bits differently; another model's answers differ
  // by far more.
  static bool Near(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::fabs(a[i] - b[i]) > 1e-5f) return false;
    }
    return true;
  }

  ::grpc::Status Import(const std::string& bytes, v1::ImportWeightsResponse* response,
                        size_t chunk_size = 1000) {
    ClientContext context;
    auto writer = stub_->ImportWeights(&context, response);
    v1::ImportWeightsRequest message;
    message.set_format(v1::PYTORCH_STATE_DICT);
    message.set_dataset("mnist");
    size_t offset = 0;
    do {
      message.set_data(bytes.substr(offset, chunk_size));
      offset += chunk_size;
      if (!writer->Write(message)) break;
      message.clear_format();
      message.clear_dataset();
    } while (offset < bytes.size());
    writer->WritesDone();
    return writer->Finish();
  }

  std::vector<v1::Model> ListModels() {
    ClientContext context;
    v1::ListModelsResponse response;
    EXPECT_TRUE(stub_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
    return {response.models().begin(), response.models().end()};
  }

  ::grpc::Status Deploy(const std::string& model_id) {
    ClientContext context;
    v1::DeployModelRequest request;
    request.set_model_id(model_id);
    v1::Model model;
    return stub_->DeployModel(&context, request, &model);
  }
};

TEST_F(PersistenceTest, JobsEventsAndModelsSurviveARestart) {
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining());
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.front().job_id();
  const std::string model_id = events.back().finished().model_id();
  const std::vector<float> before = Probabilities(model_id);

  StartServer(ServerConfig{});
  std::vector<v1::JobEvent> replay = Watch(job_id, 1);
  ASSERT_EQ(replay.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(replay[i].SerializeAsString(), events[i].SerializeAsString());
  }
  v1::Job job = GetJob(job_id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.model_id(), model_id);
  std::vector<v1::Model> models = ListModels();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].model_id(), model_id);
  EXPECT_EQ(models[0].job_id(), job_id);
  EXPECT_EQ(models[0].sha256(), Sha256Hex(ExportBytes(model_id)));
  EXPECT_EQ(Probabilities(""), before);  // The newest model serves, unchanged.
}

TEST_F(PersistenceTest, OnPostgresJobsModelsAndTheDeployedOneSurviveARestart) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> postgres =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(postgres.status())) GTEST_SKIP() << postgres.status().message();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  ServerConfig config;
  config.store = (*postgres)->uri();
  StartServer(config);
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(/*epochs=*/2));
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.front().job_id();
  const std::string first = events.back().finished().model_id();
  const std::string second = TrainModel(QuickTraining(/*epochs=*/1));
  {
    ClientContext context;
    v1::DeployModelRequest request;
    request.set_model_id(first);
    v1::Model deployed;
    ASSERT_TRUE(stub_->DeployModel(&context, request, &deployed).ok());
  }
  const std::vector<float> before = Probabilities("");

  // Nothing of it is in the SQLite file: with that gone, the restarted server still has it all.
  server_.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(dir_.path() + "/state/classifier.db" + suffix);
  }
  StartServer(config);
  std::vector<v1::JobEvent> replay = Watch(job_id, 1);
  ASSERT_EQ(replay.size(), events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(replay[i].SerializeAsString(), events[i].SerializeAsString());
  }
  EXPECT_EQ(GetJob(job_id).state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::Model> models = ListModels();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].model_id(), second) << "newest first";
  EXPECT_EQ(models[1].model_id(), first);
  EXPECT_TRUE(models[1].deployed());
  EXPECT_EQ(Probabilities(""), before) << "the deployed model serves, unchanged";
}

TEST_F(PersistenceTest, WhilePostgresIsAwayPredictionsServeWritesAreUnavailableThenItRecovers) {
  absl::StatusOr<std::unique_ptr<testing::PostgresServer>> postgres =
      testing::PostgresServer::Start();
  if (absl::IsFailedPrecondition(postgres.status())) GTEST_SKIP() << postgres.status().message();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  ServerConfig config;
  config.store = (*postgres)->uri();
  StartServer(config);
  const std::string model_id = TrainModel(QuickTraining(/*epochs=*/1));
  auto deploy = [&] {
    ClientContext context;
    v1::DeployModelRequest request;
    request.set_model_id(model_id);
    v1::Model deployed;
    return stub_->DeployModel(&context, request, &deployed);
  };
  ASSERT_TRUE(deploy().ok());
  const std::vector<float> before = Probabilities("");

  ASSERT_TRUE((*postgres)->Stop());
  EXPECT_EQ(Probabilities(""), before) << "the deployed model serves from memory";
  EXPECT_EQ(Probabilities(model_id), before);
  ExpectStatus(deploy(), StatusCode::UNAVAILABLE, "unavailable");
  ::grpc::Status trained;
  TrainToEnd(QuickTraining(/*epochs=*/1), &trained);
  ExpectStatus(trained, StatusCode::UNAVAILABLE, "unavailable");

  ASSERT_TRUE((*postgres)->Restart());
  // The first statement on the dropped connection may fail; the next reconnects. Generous
  // deadline for a loaded machine.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  ::grpc::Status recovered = deploy();
  while (!recovered.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    recovered = deploy();
  }
  ASSERT_TRUE(recovered.ok()) << recovered.error_message();
  EXPECT_FALSE(TrainModel(QuickTraining(/*epochs=*/1)).empty()) << "writes work again";
}

TEST_F(PersistenceTest, AnInterruptedJobResumesAfterARestartWithIdenticalWeights) {
  // The reference: the same job, never interrupted.
  v1::TrainRequest request = QuickTraining(/*epochs=*/4);
  request.set_batch_size(2);
  const std::vector<float> reference = Probabilities(TrainModel(request));

  ClientContext context;
  auto train = stub_->Train(&context, request);
  v1::JobEvent event;
  std::vector<v1::JobEvent> seen;
  // Stop the server once the job has checkpointed its first epoch, mid-way through the next.
  while (train->Read(&event)) {
    seen.push_back(event);
    if (event.has_checkpoint_saved() && event.checkpoint_saved().epoch() == 1) break;
  }
  ASSERT_FALSE(seen.empty());
  const std::string job_id = seen.front().job_id();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server_->Shutdown();
  while (train->Read(&event)) seen.push_back(event);
  ::grpc::Status status = train->Finish();
  ExpectStatus(status, StatusCode::UNAVAILABLE, "from_sequence");
  EXPECT_FALSE(seen.back().has_finished());

  StartServer(ServerConfig{});
  std::vector<v1::JobEvent> rest = Watch(job_id, static_cast<int64_t>(seen.size()) + 1);
  ASSERT_FALSE(rest.empty());
  // Gap-free across the restart, and the first new event says where it resumed.
  EXPECT_EQ(rest.front().sequence(), static_cast<int64_t>(seen.size()) + 1);
  for (size_t i = 1; i < rest.size(); ++i)
    EXPECT_EQ(rest[i].sequence(), rest[i - 1].sequence() + 1);
  int resumed = 0;
  for (const auto& e : rest) resumed += e.has_resumed();
  EXPECT_EQ(resumed, 1);
  ASSERT_TRUE(rest.back().has_finished());
  ASSERT_EQ(rest.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << rest.back().finished().error();
  // Every epoch reported, none twice.
  std::vector<int> epochs;
  for (const auto& e : seen)
    if (e.has_epoch_end()) epochs.push_back(e.epoch_end().epoch());
  for (const auto& e : rest)
    if (e.has_epoch_end()) epochs.push_back(e.epoch_end().epoch());
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(Probabilities(rest.back().finished().model_id()), reference);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/state/checkpoints/" + job_id + ".ckpt"));
}

TEST_F(PersistenceTest, QueuedJobsStayQueuedInOrderAcrossARestart) {
  v1::TrainRequest slow = QuickTraining(/*epochs=*/50);
  slow.set_batch_size(1);
  std::vector<std::string> ids;
  std::vector<std::unique_ptr<ClientContext>> contexts;
  std::vector<std::unique_ptr<::grpc::ClientReader<v1::JobEvent>>> streams;
  for (int i = 0; i < 3; ++i) {
    contexts.push_back(std::make_unique<ClientContext>());
    streams.push_back(stub_->Train(contexts.back().get(), i == 0 ? slow : QuickTraining(1)));
    v1::JobEvent event;
    ASSERT_TRUE(streams.back()->Read(&event));
    ids.push_back(event.job_id());
  }
  ASSERT_EQ(WaitForJobState(ids[0], v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);
  server_->Shutdown();
  for (auto& stream : streams) {
    v1::JobEvent event;
    while (stream->Read(&event)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), StatusCode::UNAVAILABLE);
  }
  StartServer(ServerConfig{});
  EXPECT_EQ(GetJob(ids[1]).state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(GetJob(ids[2]).state(), v1::JOB_STATE_QUEUED);
  ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(ids[0]);
  v1::Job cancelled;
  ASSERT_TRUE(stub_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  ASSERT_EQ(WaitForJobState(ids[2], v1::JOB_STATE_SUCCEEDED), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(GetJob(ids[0]).state(), v1::JOB_STATE_CANCELLED);
  v1::Job second = GetJob(ids[1]), third = GetJob(ids[2]);
  EXPECT_EQ(second.state(), v1::JOB_STATE_SUCCEEDED);
  // In order: the second ended before the third started.
  EXPECT_LE(second.end_time().seconds() * 1000000000LL + second.end_time().nanos(),
            third.start_time().seconds() * 1000000000LL + third.start_time().nanos());
}

TEST_F(PersistenceTest, DeployPersistsAndTheDeployedModelCannotBeDeleted) {
  const std::string first = TrainModel();
  v1::TrainRequest other = QuickTraining();
  other.set_seed(99);
  other.set_deploy_when_done(true);
  const std::string second = TrainModel(other);
  ASSERT_NE(first, second);

  v1::PredictRequest request;
  *request.add_images() = RawImage(test_, 0);
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(response.model_id(), second);  // deploy_when_done.

  ASSERT_TRUE(Deploy(first).ok());
  ASSERT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(response.model_id(), first);
  StartServer(ServerConfig{});
  ASSERT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(response.model_id(), first);  // The choice survives the restart.
  for (const v1::Model& model : ListModels())
    EXPECT_EQ(model.deployed(), model.model_id() == first);

  ClientContext context;
  v1::DeleteModelRequest remove;
  remove.set_model_id(first);
  v1::DeleteModelResponse removed;
  ExpectStatus(stub_->DeleteModel(&context, remove, &removed), StatusCode::FAILED_PRECONDITION,
               "deployed");
  ClientContext context2;
  remove.set_model_id(second);
  ASSERT_TRUE(stub_->DeleteModel(&context2, remove, &removed).ok());
  EXPECT_EQ(ListModels().size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/state/models/" + second + ".pth"));
  ExpectStatus(Deploy(second), StatusCode::NOT_FOUND, second);
}

TEST_F(PersistenceTest, DeployingBackAndForthNeverFailsARequest) {
  const std::string a = TrainModel();
  v1::TrainRequest other = QuickTraining();
  other.set_seed(5);
  const std::string b = TrainModel(other);
  const std::vector<float> expected_a = Probabilities(a), expected_b = Probabilities(b);
  ASSERT_NE(expected_a, expected_b);

  std::atomic<bool> stop{false};
  std::atomic<int> requests{0}, errors{0}, wrong{0}, answered_a{0}, answered_b{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      while (!stop.load()) {
        std::vector<float> got = Probabilities("");
        ++requests;
        if (got == std::vector<float>(200)) {
          ++errors;
        } else if (Near(got, expected_a)) {
          ++answered_a;
        } else if (Near(got, expected_b)) {
          ++answered_b;
        } else {
          ++wrong;
        }
      }
    });
  }
  // At least 60 deploys, and on until the callers have made 120 requests between them (however
  // slow this machine is: a sanitizer build answers a few a second), so that requests overlap
  // the switches; the deadline only stops a hung server.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  int deploys = 0;
  while ((deploys < 60 || requests.load() < 120) && std::chrono::steady_clock::now() < deadline) {
    EXPECT_TRUE(Deploy(deploys % 2 == 0 ? a : b).ok());
    ++deploys;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stop = true;
  for (auto& caller : callers) caller.join();
  std::cout << "deploy test: " << requests << " requests (" << answered_a << " by a, " << answered_b
            << " by b), " << errors << " errors, " << deploys << " deploys\n";
  EXPECT_GE(requests.load(), 120);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  // The callers saw the switches: both models answered.
  EXPECT_GT(answered_a.load(), 0);
  EXPECT_GT(answered_b.load(), 0);
}

TEST_F(PersistenceTest, ACorruptOrMissingModelFileDoesNotStopTheServer) {
  const std::string corrupt = TrainModel();
  v1::TrainRequest other = QuickTraining();
  other.set_seed(3);
  const std::string missing = TrainModel(other);
  other.set_seed(4);
  const std::string good = TrainModel(other);
  server_.reset();
  const std::string corrupt_path = dir_.path() + "/state/models/" + corrupt + ".pth";
  {
    std::fstream file(corrupt_path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(100);
    file.put('\x5a');
  }
  std::filesystem::remove(dir_.path() + "/state/models/" + missing + ".pth");
  StartServer(ServerConfig{});

  v1::PredictRequest request;
  *request.add_images() = RawImage(test_, 0);
  v1::PredictResponse response;
  request.set_model_id(corrupt);
  ExpectStatus(Predict(request, &response), StatusCode::DATA_LOSS, corrupt_path);
  request.set_model_id(missing);
  ExpectStatus(Predict(request, &response), StatusCode::DATA_LOSS, missing + ".pth");
  request.set_model_id(good);
  EXPECT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(ListModels().size(), 3u);
}

TEST_F(PersistenceTest, ImportRegistersExportedWeightsAndRefusesBadUploads) {
  const std::string model_id = TrainModel();
  const std::string bytes = ExportBytes(model_id);
  v1::ImportWeightsResponse response;
  ASSERT_TRUE(Import(bytes, &response).ok());
  const std::string imported = response.model().model_id();
  EXPECT_NE(imported, model_id);
  EXPECT_EQ(response.model().dataset(), "mnist");
  EXPECT_EQ(Probabilities(imported), Probabilities(model_id));
  // Its test figures are measured after the import answered, and reach the registry.
  bool evaluated = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60);
       !evaluated && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(20))) {
    for (const v1::Model& model : ListModels()) {
      evaluated = evaluated ||
                  (model.model_id() == imported && model.test_metrics().count() == kTestImages);
    }
  }
  EXPECT_TRUE(evaluated) << "the imported model's test figures never reached ListModels";

  const size_t models = ListModels().size();
  ExpectStatus(Import("definitely not a weights file", &response), StatusCode::INVALID_ARGUMENT,
               "data");
  ExpectStatus(Import(bytes.substr(0, bytes.size() / 2), &response), StatusCode::INVALID_ARGUMENT,
               "data");
  ExpectStatus(Import("", &response), StatusCode::INVALID_ARGUMENT, "empty");
  EXPECT_EQ(ListModels().size(), models);  // Nothing registered by a bad upload.
}

TEST_F(PersistenceTest, RetentionDeletesFinishedJobsWithTheirFilesAndKeepsTheirModels) {
  ServerConfig config;
  config.job_retention = absl::Seconds(1);
  config.keep_checkpoints = true;
  StartServer(config);
  const std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.back().job_id();
  const std::string model_id = events.back().finished().model_id();
  const std::string checkpoint = dir_.path() + "/state/checkpoints/" + job_id + ".ckpt";
  EXPECT_TRUE(std::filesystem::exists(checkpoint)) << "--keep_checkpoints kept it";
  const std::string tensorboard_run = dir_.path() + "/state/runs/" + job_id;
  EXPECT_FALSE(std::filesystem::is_empty(tensorboard_run)) << "its TensorBoard event file";

  ::grpc::Status status;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(60); absl::Now() < deadline;
       absl::SleepFor(absl::Milliseconds(50))) {
    ::grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    status = stub_->GetJob(&context, request, &job);
    if (status.error_code() == ::grpc::StatusCode::NOT_FOUND) break;
  }
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::NOT_FOUND) << "the job was never deleted";
  EXPECT_FALSE(std::filesystem::exists(checkpoint));
  EXPECT_FALSE(std::filesystem::exists(tensorboard_run));
  // The model it trained is the registry's, not the job's: it stays, and after a restart too.
  StartServer(ServerConfig{});
  bool model_kept = false;
  for (const v1::Model& model : ListModels())
    model_kept = model_kept || model.model_id() == model_id;
  EXPECT_TRUE(model_kept);
  ::grpc::ClientContext context;
  v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  auto reader = stub_->WatchJob(&context, watch);
  v1::JobEvent event;
  while (reader->Read(&event)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), ::grpc::StatusCode::NOT_FOUND)
      << "its events went with it";
}

TEST_F(PersistenceTest, ANetworkLargerThanTheModelCacheIsRefusedBeforeItTrains) {
  ServerConfig config;
  config.model_cache_mb = 1;
  StartServer(config);
  v1::TrainRequest request = QuickTraining(1);
  request.mutable_architecture()->set_hidden_units(4096);  // About 13 MB of weights.
  ::grpc::Status status;
  const std::vector<v1::JobEvent> events = TrainToEnd(request, &status);
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("--model_cache_mb"));
  EXPECT_TRUE(events.empty()) << "no job was queued";
  // The tutorial's network fits.
  EXPECT_FALSE(TrainModel(QuickTraining(1)).empty());
}

TEST_F(PersistenceTest, BadStorageSettingsAreRefusedNamingTheFlag) {
  server_.reset();
  ServerConfig config;
  config.state_dir = dir_.path() + "/state";
  config.listen_address = "127.0.0.1:0";
  config.metrics_listen = "";
  config.http_listen = "";
  config.device = "cpu";
  config.job_retention = absl::Seconds(-5);
  absl::StatusOr<std::unique_ptr<ClassifierServer>> refused = ClassifierServer::Start(config);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("--job_retention"));
  config.job_retention = absl::ZeroDuration();
  config.model_cache_mb = 0;
  refused = ClassifierServer::Start(config);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("--model_cache_mb"));
  config.model_cache_mb = ServerConfig().model_cache_mb;

  // The replica settings: each bad value is refused before anything listens, naming its flag.
  struct BadReplicaSetting {
    std::function<void(ServerConfig*)> set;
    std::string flag;
  };
  const std::vector<BadReplicaSetting> bad_settings = {
      {[](ServerConfig* c) { c->job_lease = absl::Milliseconds(999); }, "--job_lease"},
      {[](ServerConfig* c) { c->job_lease = absl::ZeroDuration(); }, "--job_lease"},
      {[](ServerConfig* c) { c->paused_job_retry = absl::Milliseconds(99); }, "--paused_job_retry"},
      {[](ServerConfig* c) { c->paused_job_retry = absl::Hours(2); }, "--paused_job_retry"},
      {[](ServerConfig* c) { c->drain_notice = absl::Seconds(-1); }, "--drain_notice"},
      {[](ServerConfig* c) { c->drain_notice = absl::Seconds(61); }, "--drain_notice"},
      {[](ServerConfig* c) { c->lb_agent_listen = "9465"; }, "--lb_agent_listen"},
      {[](ServerConfig* c) { c->lb_agent_listen = "127.0.0.1:http"; }, "--lb_agent_listen"},
      {[](ServerConfig* c) { c->lb_agent_listen = "127.0.0.1:70000"; }, "--lb_agent_listen"},
  };
  for (const BadReplicaSetting& bad : bad_settings) {
    ServerConfig with_bad_value = config;
    bad.set(&with_bad_value);
    refused = ClassifierServer::Start(with_bad_value);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr(bad.flag));
  }
  // The edges themselves are accepted (a notice of 1m would hold the shutdown that long).
  config.job_lease = absl::Seconds(1);
  config.drain_notice = absl::ZeroDuration();
  config.lb_agent_listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<ClassifierServer>> accepted = ClassifierServer::Start(config);
  EXPECT_TRUE(accepted.ok()) << accepted.status();
}

}  // namespace
}  // namespace classifier
