// Two replicas on one PostgreSQL store, each with its own state directory (no shared file
// system), both real servers on loopback: a model trained on one lists, predicts and exports
// on the other (its weights come from the store), and a deploy on one reaches the other, with no
// failed Predict while it switches.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/server_fixture.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::grpc::ClientContext;

struct Replica {
  std::unique_ptr<ClassifierServer> server;
  std::unique_ptr<v1::Classifier::Stub> stub;
};

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> postgres =
        testing::PostgresServer::Start();
    if (absl::IsFailedPrecondition(postgres.status())) GTEST_SKIP() << postgres.status().message();
    ASSERT_TRUE(postgres.ok()) << postgres.status();
    postgres_ = *std::move(postgres);
    test_ = testing::MakeSyntheticDataset(200, 10, /*seed=*/2);
    testing::WriteDatasetFiles(dir_.path() + "/data/mnist",
                               testing::MakeSyntheticDataset(600, 10, /*seed=*/1), test_,
                               /*gzip=*/true);
    a_ = StartReplica("a");
    b_ = StartReplica("b");
  }

  Replica StartReplica(const std::string& name) {
    ServerConfig config;
    config.listen_address = "127.0.0.1:0";
    config.metrics_listen = "";
    config.data_dir = dir_.path() + "/data";
    config.fashion_fallback_dir = dir_.path() + "/no-fashion";
    config.state_dir = dir_.path() + "/state-" + name;  // Its own disk, as on another host.
    config.store = postgres_->uri();
    config.device = "cpu";
    config.compute_threads = 1;
    Replica replica;
    absl::StatusOr<std::unique_ptr<ClassifierServer>> server = ClassifierServer::Start(config);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return replica;
    replica.server = *std::move(server);
    replica.stub = v1::Classifier::NewStub(
        ::grpc::CreateChannel("127.0.0.1:" + std::to_string(replica.server->port()),
                              ::grpc::InsecureChannelCredentials()));
    return replica;
  }

  static std::string Train(Replica& replica, int epochs) {
    ClientContext context;
    auto reader = replica.stub->Train(&context, testing::ServerFixture::QuickTraining(epochs));
    v1::JobEvent event, last;
    while (reader->Read(&event)) last = event;
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(last.finished().state(), v1::JOB_STATE_SUCCEEDED) << last.finished().error();
    return last.finished().model_id();
  }

  ::grpc::Status Predict(Replica& replica, const std::string& model_id,
                         v1::PredictResponse* response) {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_top_k(10);
    for (int i = 0; i < 8; ++i) {
      request.add_images()->set_raw_pixels(
          std::string(reinterpret_cast<const char*>(test_.pixels.data() + i * test_.image_size()),
                      test_.image_size()));
    }
    ClientContext context;
    return replica.stub->Predict(&context, request, response);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::PostgresServer> postgres_;
  Dataset test_;
  Replica a_, b_;
};

TEST_F(ReplicaTest, AModelTrainedOnOneReplicaServesOnTheOtherWithoutASharedDisk) {
  const std::string model_id = Train(a_, /*epochs=*/1);
  ASSERT_FALSE(model_id.empty());

  ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(b_.stub->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).model_id(), model_id);

  v1::PredictResponse on_a, on_b;
  ASSERT_TRUE(Predict(a_, model_id, &on_a).ok());
  const ::grpc::Status predicted = Predict(b_, model_id, &on_b);
  ASSERT_TRUE(predicted.ok()) << predicted.error_message();
  EXPECT_EQ(on_b.SerializeAsString(), on_a.SerializeAsString()) << "the same weights";

  ClientContext export_context;
  v1::ExportWeightsRequest request;
  request.set_model_id(model_id);
  auto reader = b_.stub->ExportWeights(&export_context, request);
  std::string file;
  v1::WeightsChunk chunk;
  while (reader->Read(&chunk)) file += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(Sha256Hex(file), models.models(0).sha256());
}

