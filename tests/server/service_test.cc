// The real server on an ephemeral loopback port, driven through a real channel.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/image.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "model/network.h"
#include "server/server.h"
#include "tests/server/server_fixture.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::grpc::ClientContext;
using ::grpc::StatusCode;

class ServiceTest : public testing::ServerFixture {};
using testing::ExpectStatus;
constexpr int kTrainImages = testing::ServerFixture::kTrainImages;
constexpr int kTestImages = testing::ServerFixture::kTestImages;

TEST_F(ServiceTest, HealthIsServing) {
  auto health = ::grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "classifier.v1.Classifier"}) {
    ClientContext context;
    ::grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    ::grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), ::grpc::health::v1::HealthCheckResponse::SERVING);
  }
  ClientContext context;
  ::grpc::health::v1::HealthCheckRequest request;
  request.set_service("no.such.Service");
  ::grpc::health::v1::HealthCheckResponse response;
  EXPECT_EQ(health->Check(&context, request, &response).error_code(), StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, TrainStreamsEveryEpochWithGapFreeSequences) {
  v1::TrainRequest request = QuickTraining(/*epochs=*/4);
  request.set_progress_reports_per_epoch(2);
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_GE(events.size(), 4u);
  const std::string job_id = events.front().job_id();
  EXPECT_FALSE(job_id.empty());
  std::vector<int> epochs;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].job_id(), job_id);
    EXPECT_TRUE(events[i].has_time());
    if (events[i].has_epoch_end()) {
      const auto& end = events[i].epoch_end();
      epochs.push_back(end.epoch());
      EXPECT_EQ(end.epochs(), 4);
      EXPECT_GT(end.train_loss(), 0);
      EXPECT_GT(end.images_per_second(), 0);
      EXPECT_GT(end.elapsed_seconds(), 0);
      EXPECT_GE(end.eta_seconds(), 0);
      EXPECT_FALSE(end.has_validation_accuracy());
    }
  }
  EXPECT_EQ(epochs, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_TRUE(events[0].has_queued());
  EXPECT_TRUE(events[1].has_started());
  EXPECT_EQ(events[1].started().device(), "cpu");
  int progress = 0;
  for (const auto& event : events) progress += event.has_progress();
  EXPECT_EQ(progress, 8);
  const auto& finished = events.back().finished();
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED) << finished.error();
  EXPECT_FALSE(finished.model_id().empty());
  EXPECT_EQ(finished.test_metrics().count(), kTestImages);
  EXPECT_GT(finished.test_metrics().accuracy(),
            0.9);  // The synthetic patterns are easy.

  ClientContext context;
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  ASSERT_TRUE(stub_->GetJob(&context, get, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job.model_id(), finished.model_id());
  EXPECT_EQ(job.latest_epoch().epoch(), 4);
  EXPECT_EQ(job.request().batch_size(), 30);
  EXPECT_EQ(job.last_sequence(), static_cast<int64_t>(events.size()));

  // The weights file is in the state directory, whole.
  EXPECT_TRUE(
      std::filesystem::exists(dir_.path() + "/state/models/" + finished.model_id() + ".pth"));
}

TEST_F(ServiceTest, DefaultsAreTheTutorials) {
  v1::TrainRequest request;
  request.set_epochs(1);  // Keep the test short; the rest defaults.
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  ClientContext context;
  v1::GetJobRequest get;
  get.set_job_id(events.front().job_id());
  v1::Job job;
  ASSERT_TRUE(stub_->GetJob(&context, get, &job).ok());
  EXPECT_EQ(job.request().dataset(), "mnist");
  EXPECT_EQ(job.request().batch_size(), 60);
  EXPECT_DOUBLE_EQ(job.request().learning_rate(), 1e-3);
  EXPECT_EQ(job.request().optimizer(), v1::OPTIMIZER_KIND_ADAM);
}

