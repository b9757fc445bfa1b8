// The dynamic batcher through the real server on loopback: concurrent callers get their own
// answers (the same as one image at a time), calls are coalesced into shared forward passes
// without waiting for callers that are not coming, expired calls are dropped without being
// computed, and shutdown answers every accepted call.
#include "server/batcher.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "model/trainer.h"
#include "tests/server/metrics_scrape.h"
#include "tests/server/server_fixture.h"
#include "tests/testing/synthetic_data.h"

namespace classifier::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kClasses = 10;
constexpr int64_t kImagePixels = 28 * 28;

// One asynchronous Predict call.
struct AsyncCall {
  ::grpc::ClientContext context;
  v1::PredictRequest request;
  v1::PredictResponse response;
  ::grpc::Status status;
  std::unique_ptr<::grpc::ClientAsyncResponseReader<v1::PredictResponse>> reader;
};

class BatcherTest : public ServerFixture {
 protected:
  // A server that coalesces generously: batches wait up to `delay` for more calls.
  void StartBatching(int max_images, absl::Duration delay) {
    ServerConfig config;
    config.batch_max_images = max_images;
    config.batch_max_delay = delay;
    config.inference_threads = 1;
    StartServer(config);
  }

  // Every class probability of `image` (a test image), asked for alone.
  std::vector<float> AloneProbabilities(const std::string& model_id, int image) {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_top_k(kClasses);
    *request.add_images() = RawImage(test_, image);
    v1::PredictResponse response;
    ::grpc::Status status = Predict(request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> probabilities(kClasses, -1);
    if (response.predictions_size() != 1) return probabilities;
    for (const v1::LabelProbability& entry : response.predictions(0).top_k()) {
      probabilities[entry.label()] = entry.probability();
    }
    return probabilities;
  }

  // Starts every call at once on one completion queue and waits for all of them.
  void RunConcurrently(std::vector<std::unique_ptr<AsyncCall>>& calls,
                       std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
    ::grpc::CompletionQueue queue;
    for (size_t i = 0; i < calls.size(); ++i) {
      AsyncCall& call = *calls[i];
      call.context.set_deadline(std::chrono::system_clock::now() + deadline);
      call.reader = stub_->AsyncPredict(&call.context, call.request, &queue);
      call.reader->Finish(&call.response, &call.status, reinterpret_cast<void*>(i));
    }
    void* tag = nullptr;
    bool ok = false;
    for (size_t done = 0; done < calls.size() && queue.Next(&tag, &ok); ++done) {
    }
    queue.Shutdown();
    while (queue.Next(&tag, &ok)) {
    }
  }

  // A Predict request of `count` test images from `first` (wrapping around).
  v1::PredictRequest ImagesRequest(const std::string& model_id, int first, int count) const {
    v1::PredictRequest request;
    request.set_model_id(model_id);
    request.set_top_k(kClasses);
    for (int i = 0; i < count; ++i)
      *request.add_images() = RawImage(test_, (first + i) % kTestImages);
    return request;
  }
};

TEST_F(BatcherTest, ConcurrentCallersGetTheirOwnAnswersFromSharedForwardPasses) {
  // Slices of 16 images: the 40-image calls below are cut up and share passes with others.
  StartBatching(/*max_images=*/16, absl::Milliseconds(20));
  const std::string model_id = TrainModel(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(model_id.empty());
  std::vector<std::vector<float>> alone;
  for (int i = 0; i < kTestImages; ++i) alone.push_back(AloneProbabilities(model_id, i));
  const std::string before = Scrape(server_->metrics_port());
  const double passes_before = Sample(before, "classifier_batcher_batch_images_count");
  const double images_before = Sample(before, "classifier_batcher_batch_images_sum");

  // 64 callers of one image each and 4 of 40 images, all at once, twice.
  std::vector<std::unique_ptr<AsyncCall>> calls;
  std::vector<int> first_image;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 68; ++i) {
      const int first = (round * 68 + i * 3) % kTestImages;
      calls.push_back(std::make_unique<AsyncCall>());
      calls.back()->request = ImagesRequest(model_id, first, i < 64 ? 1 : 40);
      first_image.push_back(first);
    }
  }
  RunConcurrently(calls);

