// Production behaviour of a real server on a loopback port: bearer-token auth (which RPCs it
// refuses, that health stays open, the read-only opening), Predict requests whose deadline
// passes in the inference queue, and a drain under load that fails no call in flight.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/server/server_fixture.h"

namespace classifier::testing {
namespace {

using ::grpc::StatusCode;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "s3cret-Token-4711";

// Captures the server's log lines (spdlog's default logger) for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4096)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  bool Contains(const std::string& text) const {
    for (const std::string& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

class ProductionTest : public ServerFixture {
 protected:
  std::string WriteTokenFile() {
    const std::string path = dir_.path() + "/token";
    std::ofstream(path) << kToken << "\n";
    return path;
  }

  // A call context carrying `authorization: <value>` (none when empty).
  static std::unique_ptr<::grpc::ClientContext> Context(const std::string& authorization) {
    auto context = std::make_unique<::grpc::ClientContext>();
    if (!authorization.empty()) context->AddMetadata("authorization", authorization);
    return context;
  }

  ::grpc::Status ListModels(const std::string& authorization) {
    v1::ListModelsResponse response;
    return stub_->ListModels(Context(authorization).get(), v1::ListModelsRequest(), &response);
  }

  ::grpc::Status TrainStatus(const std::string& authorization) {
    auto context = Context(authorization);
    auto reader = stub_->Train(context.get(), QuickTraining(1));
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    return reader->Finish();
  }

  v1::PredictRequest Batch(int images) const {
    v1::PredictRequest request;
    for (int i = 0; i < images; ++i) *request.add_images() = RawImage(test_, i % kTestImages);
    return request;
  }
};

TEST_F(ProductionTest, TokenAuthRefusesMissingAndWrongTokensAndLeavesHealthOpen) {
  LogCapture log;
  ServerConfig config;
  config.auth_token_file = WriteTokenFile();
  StartServer(config);

  ExpectStatus(ListModels(""), StatusCode::UNAUTHENTICATED, "missing");
  ExpectStatus(ListModels("Bearer wrong-token"), StatusCode::UNAUTHENTICATED, "invalid");
  ExpectStatus(ListModels(std::string("Basic ") + kToken), StatusCode::UNAUTHENTICATED, "invalid");
  ExpectStatus(ListModels(std::string("Bearer ") + kToken + "x"), StatusCode::UNAUTHENTICATED,
               "invalid");
  ExpectStatus(TrainStatus(""), StatusCode::UNAUTHENTICATED, "missing");
  v1::PredictResponse predicted;
  ExpectStatus(stub_->Predict(Context("").get(), Batch(1), &predicted), StatusCode::UNAUTHENTICATED,
               "missing");
  EXPECT_TRUE(ListModels(std::string("Bearer ") + kToken).ok());

  // Health is another service: probes need no token.
  auto health = ::grpc::health::v1::Health::NewStub(channel_);
  ::grpc::ClientContext health_context;
  ::grpc::health::v1::HealthCheckRequest health_request;
  ::grpc::health::v1::HealthCheckResponse health_response;
  ASSERT_TRUE(health->Check(&health_context, health_request, &health_response).ok());
  EXPECT_EQ(health_response.status(), ::grpc::health::v1::HealthCheckResponse::SERVING);

  // Refusals are logged, but never with what the client sent.
  EXPECT_TRUE(log.Contains("code 16"));
  EXPECT_FALSE(log.Contains(kToken));
  EXPECT_FALSE(log.Contains("wrong-token"));
}

TEST_F(ProductionTest, ReadOnlyFlagOpensOnlyTheReadOnlyRpcs) {
  ServerConfig config;
  config.auth_token_file = WriteTokenFile();
  config.auth_allow_read_only = true;
  StartServer(config);

  EXPECT_TRUE(ListModels("").ok());
  v1::ListJobsResponse jobs;
  EXPECT_TRUE(stub_->ListJobs(Context("").get(), v1::ListJobsRequest(), &jobs).ok());
  // Predict is let through to the service, which answers that there is no model yet.
  v1::PredictResponse predicted;
  ExpectStatus(stub_->Predict(Context("").get(), Batch(1), &predicted),
               StatusCode::FAILED_PRECONDITION, "");
  // Writes still need the token.
  ExpectStatus(TrainStatus(""), StatusCode::UNAUTHENTICATED, "missing");
  v1::DeployModelRequest deploy;
  deploy.set_model_id("model-x");
  v1::Model model;
  ExpectStatus(stub_->DeployModel(Context("").get(), deploy, &model), StatusCode::UNAUTHENTICATED,
               "missing");
  v1::CancelJobRequest cancel;
  cancel.set_job_id("job-x");
  v1::Job job;
  ExpectStatus(stub_->CancelJob(Context("Bearer nope").get(), cancel, &job),
               StatusCode::UNAUTHENTICATED, "invalid");
  // With the token they reach the service (which does not know the job).
  ExpectStatus(stub_->CancelJob(Context(std::string("Bearer ") + kToken).get(), cancel, &job),
               StatusCode::NOT_FOUND, "job-x");
}

TEST_F(ProductionTest, UnreadableTokenFileStopsTheStart) {
  ServerConfig config;
  config.auth_token_file = dir_.path() + "/no-such-token";
  config.listen_address = "127.0.0.1:0";
  config.metrics_listen = "";
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/state2";
  config.device = "cpu";
  server_.reset();
  auto server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("no-such-token"), std::string::npos);
}

// One inference thread, kept busy by big batches: a Predict queued behind them with a short
// deadline is answered DEADLINE_EXCEEDED and dropped without being computed.
TEST_F(ProductionTest, PredictWhoseDeadlinePassesInTheQueueIsDropped) {
  ServerConfig config;
  config.inference_threads = 1;
  StartServer(config);
  TrainModel(QuickTraining(1));
  LogCapture log;

  // Size the busy work from one measured batch: at least two seconds of queue.
  const v1::PredictRequest big = Batch(5000);
  v1::PredictResponse response;
  const auto start = Clock::now();
  ASSERT_TRUE(Predict(big, &response).ok());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const int busy_calls = std::max(4, static_cast<int>(2.0 / std::max(seconds, 0.01)) + 1);

  std::vector<std::thread> busy;
  std::atomic<int> busy_ok{0};
  for (int i = 0; i < busy_calls; ++i) {
    busy.emplace_back([&] {
      v1::PredictResponse r;
      if (Predict(big, &r).ok()) busy_ok.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // Let them reach the queue.

  ::grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  v1::PredictResponse late;
  ::grpc::Status status = stub_->Predict(&context, Batch(1), &late);
  EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  for (std::thread& t : busy) t.join();
  EXPECT_EQ(busy_ok.load(), busy_calls);

  bool dropped = false;
  for (int i = 0; i < 500 && !dropped; ++i) {
    dropped = log.Contains("dropped without being computed");
    if (!dropped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(dropped) << "the server should log the Predict it dropped";
}

// Four clients call Predict in a loop while the server drains: every call the server admitted
// finishes OK, later ones get UNAVAILABLE, and nothing else happens.
TEST_F(ProductionTest, DrainFailsNoPredictInFlight) {
  TrainModel(QuickTraining(1));
  const v1::PredictRequest request = Batch(2000);

  struct Call {
    Clock::time_point start, end;
    ::grpc::Status status;
  };
  std::mutex mu;
  std::vector<Call> calls;
  std::atomic<bool> stop{false};
  std::atomic<int> in_flight{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop.load()) {
        Call call;
        call.start = Clock::now();
        in_flight.fetch_add(1);
        v1::PredictResponse response;
        call.status = Predict(request, &response);
        in_flight.fetch_sub(1);
        call.end = Clock::now();
        {
          std::lock_guard<std::mutex> lock(mu);
          calls.push_back(call);
        }
        if (!call.status.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const Clock::time_point drain_begin = Clock::now();
  const int in_flight_at_drain = in_flight.load();
  server_->Shutdown();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop.store(true);
  for (std::thread& t : clients) t.join();

  int in_flight_ok = 0, in_flight_failed = 0, ok = 0, unavailable = 0, other = 0;
  for (const Call& call : calls) {
    const StatusCode code = call.status.error_code();
    if (code == StatusCode::OK) {
      ++ok;
    } else if (code == StatusCode::UNAVAILABLE) {
      ++unavailable;
    } else {
      ++other;
      ADD_FAILURE() << "code " << code << ": " << call.status.error_message();
    }
    if (call.start < drain_begin && call.end > drain_begin) {
      // Refused at the door just as the drain began: it never started on the server.
      const bool refused_at_start =
          code == StatusCode::UNAVAILABLE &&
          call.status.error_message().find("shutting down") != std::string::npos;
      if (code == StatusCode::OK) {
        ++in_flight_ok;
      } else if (!refused_at_start) {
        ++in_flight_failed;
        ADD_FAILURE() << "in-flight call failed: code " << code << ": "
                      << call.status.error_message();
      }
    }
  }
  std::cout << "drain: " << in_flight_at_drain << " Predict calls in flight when the drain began, "
            << in_flight_ok << " of them completed OK, " << in_flight_failed << " failed; " << ok
            << " OK and " << unavailable << " UNAVAILABLE calls in all\n";
  RecordProperty("in_flight_at_drain", in_flight_at_drain);
  RecordProperty("in_flight_failed", in_flight_failed);
  EXPECT_GE(in_flight_ok, 1) << "the drain should have found calls in flight";
  EXPECT_EQ(in_flight_failed, 0);
  EXPECT_EQ(other, 0);
  EXPECT_GE(unavailable, 1) << "calls after the drain should be refused";
}

}  // namespace
}  // namespace classifier::testing