TEST_F(ServiceTest, WatchJobReplaysFromAnySequenceAndMatchesTrain) {
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining());
  ASSERT_FALSE(events.empty());
  const std::string job_id = events.front().job_id();
  for (int64_t from = 0; from <= static_cast<int64_t>(events.size()) + 1; ++from) {
    std::vector<v1::JobEvent> replay = Watch(job_id, from);
    const size_t skip = static_cast<size_t>(std::max<int64_t>(from, 1) - 1);
    ASSERT_EQ(replay.size(), events.size() - std::min(skip, events.size())) << "from " << from;
    for (size_t i = 0; i < replay.size(); ++i) {
      EXPECT_EQ(replay[i].SerializeAsString(), events[skip + i].SerializeAsString());
    }
  }
}

TEST_F(ServiceTest, WatchJobFollowsALiveJob) {
  v1::TrainRequest request = QuickTraining(/*epochs=*/6);
  request.set_batch_size(1);  // Slow enough to attach while it runs.
  ClientContext train_context;
  auto train = stub_->Train(&train_context, request);
  v1::JobEvent first;
  ASSERT_TRUE(train->Read(&first));
  std::vector<v1::JobEvent> watched = Watch(first.job_id(), 1);
  std::vector<v1::JobEvent> streamed = {first};
  v1::JobEvent event;
  while (train->Read(&event)) streamed.push_back(event);
  ASSERT_TRUE(train->Finish().ok());
  ASSERT_EQ(watched.size(), streamed.size());
  for (size_t i = 0; i < watched.size(); ++i) {
    EXPECT_EQ(watched[i].SerializeAsString(), streamed[i].SerializeAsString());
  }
  EXPECT_EQ(watched.back().finished().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, ClosingTheTrainStreamDoesNotStopTheJob) {
  std::string job_id;
  {
    ClientContext context;
    auto train = stub_->Train(&context, QuickTraining(/*epochs=*/3));
    v1::JobEvent event;
    ASSERT_TRUE(train->Read(&event));
    job_id = event.job_id();
    context.TryCancel();
    while (train->Read(&event)) {
    }
    EXPECT_EQ(train->Finish().error_code(), StatusCode::CANCELLED);
  }
  EXPECT_EQ(WaitForJobState(job_id, v1::JOB_STATE_SUCCEEDED), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(ServiceTest, CancelStopsARunningJobAndAQueuedOne) {
  v1::TrainRequest slow = QuickTraining(/*epochs=*/1000);
  slow.set_batch_size(1);
  ClientContext running_context, queued_context;
  // One after the other: two calls in flight at once may reach the queue in either order.
  auto running = stub_->Train(&running_context, slow);
  v1::JobEvent event;
  ASSERT_TRUE(running->Read(&event));
  const std::string running_id = event.job_id();
  auto queued = stub_->Train(&queued_context, slow);
  ASSERT_TRUE(queued->Read(&event));
  const std::string queued_id = event.job_id();
  ASSERT_EQ(WaitForJobState(running_id, v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);

  // The queued one ends at once and never starts.
  {
    ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(queued_id);
    v1::Job job;
    ASSERT_TRUE(stub_->CancelJob(&context, cancel, &job).ok());
    EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  }
  std::vector<v1::JobEvent> rest;
  while (queued->Read(&event)) rest.push_back(event);
  EXPECT_TRUE(queued->Finish().ok());
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].finished().state(), v1::JOB_STATE_CANCELLED);

  // The running one stops at its next batch.
  {
    ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(running_id);
    v1::Job job;
    ASSERT_TRUE(stub_->CancelJob(&context, cancel, &job).ok());
  }
  v1::JobEvent last;
  while (running->Read(&event)) last = event;
  EXPECT_TRUE(running->Finish().ok());
  EXPECT_EQ(last.finished().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_NE(last.finished().error().find("cancel"), std::string::npos);
  EXPECT_TRUE(last.finished().model_id().empty());

  ClientContext context;
  v1::ListJobsResponse list;
  ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &list).ok());
  ASSERT_EQ(list.jobs_size(), 2);
  EXPECT_EQ(list.jobs(0).job_id(), queued_id);  // Newest first.
  EXPECT_EQ(list.jobs(1).job_id(), running_id);
}

TEST_F(ServiceTest, EvaluateReportsEveryMetric) {
  const std::string model_id = TrainModel();
  ClientContext context;
  v1::EvaluateRequest request;
  request.set_dataset("mnist");
  v1::EvaluateResponse response;
  ASSERT_TRUE(stub_->Evaluate(&context, request, &response).ok());
  EXPECT_EQ(response.model_id(), model_id);
  EXPECT_EQ(response.count(), kTestImages);
  EXPECT_EQ(response.split(), v1::DATASET_SPLIT_TEST);
  ASSERT_EQ(response.per_class_size(), 10);
  ASSERT_EQ(response.confusion_matrix_size(), 10);
  int64_t total = 0, correct = 0;
  for (int row = 0; row < 10; ++row) {
    ASSERT_EQ(response.confusion_matrix(row).counts_size(), 10);
    int64_t support = 0;
    for (int col = 0; col < 10; ++col) {
      support += response.confusion_matrix(row).counts(col);
      if (row == col) correct += response.confusion_matrix(row).counts(col);
    }
    EXPECT_EQ(response.per_class(row).support(), support);
    EXPECT_EQ(response.per_class(row).label(), row);
    total += support;
  }
  EXPECT_EQ(total, kTestImages);
  EXPECT_DOUBLE_EQ(response.accuracy(), static_cast<double>(correct) / kTestImages);
  EXPECT_GT(response.loss(), 0);

  // The training split too.
  ClientContext train_context;
  request.set_split(v1::DATASET_SPLIT_TRAIN);
  ASSERT_TRUE(stub_->Evaluate(&train_context, request, &response).ok());
  EXPECT_EQ(response.count(), kTrainImages);
}

TEST_F(ServiceTest, PredictAcceptsEveryImageFormMixedInOneBatch) {
  const std::string model_id = TrainModel();
  v1::PredictRequest request;
  request.set_top_k(3);
  const int64_t index = 5;
  *request.add_images() = RawImage(test_, index);
  v1::Image float_image;
  for (int64_t p = 0; p < test_.image_size(); ++p) {
    float_image.mutable_float_pixels()->add_values(test_.pixels[index * test_.image_size() + p] /
                                                   255.0f);
  }
  *request.add_images() = float_image;
  std::vector<uint8_t> pixels(test_.pixels.begin() + index * test_.image_size(),
                              test_.pixels.begin() + (index + 1) * test_.image_size());
  auto png = EncodePngGrey(pixels, 28, 28);
  ASSERT_TRUE(png.ok());
  request.add_images()->set_encoded(*png);
  auto jpeg = EncodeJpegGrey(pixels, 28, 28);
  ASSERT_TRUE(jpeg.ok());
  request.add_images()->set_encoded(*jpeg);

  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(response.model_id(), model_id);
  ASSERT_EQ(response.predictions_size(), 4);
  for (const v1::Prediction& prediction : response.predictions()) {
    EXPECT_EQ(prediction.label(), test_.labels[index]);
    ASSERT_EQ(prediction.top_k_size(), 3);
    EXPECT_EQ(prediction.top_k(0).label(), prediction.label());
    EXPECT_FLOAT_EQ(prediction.top_k(0).probability(), prediction.probability());
    EXPECT_GE(prediction.top_k(0).probability(), prediction.top_k(1).probability());
    EXPECT_GE(prediction.top_k(1).probability(), prediction.top_k(2).probability());
  }
  // Raw bytes, floats and a lossless PNG are the same picture: the same
  // probabilities.
  EXPECT_FLOAT_EQ(response.predictions(0).probability(), response.predictions(1).probability());
  EXPECT_FLOAT_EQ(response.predictions(0).probability(), response.predictions(2).probability());
}

TEST_F(ServiceTest, ExportedWeightsAreWholeAndGiveTheSamePredictions) {
  const std::string model_id = TrainModel();
  ClientContext context;
  v1::ExportWeightsRequest request;
  request.set_format(v1::PYTORCH_STATE_DICT);
  auto reader = stub_->ExportWeights(&context, request);
  std::string file;
  std::string sha256;
  v1::WeightsChunk chunk;
  int chunks = 0;
  std::vector<int64_t> total_sizes;
  while (reader->Read(&chunk)) {
    ++chunks;
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(file.size()));
    EXPECT_LE(chunk.data().size(), 1u << 20);
    EXPECT_EQ(chunk.model_id(), model_id);
    file += chunk.data();
    if (!chunk.sha256().empty()) sha256 = chunk.sha256();
    total_sizes.push_back(chunk.total_size());
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(chunks, 1);
  for (int64_t total : total_sizes) EXPECT_EQ(total, static_cast<int64_t>(file.size()));
  EXPECT_EQ(sha256, Sha256Hex(file));

  auto network = TrainedModel::FromStateDictBytes(file, Architecture{}, "cpu");
  ASSERT_TRUE(network.ok()) << network.status();
  std::vector<float> pixels(test_.pixels.begin(), test_.pixels.begin() + 10 * 784);
  for (float& value : pixels) value /= 255.0f;
  auto local = (*network)->PredictProbabilities(pixels, 10);
  ASSERT_TRUE(local.ok());
  v1::PredictRequest predict;
  for (int i = 0; i < 10; ++i) *predict.add_images() = RawImage(test_, i);
  predict.set_top_k(10);
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(predict, &response).ok());
  for (int i = 0; i < 10; ++i) {
    for (const auto& entry : response.predictions(i).top_k()) {
      EXPECT_NEAR(entry.probability(), (*local)[i * 10 + entry.label()], 1e-6);
    }
  }
}

