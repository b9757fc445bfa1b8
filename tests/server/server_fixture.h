// A real ClassifierServer on an ephemeral loopback port, a real channel to it, and synthetic
// MNIST-like data in a temporary directory: the base of the integration tests.
#ifndef CLASSIFIER_TESTS_SERVER_SERVER_FIXTURE_H_
#define CLASSIFIER_TESTS_SERVER_SERVER_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "classifier/v1/classifier.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::testing {

class ServerFixture : public ::testing::Test {
 public:
  static constexpr int kTrainImages = 600;
  static constexpr int kTestImages = 200;

  // A short training of the fixture's data (public: request builders outside a test use it).
  static v1::TrainRequest QuickTraining(int epochs = 3) {
    v1::TrainRequest request;
    request.set_dataset("mnist");
    request.set_epochs(epochs);
    request.set_batch_size(30);
    request.set_learning_rate(3e-3);
    request.set_seed(7);
    return request;
  }

 protected:
  void SetUp() override {
    train_ = MakeSyntheticDataset(kTrainImages, 10, /*seed=*/1);
    test_ = MakeSyntheticDataset(kTestImages, 10, /*seed=*/2);
    WriteDatasetFiles(dir_.path() + "/data/mnist", train_, test_, /*gzip=*/true);
    StartServer(ServerConfig{});
  }

  // (Re)starts the server on the same data and state directories.
  void StartServer(ServerConfig config) {
    server_.reset();
    config.listen_address = "127.0.0.1:0";
    config.metrics_listen = "127.0.0.1:0";
    // The default port would clash between tests running at once: a test that wants the web
    // server asks for 127.0.0.1:0.
    if (config.http_listen == ServerConfig().http_listen) config.http_listen = "";
    config.data_dir = dir_.path() + "/data";
    config.fashion_fallback_dir = dir_.path() + "/no-fashion";
    config.state_dir = dir_.path() + "/state";
    config.device = "cpu";
    config.compute_threads = 1;
    auto server = ClassifierServer::Start(config);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = ::grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     ::grpc::InsecureChannelCredentials());
    stub_ = v1::Classifier::NewStub(channel_);
  }

  // The model's PYTORCH_STATE_DICT export, every chunk joined.
  std::string ExportBytes(const std::string& model_id) {
    ::grpc::ClientContext context;
    v1::ExportWeightsRequest request;
    request.set_model_id(model_id);
    auto reader = stub_->ExportWeights(&context, request);
    std::string file;
    v1::WeightsChunk chunk;
    while (reader->Read(&chunk)) file += chunk.data();
    EXPECT_TRUE(reader->Finish().ok());
    return file;
  }

  // Runs Train to the end; returns every event.
  std::vector<v1::JobEvent> TrainToEnd(const v1::TrainRequest& request,
                                       ::grpc::Status* status = nullptr) {
    ::grpc::ClientContext context;
    auto reader = stub_->Train(&context, request);
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(event);
    ::grpc::Status finish = reader->Finish();
    if (status != nullptr) *status = finish;
    EXPECT_TRUE(status != nullptr || finish.ok()) << finish.error_message();
    return events;
  }

  std::string TrainModel(v1::TrainRequest request = QuickTraining()) {
    std::vector<v1::JobEvent> events = TrainToEnd(request);
    EXPECT_FALSE(events.empty());
    if (events.empty()) return "";
    EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
        << events.back().finished().error();
    return events.back().finished().model_id();
  }

  std::vector<v1::JobEvent> Watch(const std::string& job_id, int64_t from,
                                  ::grpc::Status* status = nullptr) {
    ::grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_from_sequence(from);
    auto reader = stub_->WatchJob(&context, request);
    std::vector<v1::JobEvent> events;
    v1::JobEvent event;
    while (reader->Read(&event)) events.push_back(event);
    ::grpc::Status finish = reader->Finish();
    if (status != nullptr) *status = finish;
    EXPECT_TRUE(status != nullptr || finish.ok()) << finish.error_message();
    return events;
  }

  v1::Image RawImage(const Dataset& dataset, int64_t index) const {
    v1::Image image;
    image.set_raw_pixels(std::string(
        reinterpret_cast<const char*>(dataset.pixels.data() + index * dataset.image_size()),
        dataset.image_size()));
    return image;
  }

  ::grpc::Status Predict(const v1::PredictRequest& request, v1::PredictResponse* response) {
    ::grpc::ClientContext context;
    return stub_->Predict(&context, request, response);
  }

  v1::Job GetJob(const std::string& job_id) {
    ::grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    EXPECT_TRUE(stub_->GetJob(&context, request, &job).ok());
    return job;
  }

  v1::JobState WaitForJobState(const std::string& job_id, v1::JobState want) {
    v1::Job job;
    for (int i = 0; i < 3000; ++i) {
      job = GetJob(job_id);
      if (job.state() == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return job.state();
  }

  TempDir dir_;
  Dataset train_, test_;
  std::unique_ptr<ClassifierServer> server_;
  std::shared_ptr<::grpc::Channel> channel_;
  std::unique_ptr<v1::Classifier::Stub> stub_;
};

inline void ExpectStatus(const ::grpc::Status& status, ::grpc::StatusCode code,
                         const std::string& mention) {
  EXPECT_EQ(status.error_code(), code) << status.error_message();
  EXPECT_NE(status.error_message().find(mention), std::string::npos)
      << "message \"" << status.error_message() << "\" should mention \"" << mention << "\"";
}

}  // namespace classifier::testing

#endif  // CLASSIFIER_TESTS_SERVER_SERVER_FIXTURE_H_