  for (size_t c = 0; c < calls.size(); ++c) {
    const AsyncCall& call = *calls[c];
    ASSERT_TRUE(call.status.ok()) << "call " << c << ": " << call.status.error_message();
    EXPECT_EQ(call.response.model_id(), model_id);
    ASSERT_EQ(call.response.predictions_size(), call.request.images_size()) << "call " << c;
    for (int i = 0; i < call.request.images_size(); ++i) {
      const int image = (first_image[c] + i) % kTestImages;
      const v1::Prediction& prediction = call.response.predictions(i);
      ASSERT_EQ(prediction.top_k_size(), kClasses);
      for (const v1::LabelProbability& entry : prediction.top_k()) {
        EXPECT_NEAR(entry.probability(), alone[image][entry.label()], 1e-5)
            << "call " << c << ", image " << i << " (test image " << image << "), label "
            << entry.label();
      }
    }
  }

  const std::string metrics = Scrape(server_->metrics_port());
  // Every image of the concurrent calls went through exactly one pass: 2 x (64 + 4 x 40).
  EXPECT_EQ(Sample(metrics, "classifier_batcher_batch_images_sum") - images_before,
            2 * (64 + 4 * 40))
      << metrics;
  // Fewer passes than calls: calls were coalesced, and some pass served several calls.
  const double passes = Sample(metrics, "classifier_batcher_batch_images_count") - passes_before;
  EXPECT_LT(passes, static_cast<double>(calls.size())) << metrics;
  EXPECT_LT(Sample(metrics, R"(classifier_batcher_batch_calls_bucket{le="1"})"),
            Sample(metrics, "classifier_batcher_batch_calls_count"))
      << "no forward pass held more than one call\n"
      << metrics;
  EXPECT_GT(Sample(metrics, "classifier_batcher_queue_delay_seconds_count"), 0) << metrics;
}

TEST_F(BatcherTest, ABatchGoesAsSoonAsThePreviousBatchsCallersAreBack) {
  // The longest delay the server takes: a round that waited for it, or for its quarter (the
  // quiet step), would take 250 ms or more instead of a few.
  const absl::Duration delay = absl::Seconds(1);
  StartBatching(/*max_images=*/256, delay);
  const std::string model_id = TrainModel(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(model_id.empty());
  const std::string before = Scrape(server_->metrics_port());

  // Four callers in lock step, like closed-loop clients: each round's calls leave together
  // once the previous round's answers are in.
  constexpr int kRounds = 12;
  constexpr int kCallers = 4;
  const double quiet_step_seconds = absl::ToDoubleSeconds(delay / 4);
  int slow_rounds = 0;  // Rounds that took as long as the quiet step: those that waited.
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::unique_ptr<AsyncCall>> calls;
    for (int i = 0; i < kCallers; ++i) {
      calls.push_back(std::make_unique<AsyncCall>());
      calls.back()->request = ImagesRequest(model_id, round * kCallers + i, 1);
    }
    const auto start = std::chrono::steady_clock::now();
    RunConcurrently(calls);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds >= quiet_step_seconds) ++slow_rounds;
    for (const auto& call : calls) ASSERT_TRUE(call->status.ok()) << call->status.error_message();
  }

  const std::string metrics = Scrape(server_->metrics_port());
  const double batches = Sample(metrics, "classifier_batcher_batch_calls_count") -
                         Sample(before, "classifier_batcher_batch_calls_count");
  const double single = Sample(metrics, R"(classifier_batcher_batch_calls_bucket{le="1"})") -
                        Sample(before, R"(classifier_batcher_batch_calls_bucket{le="1"})");
  // The calls were coalesced (so the batcher was in its waiting mode)...
  EXPECT_LT(batches, kRounds * kCallers) << metrics;
  EXPECT_LT(single, batches) << "no forward pass held more than one call\n" << metrics;
  // ...and the rounds did not wait for the delay or its quarter (a round of four one-image
  // calls takes a few milliseconds): a batch went as soon as as many calls were queued as the
  // previous batch held. Waiting for the quiet step made every round after the first slow.
  EXPECT_LT(slow_rounds, kRounds / 2)
      << slow_rounds << " of " << kRounds << " rounds took " << quiet_step_seconds << " s or more";
}