// A file of several chunks (fc1 alone is 784 x 2048 floats, 6.4 MB) arrives byte for byte as
// the server stored it, cut into consecutive chunks of at most 1 MiB, the hash on the last.
TEST_F(ServiceTest, ALargeExportArrivesByteIdenticalChunkByChunk) {
  v1::TrainRequest training = QuickTraining(/*epochs=*/1);
  training.mutable_architecture()->set_hidden_units(2048);
  const std::string model_id = TrainModel(training);
  ASSERT_FALSE(model_id.empty());
  absl::StatusOr<std::string> stored =
      ReadWholeFile(dir_.path() + "/state/models/" + model_id + ".pth");
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_GT(stored->size(), 6u << 20);

  ClientContext context;
  v1::ExportWeightsRequest request;
  request.set_model_id(model_id);
  request.set_format(v1::PYTORCH_STATE_DICT);
  auto reader = stub_->ExportWeights(&context, request);
  std::string file;
  std::vector<std::string> hashes;
  v1::WeightsChunk chunk;
  while (reader->Read(&chunk)) {
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(file.size()));
    EXPECT_EQ(chunk.total_size(), static_cast<int64_t>(stored->size()));
    EXPECT_LE(chunk.data().size(), 1u << 20);
    EXPECT_EQ(chunk.file_name(), model_id + ".pth");
    file += chunk.data();
    hashes.push_back(chunk.sha256());
  }
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(hashes.size(), (stored->size() + (1u << 20) - 1) >> 20);
  for (size_t i = 0; i + 1 < hashes.size(); ++i) EXPECT_EQ(hashes[i], "") << "chunk " << i;
  EXPECT_EQ(hashes.back(), Sha256Hex(*stored));
  EXPECT_TRUE(file == *stored) << "the export differs from the stored file";
}