TEST_F(ReplicaTest, ADeployOnOneReplicaReachesTheOtherWithNoFailedPredict) {
  const std::string first = Train(a_, /*epochs=*/1);
  const std::string second = Train(a_, /*epochs=*/1);
  ASSERT_FALSE(first.empty());
  ASSERT_FALSE(second.empty());
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(b_, "", &response).ok());
  ASSERT_EQ(response.model_id(), second) << "nothing deployed: the newest serves";

  {
    ClientContext context;
    v1::DeployModelRequest request;
    request.set_model_id(first);
    v1::Model deployed;
    ASSERT_TRUE(a_.stub->DeployModel(&context, request, &deployed).ok());
  }
  // B follows within its polling interval (200 ms); the deadline is generous for a loaded
  // machine. Every Predict on the way must succeed, on one model or the other.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int predictions = 0;
  for (;;) {
    const ::grpc::Status status = Predict(b_, "", &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ++predictions;
    if (response.model_id() == first) break;
    ASSERT_EQ(response.model_id(), second);
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "B never served the deployed model";
  }
  EXPECT_GE(predictions, 1);
  // And it stays: B now says so too.
  ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(b_.stub->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  for (const v1::Model& model : models.models()) {
    EXPECT_EQ(model.deployed(), model.model_id() == first) << model.model_id();
  }
}

TEST_F(ReplicaTest, AModelDeletedOnOneReplicaStopsServingOnTheOther) {
  const std::string model_id = Train(a_, /*epochs=*/1);
  ASSERT_FALSE(model_id.empty());
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(a_, model_id, &response).ok()) << "in A's memory now";
  ASSERT_TRUE(Predict(b_, model_id, &response).ok()) << "and in B's";
  {
    ClientContext context;
    v1::DeleteModelRequest request;
    request.set_model_id(model_id);
    v1::DeleteModelResponse deleted;
    ASSERT_TRUE(b_.stub->DeleteModel(&context, request, &deleted).ok());
  }
  // A drops it within its polling interval; a generous deadline for a loaded machine.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  ::grpc::Status status = Predict(a_, model_id, &response);
  while (status.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = Predict(a_, model_id, &response);
  }
  EXPECT_EQ(status.error_code(), ::grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr(model_id));
}

TEST_F(ReplicaTest, AReplicaStartingWhileAnotherTrainsListsTheJobButNeverRunsIt) {
  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/4);
  request.set_batch_size(2);  // 300 steps an epoch: the job outlives the third replica's start.
  ClientContext context;
  auto reader = a_.stub->Train(&context, request);
  std::vector<v1::JobEvent> events;
  v1::JobEvent event;
  while (reader->Read(&event)) {
    events.push_back(event);
    if (event.has_epoch_end()) break;
  }
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.front().job_id();

  // A third replica starts now: the unfinished job in the store is A's, not its own.
  Replica c = StartReplica("c");
  ASSERT_NE(c.server, nullptr);
  {
    ClientContext get_context;
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    v1::Job listed;
    ASSERT_TRUE(c.stub->GetJob(&get_context, get, &listed).ok()) << "C lists A's job";
  }
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED);
  c.server.reset();  // Had C resumed the job, its run would be in the store by now.

  std::vector<int> epochs;
  int resumed = 0;
  ClientContext watch_context;
  v1::WatchJobRequest watch;
  watch.set_job_id(job_id);
  watch.set_from_sequence(1);
  auto replay = a_.stub->WatchJob(&watch_context, watch);
  while (replay->Read(&event)) {
    if (event.has_epoch_end()) epochs.push_back(event.epoch_end().epoch());
    resumed += event.has_resumed();
  }
  ASSERT_TRUE(replay->Finish().ok());
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3, 4})) << "every epoch once, run by A alone";
  EXPECT_EQ(resumed, 0);
  ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(b_.stub->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  EXPECT_EQ(models.models_size(), 1) << "one model: the job ran once";
}

}  // namespace
}  // namespace classifier