TEST_F(BatcherTest, ExpiredCallsAreDroppedWithoutBeingComputed) {
  StartBatching(/*max_images=*/256, absl::ZeroDuration());
  const std::string model_id = TrainModel(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(model_id.empty());
  const std::string before = Scrape(server_->metrics_port());

  // The batcher is paused, so the five calls wait in its queue for certain until their
  // deadlines pass (their clients then stop waiting), whatever the machine's load.
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(std::make_unique<AsyncCall>());
    calls.back()->request = ImagesRequest(model_id, i, 1);
  }
  {
    Batcher::Pause pause = server_->batcher().PauseBatches();
    constexpr auto kTimeout = std::chrono::seconds(2);
    std::thread callers([&] { RunConcurrently(calls, kTimeout); });
    const auto queued_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server_->batcher().queued_calls() < calls.size() &&
           std::chrono::steady_clock::now() < queued_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(server_->batcher().queued_calls(), calls.size());
    // The server's deadline is its own receipt time (before now) plus the timeout the client
    // sent, so it has passed by then: the clients' own deadlines pass a little earlier.
    const auto server_deadlines_passed =
        std::chrono::steady_clock::now() + kTimeout + std::chrono::milliseconds(100);
    callers.join();
    std::this_thread::sleep_until(server_deadlines_passed);
  }
  for (const auto& call : calls) {
    EXPECT_EQ(call->status.error_code(), ::grpc::StatusCode::DEADLINE_EXCEEDED);
  }

  // Resumed: the server answers them DEADLINE_EXCEEDED itself and never computes them.
  const std::string expired = R"(classifier_rpcs_total{code="DEADLINE_EXCEEDED",method="Predict"})";
  std::string metrics;
  for (int i = 0; i < 600; ++i) {
    metrics = Scrape(server_->metrics_port());
    if (Sample(metrics, expired) == 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Sample(metrics, expired), 5) << metrics;
  EXPECT_EQ(server_->batcher().queued_calls(), 0u);
  EXPECT_EQ(Sample(metrics, "classifier_batcher_batch_images_sum"),
            Sample(before, "classifier_batcher_batch_images_sum"))
      << metrics;
  EXPECT_EQ(Sample(metrics, "classifier_predict_images_total"),
            Sample(before, "classifier_predict_images_total"))
      << metrics;

  // And the paused batcher was only paused: a call now is computed.
  const std::vector<float> probabilities = AloneProbabilities(model_id, 0);
  EXPECT_NEAR(std::accumulate(probabilities.begin(), probabilities.end(), 0.0), 1.0, 1e-4);
}

TEST_F(BatcherTest, ShutdownAnswersEveryAcceptedCall) {
  StartBatching(/*max_images=*/256, absl::ZeroDuration());
  const std::string model_id = TrainModel(QuickTraining(/*epochs=*/1));
  ASSERT_FALSE(model_id.empty());

  // 20 calls wait in the paused batcher's queue: accepted, not yet computed. Then the server
  // shuts down, and the batcher resumes only once the shutdown has begun (new calls refused),
  // so the calls are for certain in flight during the drain, whatever the machine's load.
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < 20; ++i) {
    calls.push_back(std::make_unique<AsyncCall>());
    calls.back()->request = ImagesRequest(model_id, i, 1 + i % 3);
  }
  std::thread shutdown;
  {
    std::optional<Batcher::Pause> pause(server_->batcher().PauseBatches());
    std::thread callers([&] { RunConcurrently(calls); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (server_->batcher().queued_calls() < calls.size() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(server_->batcher().queued_calls(), calls.size());
    shutdown = std::thread([this] { server_->Shutdown(); });
    for (bool refused = false; !refused && std::chrono::steady_clock::now() < deadline;) {
      ::grpc::ClientContext context;
      v1::ListModelsResponse models;
      refused = !stub_->ListModels(&context, v1::ListModelsRequest(), &models).ok();
      if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pause.reset();
    callers.join();
  }
  shutdown.join();
  // Every accepted call gets its whole answer: none is dropped, cancelled or answered in part.
  for (size_t c = 0; c < calls.size(); ++c) {
    const ::grpc::Status& status = calls[c]->status;
    EXPECT_TRUE(status.ok()) << "call " << c << ": " << status.error_message();
    EXPECT_EQ(calls[c]->response.predictions_size(), calls[c]->request.images_size());
  }
  // After shutdown nothing new is accepted.
  v1::PredictResponse response;
  EXPECT_FALSE(Predict(ImagesRequest(model_id, 0, 1), &response).ok());
}

// The batcher alone: the thread that submits calls (in the server, one of gRPC's callback
// threads) never fills, computes or answers one; the batcher's own threads do.
TEST(BatcherThreadsTest, CallsAreComputedAndAnsweredOnTheBatchersThreadsNotTheCallers) {
  const Dataset data = MakeSyntheticDataset(60, 10, /*seed=*/1);
  TrainOptions options;
  options.epochs = 1;
  options.batch_size = 20;
  options.seed = 3;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  TrainingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::shared_ptr<const TrainedModel> network = *std::move(model);

  BatcherOptions batching;
  batching.threads = 2;
  Batcher batcher(batching, /*metrics=*/nullptr);
  const std::thread::id caller = std::this_thread::get_id();
  constexpr int kCalls = 30;
  std::mutex mu;
  std::condition_variable answered_cv;
  int answered = 0;
  int failed = 0;
  int on_caller = 0;  // fill or done calls made on the submitting thread.
  for (int i = 0; i < kCalls; ++i) {
    Batcher::Call call;
    call.network = network;
    call.images = 1 + i % 3;
    call.fill = [&](int64_t /*first*/, int64_t count, float* out) {
      std::fill(out, out + count * kImagePixels, 0.5f);
      std::lock_guard<std::mutex> lock(mu);
      if (std::this_thread::get_id() == caller) ++on_caller;
      return absl::OkStatus();
    };
    call.done = [&, images = call.images](absl::StatusOr<std::vector<float>> probabilities) {
      std::lock_guard<std::mutex> lock(mu);
      if (std::this_thread::get_id() == caller) ++on_caller;
      if (!probabilities.ok() || probabilities->size() != static_cast<size_t>(images * kClasses)) {
        ++failed;
      }
      ++answered;
      answered_cv.notify_all();
    };
    batcher.Submit(std::move(call));
  }
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(
      answered_cv.wait_for(lock, std::chrono::seconds(60), [&] { return answered == kCalls; }))
      << answered << " of " << kCalls << " calls answered";
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(on_caller, 0) << "the submitting thread filled or answered a call";
}

TEST_F(BatcherTest, BadBatchingSettingsAreRefusedAtStart) {
  ServerConfig config;
  config.listen_address = "127.0.0.1:0";
  config.metrics_listen = "";
  config.http_listen = "";
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/other-state";
  config.device = "cpu";
  config.batch_max_images = 0;
  absl::StatusOr<std::unique_ptr<ClassifierServer>> server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--batch_max_images"), std::string::npos)
      << server.status();
  config.batch_max_images = 64;
  config.inference_threads = 0;
  server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("--inference_threads"), std::string::npos)
      << server.status();
  config.inference_threads = 1;
  config.batch_max_delay = absl::Seconds(2);  // More than the 1 s allowed.
  server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--batch_max_delay_us"), std::string::npos)
      << server.status();
  config.batch_max_delay = absl::Milliseconds(1);
  config.batch_idle_poll = absl::Milliseconds(2);  // More than the 1 ms allowed.
  server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--batch_idle_poll_us"), std::string::npos)
      << server.status();
}

}  // namespace
}  // namespace classifier::testing