TEST_F(ServiceTest, ExportsOnnxToo) {
  const std::string model_id = TrainModel();
  ClientContext context;
  v1::ExportWeightsRequest request;
  request.set_format(v1::ONNX);
  auto reader = stub_->ExportWeights(&context, request);
  std::string file, sha256, name;
  v1::WeightsChunk chunk;
  while (reader->Read(&chunk)) {
    file += chunk.data();
    name = chunk.file_name();
    if (!chunk.sha256().empty()) sha256 = chunk.sha256();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(name, model_id + ".onnx");
  EXPECT_EQ(sha256, Sha256Hex(file));
  // An ONNX ModelProto names its producer and its operators in plain bytes.
  EXPECT_NE(file.find("Conv"), std::string::npos);
  EXPECT_NE(file.find("Gemm"), std::string::npos);

  ClientContext bad_context;
  request.set_format(static_cast<v1::WeightsFormat>(42));
  auto bad = stub_->ExportWeights(&bad_context, request);
  EXPECT_FALSE(bad->Read(&chunk));
  ExpectStatus(bad->Finish(), StatusCode::INVALID_ARGUMENT, "format");
}

TEST_F(ServiceTest, AValidationSplitIsReportedOnEveryEpochEnd) {
  v1::TrainRequest request = QuickTraining(/*epochs=*/3);
  request.set_validation_fraction(0.2);
  request.set_keep_best(true);
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  int epoch_ends = 0;
  for (const v1::JobEvent& event : events) {
    if (!event.has_epoch_end()) continue;
    ++epoch_ends;
    EXPECT_TRUE(event.epoch_end().has_validation_loss());
    EXPECT_TRUE(event.epoch_end().has_validation_accuracy());
    EXPECT_GT(event.epoch_end().validation_loss(), 0);
    EXPECT_GT(event.epoch_end().validation_accuracy(), 0.1) << "no better than chance";
    EXPECT_LE(event.epoch_end().validation_accuracy(), 1);
  }
  EXPECT_EQ(epoch_ends, 3);
  const v1::JobEvent::Finished& finished = events.back().finished();
  ASSERT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED) << finished.error();
  EXPECT_FALSE(finished.stopped_early());
  EXPECT_EQ(finished.epochs_completed(), 3);
  EXPECT_GE(finished.best_epoch(), 1);
  EXPECT_THAT(finished.note(), ::testing::HasSubstr("kept the weights of epoch"));
}

TEST_F(ServiceTest, EarlyStoppingEndsTheJobWithANote) {
  v1::TrainRequest request = QuickTraining(/*epochs=*/6);
  request.set_learning_rate(1e-12);  // Nothing improves after epoch 1.
  request.set_validation_fraction(0.2);
  request.set_early_stopping_patience(1);
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  int epoch_ends = 0;
  for (const v1::JobEvent& event : events) epoch_ends += event.has_epoch_end();
  EXPECT_EQ(epoch_ends, 2);
  const v1::JobEvent::Finished& finished = events.back().finished();
  EXPECT_EQ(finished.state(), v1::JOB_STATE_SUCCEEDED) << finished.error();
  EXPECT_TRUE(finished.stopped_early());
  EXPECT_EQ(finished.epochs_completed(), 2);
  EXPECT_EQ(finished.best_epoch(), 1);
  EXPECT_THAT(finished.note(), ::testing::HasSubstr("stopped early after epoch 2 of 6"));
  EXPECT_FALSE(finished.model_id().empty());
}

TEST_F(ServiceTest, TrainsWithEveryOptimizerAndSchedule) {
  for (const auto& [optimizer, schedule] :
       std::vector<std::pair<v1::OptimizerKind, v1::LearningRateSchedule>>{
           {v1::OPTIMIZER_KIND_ADAMW, v1::LEARNING_RATE_SCHEDULE_COSINE},
           {v1::OPTIMIZER_KIND_SGD, v1::LEARNING_RATE_SCHEDULE_STEP}}) {
    v1::TrainRequest request = QuickTraining(/*epochs=*/2);
    request.set_optimizer(optimizer);
    request.set_lr_schedule(schedule);
    request.set_weight_decay(1e-4);
    if (optimizer == v1::OPTIMIZER_KIND_SGD) {
      request.set_learning_rate(0.05);
      request.set_momentum(0.9);
      request.set_lr_gamma(0.5);
    }
    std::vector<v1::JobEvent> events = TrainToEnd(request);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
        << events.back().finished().error();
    // The job ran with the optimizer asked for (GetJob shows the request as it runs).
    ClientContext context;
    v1::GetJobRequest get;
    get.set_job_id(events.front().job_id());
    v1::Job job;
    ASSERT_TRUE(stub_->GetJob(&context, get, &job).ok());
    EXPECT_EQ(job.request().optimizer(), optimizer);
    EXPECT_EQ(job.request().lr_schedule(), schedule);
  }
}

TEST_F(ServiceTest, TrainsWithAugmentation) {
  v1::TrainRequest request = QuickTraining(/*epochs=*/2);
  request.mutable_augmentation()->set_rotation_degrees(10);
  request.mutable_augmentation()->set_translation(0.1);
  request.mutable_augmentation()->set_scale_min(0.9);
  request.mutable_augmentation()->set_scale_max(1.1);
  request.set_validation_fraction(0.1);
  std::vector<v1::JobEvent> events = TrainToEnd(request);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().finished().error();
}

TEST_F(ServiceTest, BadTrainRequestsAreRefusedWithTheField) {
  struct Case {
    const char* what;
    v1::TrainRequest request;
    StatusCode code;
    const char* mention;
  };
  std::vector<Case> cases;
  auto with = [](auto mutate) {
    v1::TrainRequest request;
    request.set_dataset("mnist");
    mutate(request);
    return request;
  };
  cases.push_back({"unknown dataset", with([](auto& r) { r.set_dataset("no-such"); }),
                   StatusCode::NOT_FOUND, "no-such"});
  cases.push_back({"negative epochs", with([](auto& r) { r.set_epochs(-1); }),
                   StatusCode::INVALID_ARGUMENT, "epochs"});
  cases.push_back({"too many epochs", with([](auto& r) { r.set_epochs(1001); }),
                   StatusCode::INVALID_ARGUMENT, "epochs"});
  cases.push_back({"negative batch", with([](auto& r) { r.set_batch_size(-5); }),
                   StatusCode::INVALID_ARGUMENT, "batch_size"});
  cases.push_back({"batch larger than the data",
                   with([](auto& r) { r.set_batch_size(kTrainImages + 1); }),
                   StatusCode::INVALID_ARGUMENT, "batch_size"});
  cases.push_back({"negative learning rate", with([](auto& r) { r.set_learning_rate(-0.1); }),
                   StatusCode::INVALID_ARGUMENT, "learning_rate"});
  cases.push_back({"NaN learning rate", with([](auto& r) {
                     r.set_learning_rate(std::numeric_limits<double>::quiet_NaN());
                   }),
                   StatusCode::INVALID_ARGUMENT, "learning_rate"});
  cases.push_back({"validation fraction above 0.5",
                   with([](auto& r) { r.set_validation_fraction(0.6); }),
                   StatusCode::INVALID_ARGUMENT, "validation_fraction"});
  cases.push_back({"negative validation fraction",
                   with([](auto& r) { r.set_validation_fraction(-0.1); }),
                   StatusCode::INVALID_ARGUMENT, "validation_fraction"});
  cases.push_back({"NaN validation fraction", with([](auto& r) {
                     r.set_validation_fraction(std::numeric_limits<double>::quiet_NaN());
                   }),
                   StatusCode::INVALID_ARGUMENT, "validation_fraction"});
  cases.push_back({"keep_best without a validation split",
                   with([](auto& r) { r.set_keep_best(true); }), StatusCode::INVALID_ARGUMENT,
                   "keep_best"});
  cases.push_back({"early stopping without a validation split",
                   with([](auto& r) { r.set_early_stopping_patience(2); }),
                   StatusCode::INVALID_ARGUMENT, "early_stopping_patience"});
  cases.push_back({"negative early stopping patience", with([](auto& r) {
                     r.set_validation_fraction(0.2);
                     r.set_early_stopping_patience(-1);
                   }),
                   StatusCode::INVALID_ARGUMENT, "early_stopping_patience"});
  cases.push_back({"unknown optimizer",
                   with([](auto& r) { r.set_optimizer(static_cast<v1::OptimizerKind>(99)); }),
                   StatusCode::INVALID_ARGUMENT, "optimizer"});
  cases.push_back({"momentum with adam", with([](auto& r) { r.set_momentum(0.9); }),
                   StatusCode::INVALID_ARGUMENT, "momentum"});
  cases.push_back({"momentum of 1", with([](auto& r) {
                     r.set_optimizer(v1::OPTIMIZER_KIND_SGD);
                     r.set_momentum(1);
                   }),
                   StatusCode::INVALID_ARGUMENT, "momentum"});
  cases.push_back({"negative weight decay", with([](auto& r) { r.set_weight_decay(-1e-4); }),
                   StatusCode::INVALID_ARGUMENT, "weight_decay"});
  cases.push_back({"unknown schedule", with([](auto& r) {
                     r.set_lr_schedule(static_cast<v1::LearningRateSchedule>(42));
                   }),
                   StatusCode::INVALID_ARGUMENT, "lr_schedule"});
  cases.push_back({"lr_step_size without the step schedule",
                   with([](auto& r) { r.set_lr_step_size(2); }), StatusCode::INVALID_ARGUMENT,
                   "lr_step_size"});
  cases.push_back({"lr_step_size beyond the epochs", with([](auto& r) {
                     r.set_epochs(3);
                     r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
                     r.set_lr_step_size(4);
                   }),
                   StatusCode::INVALID_ARGUMENT, "lr_step_size"});
  cases.push_back({"lr_gamma above 1", with([](auto& r) {
                     r.set_lr_schedule(v1::LEARNING_RATE_SCHEDULE_STEP);
                     r.set_lr_gamma(2);
                   }),
                   StatusCode::INVALID_ARGUMENT, "lr_gamma"});
  cases.push_back({"rotation beyond 180",
                   with([](auto& r) { r.mutable_augmentation()->set_rotation_degrees(200); }),
                   StatusCode::INVALID_ARGUMENT, "augmentation.rotation_degrees"});
  cases.push_back({"translation beyond half the side",
                   with([](auto& r) { r.mutable_augmentation()->set_translation(0.7); }),
                   StatusCode::INVALID_ARGUMENT, "augmentation.translation"});
  cases.push_back({"scale_min above scale_max", with([](auto& r) {
                     r.mutable_augmentation()->set_scale_min(1.5);
                     r.mutable_augmentation()->set_scale_max(1.2);
                   }),
                   StatusCode::INVALID_ARGUMENT, "augmentation.scale_min"});
  cases.push_back({"horizontal flips of digits",
                   with([](auto& r) { r.mutable_augmentation()->set_horizontal_flip(true); }),
                   StatusCode::INVALID_ARGUMENT, "a flipped 6 is a 9"});
  cases.push_back({"vertical flips of digits",
                   with([](auto& r) { r.mutable_augmentation()->set_vertical_flip(true); }),
                   StatusCode::INVALID_ARGUMENT, "augmentation.vertical_flip"});
  cases.push_back({"missing files (no fashion-mnist here)",
                   with([](auto& r) { r.set_dataset("fashion-mnist"); }),
                   StatusCode::FAILED_PRECONDITION, "train-images-idx3-ubyte"});
  for (const Case& c : cases) {
    ::grpc::Status status;
    std::vector<v1::JobEvent> events = TrainToEnd(c.request, &status);
    SCOPED_TRACE(c.what);
    EXPECT_TRUE(events.empty());
    ExpectStatus(status, c.code, c.mention);
  }
  // No job was created by any of them, and the server still serves.
  ClientContext context;
  v1::ListJobsResponse list;
  ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0);
}

TEST_F(ServiceTest, CorruptDatasetFilesNameTheFile) {
  // A wrong magic number is caught by Train itself.
  const std::string images = dir_.path() + "/data/mnist/train-images-idx3-ubyte.gz";
  testing::WriteFile(images, testing::GzipBytes(std::string(64, '\x07')));
  ::grpc::Status status;
  TrainToEnd(QuickTraining(), &status);
  EXPECT_NE(status.error_code(), StatusCode::OK);
  EXPECT_NE(status.error_message().find("train-images-idx3-ubyte"), std::string::npos)
      << status.error_message();

  // A truncated body passes the header check; the job then fails naming the
  // file.
  std::string good = EncodeIdxImages(train_.pixels, train_.size(), 28, 28);
  testing::WriteFile(images, testing::GzipBytes(good.substr(0, good.size() / 2)));
  std::vector<v1::JobEvent> events = TrainToEnd(QuickTraining(), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(events.back().finished().error().find("train-images-idx3-ubyte"), std::string::npos)
      << events.back().finished().error();
}

TEST_F(ServiceTest, BeforeAnyModelPredictAndEvaluateAreFailedPrecondition) {
  v1::PredictRequest predict;
  *predict.add_images() = RawImage(test_, 0);
  v1::PredictResponse response;
  ExpectStatus(Predict(predict, &response), StatusCode::FAILED_PRECONDITION, "train");
  ClientContext context;
  v1::EvaluateResponse evaluation;
  ExpectStatus(stub_->Evaluate(&context, v1::EvaluateRequest(), &evaluation),
               StatusCode::FAILED_PRECONDITION, "train");
  ClientContext export_context;
  auto reader = stub_->ExportWeights(&export_context, v1::ExportWeightsRequest());
  v1::WeightsChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  ExpectStatus(reader->Finish(), StatusCode::FAILED_PRECONDITION, "train");
}

TEST_F(ServiceTest, UnknownIdsAreNotFound) {
  TrainModel();
  {
    ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("job-missing");
    v1::Job job;
    ExpectStatus(stub_->GetJob(&context, request, &job), StatusCode::NOT_FOUND, "job-missing");
  }
  {
    ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id("job-missing");
    v1::Job job;
    ExpectStatus(stub_->CancelJob(&context, request, &job), StatusCode::NOT_FOUND, "job-missing");
  }
  {
    ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id("job-missing");
    auto reader = stub_->WatchJob(&context, request);
    v1::JobEvent event;
    EXPECT_FALSE(reader->Read(&event));
    ExpectStatus(reader->Finish(), StatusCode::NOT_FOUND, "job-missing");
  }
  {
    v1::PredictRequest request;
    request.set_model_id("model-missing");
    *request.add_images() = RawImage(test_, 0);
    v1::PredictResponse response;
    ExpectStatus(Predict(request, &response), StatusCode::NOT_FOUND, "model-missing");
  }
  {
    ClientContext context;
    v1::EvaluateRequest request;
    request.set_model_id("model-missing");
    v1::EvaluateResponse response;
    ExpectStatus(stub_->Evaluate(&context, request, &response), StatusCode::NOT_FOUND,
                 "model-missing");
  }
  {
    ClientContext context;
    v1::ExportWeightsRequest request;
    request.set_model_id("model-missing");
    auto reader = stub_->ExportWeights(&context, request);
    v1::WeightsChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    ExpectStatus(reader->Finish(), StatusCode::NOT_FOUND, "model-missing");
  }
}

TEST_F(ServiceTest, BadPredictRequestsAreRefusedWithTheField) {
  ServerConfig config;
  config.max_predict_images = 5;
  StartServer(config);
  TrainModel();
  auto expect = [&](const v1::PredictRequest& request, StatusCode code,
                    const std::string& mention) {
    v1::PredictResponse response;
    ExpectStatus(Predict(request, &response), code, mention);
  };
  expect(v1::PredictRequest(), StatusCode::INVALID_ARGUMENT, "images");

  v1::PredictRequest short_raw;
  short_raw.add_images()->set_raw_pixels(std::string(700, '\0'));
  expect(short_raw, StatusCode::INVALID_ARGUMENT, "images[0].raw_pixels");

  v1::PredictRequest short_float;
  *short_float.add_images() = RawImage(test_, 0);
  short_float.add_images()->mutable_float_pixels()->add_values(0.5f);
  expect(short_float, StatusCode::INVALID_ARGUMENT, "images[1].float_pixels");

  for (float bad : {1.5f, -0.1f, std::numeric_limits<float>::quiet_NaN()}) {
    v1::PredictRequest request;
    auto* values = request.add_images()->mutable_float_pixels();
    for (int i = 0; i < 784; ++i) values->add_values(i == 100 ? bad : 0.5f);
    expect(request, StatusCode::INVALID_ARGUMENT, "values[100]");
  }

  v1::PredictRequest garbage;
  garbage.add_images()->set_encoded("this is not an image");
  expect(garbage, StatusCode::INVALID_ARGUMENT, "images[0].encoded");

  v1::PredictRequest empty_image;
  empty_image.add_images();
  expect(empty_image, StatusCode::INVALID_ARGUMENT, "images[0]");

  v1::PredictRequest too_many;
  for (int i = 0; i < 6; ++i) *too_many.add_images() = RawImage(test_, i);
  expect(too_many, StatusCode::RESOURCE_EXHAUSTED, "5");

  v1::PredictRequest bad_top_k;
  *bad_top_k.add_images() = RawImage(test_, 0);
  bad_top_k.set_top_k(11);
  expect(bad_top_k, StatusCode::INVALID_ARGUMENT, "top_k");
}

}  // namespace
}  // namespace classifier
