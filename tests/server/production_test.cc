// Production behaviour of a real server on a loopback port: bearer-token auth (which RPCs it
// refuses, that health stays open, the read-only opening), Predict requests whose deadline
// passes in the inference queue, a drain under load that fails no call in flight, the cap on
// streaming calls per client, and the keepalive policy (a client pinging too often is sent away).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/batcher.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/server/metrics_scrape.h"
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
  config.http_listen = "";
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/state2";
  config.device = "cpu";
  server_.reset();
  auto server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("no-such-token"), std::string::npos);
}

// A Predict whose deadline passes while it waits in the inference queue is answered
// DEADLINE_EXCEEDED and dropped without being computed. The batcher is paused, so the call
// waits there for certain (busy work sized from a timing raced against it and lost on
// loaded machines: the small call was picked up between the busy calls' slices).
TEST_F(ProductionTest, PredictWhoseDeadlinePassesInTheQueueIsDropped) {
  TrainModel(QuickTraining(1));
  LogCapture log;
  const double computed_before =
      Sample(Scrape(server_->metrics_port()), "classifier_batcher_batch_images_count");
  {
    Batcher::Pause pause = server_->batcher().PauseBatches();
    ::grpc::Status status;
    // Long enough for the call to reach the queue on a loaded machine (checked below).
    constexpr auto kTimeout = std::chrono::seconds(3);
    std::thread late([&] {
      ::grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + kTimeout);
      v1::PredictResponse response;
      status = stub_->Predict(&context, Batch(1), &response);
    });
    bool queued = false;
    for (int i = 0; i < 3000 && !queued; ++i) {
      queued = server_->batcher().queued_calls() == 1;
      if (!queued) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // The server's deadline is its receipt time (before now) plus the timeout the client sent;
    // the client's own passes a little earlier.
    const auto server_deadline_passed =
        std::chrono::steady_clock::now() + kTimeout + std::chrono::milliseconds(100);
    late.join();  // Returns at the deadline: nothing computes while paused.
    ASSERT_TRUE(queued) << "the Predict never reached the inference queue";
    EXPECT_EQ(status.error_code(), StatusCode::DEADLINE_EXCEEDED) << status.error_message();
    std::this_thread::sleep_until(server_deadline_passed);
  }  // Resumed: the batcher finds the call expired.

  bool dropped = false;
  for (int i = 0; i < 3000 && !dropped; ++i) {
    dropped = log.Contains("dropped without being computed");
    if (!dropped) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(dropped) << "the server should log the Predict it dropped";
  EXPECT_EQ(server_->batcher().queued_calls(), 0u);
  EXPECT_EQ(Sample(Scrape(server_->metrics_port()), "classifier_batcher_batch_images_count"),
            computed_before)
      << "the expired call was computed";
}

// Four clients' Predict calls are in flight (held for certain in the paused batcher's queue)
// when the server drains: every one of them finishes OK, and calls made once the drain has
// begun are refused. No fixed sleeps: each step waits for the state the next one needs.
TEST_F(ProductionTest, DrainFailsNoPredictInFlight) {
  TrainModel(QuickTraining(1));
  const v1::PredictRequest request = Batch(2000);
  constexpr int kClients = 4;
  std::vector<::grpc::Status> in_flight(kClients);
  std::vector<std::thread> clients;
  std::thread shutdown;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  {
    std::optional<Batcher::Pause> pause(server_->batcher().PauseBatches());
    for (int i = 0; i < kClients; ++i) {
      clients.emplace_back([&, i] {
        v1::PredictResponse response;
        in_flight[i] = Predict(request, &response);
        if (in_flight[i].ok() && response.predictions_size() != request.images_size()) {
          in_flight[i] = ::grpc::Status(StatusCode::DATA_LOSS, "a partial answer");
        }
      });
    }
    while (server_->batcher().queued_calls() < kClients && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(server_->batcher().queued_calls(), static_cast<size_t>(kClients));

    // The drain begins; a call made now is refused (by our handler, or by gRPC's own
    // shutdown once it has closed the listener), never computed.
    shutdown = std::thread([this] { server_->Shutdown(); });
    ::grpc::Status late;
    for (bool refused = false; !refused && Clock::now() < deadline;) {
      ::grpc::ClientContext context;
      v1::ListModelsResponse models;
      refused = !stub_->ListModels(&context, v1::ListModelsRequest(), &models).ok();
      if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    v1::PredictResponse late_response;
    late = Predict(Batch(1), &late_response);
    EXPECT_TRUE(late.error_code() == StatusCode::UNAVAILABLE ||
                late.error_code() == StatusCode::CANCELLED)
        << "a call after the drain began: code " << late.error_code() << ": "
        << late.error_message();
    pause.reset();  // The calls in flight compute now, during the drain.
  }
  for (std::thread& client : clients) client.join();
  shutdown.join();
  for (int i = 0; i < kClients; ++i) {
    EXPECT_TRUE(in_flight[i].ok())
        << "in-flight call " << i << " failed: code " << in_flight[i].error_code() << ": "
        << in_flight[i].error_message();
  }
}

// One WatchJob stream held open: the first event has arrived, so the server accepted it.
struct OpenWatch {
  ::grpc::ClientContext context;
  std::unique_ptr<::grpc::ClientReader<v1::JobEvent>> reader;
  v1::JobEvent first;
  bool accepted = false;
};

std::unique_ptr<OpenWatch> StartWatch(v1::Classifier::Stub& stub, const std::string& job_id) {
  auto watch = std::make_unique<OpenWatch>();
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_from_sequence(1);
  watch->reader = stub.WatchJob(&watch->context, request);
  watch->accepted = watch->reader->Read(&watch->first);
  return watch;
}

// The cap counts streams per client: with --max_streams_per_client=3, a Train stream and two
// WatchJob streams fill it, the next WatchJob is RESOURCE_EXHAUSTED naming the flag (and queues
// nothing), unary calls still work, and once one stream closes a new one is accepted.
TEST_F(ProductionTest, StreamsBeyondThePerClientCapAreRefusedUntilOneCloses) {
  ServerConfig config;
  config.max_streams_per_client = 3;
  StartServer(config);

  // A long job, so that its streams stay open until the test cancels it.
  ::grpc::ClientContext train_context;
  auto train = stub_->Train(&train_context, QuickTraining(/*epochs=*/1000));
  v1::JobEvent queued;
  ASSERT_TRUE(train->Read(&queued));
  const std::string job_id = queued.job_id();
  ASSERT_FALSE(job_id.empty());

  std::vector<std::unique_ptr<OpenWatch>> watches;
  for (int i = 0; i < 2; ++i) {
    watches.push_back(StartWatch(*stub_, job_id));
    ASSERT_TRUE(watches.back()->accepted) << "stream " << i + 2 << " of 3 should be accepted";
  }

  std::unique_ptr<OpenWatch> beyond = StartWatch(*stub_, job_id);
  EXPECT_FALSE(beyond->accepted);
  const ::grpc::Status refused = beyond->reader->Finish();
  EXPECT_EQ(refused.error_code(), StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("--max_streams_per_client=3"), std::string::npos)
      << refused.error_message();
  EXPECT_NE(refused.error_message().find("127.0.0.1"), std::string::npos)
      << refused.error_message();
  std::cout << "the 4th stream was refused: " << refused.error_message() << "\n";

  // A Train beyond the cap is refused before anything is queued.
  ::grpc::Status train_refused = TrainStatus("");
  EXPECT_EQ(train_refused.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  {
    ::grpc::ClientContext context;
    v1::ListJobsResponse jobs;
    ASSERT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &jobs).ok())
        << "unary calls are not capped";
    EXPECT_EQ(jobs.jobs_size(), 1) << "the refused Train queued a job";
  }

  // Close one watcher; its place comes back once the server has finished the stream.
  watches.front()->context.TryCancel();
  EXPECT_EQ(watches.front()->reader->Finish().error_code(), StatusCode::CANCELLED);
  watches.erase(watches.begin());
  std::unique_ptr<OpenWatch> again;
  for (int attempt = 0; attempt < 100; ++attempt) {
    again = StartWatch(*stub_, job_id);
    if (again->accepted) break;
    again->reader->Finish();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(again->accepted) << "a stream should be accepted after one closed";
  EXPECT_EQ(again->first.sequence(), 1);
  watches.push_back(std::move(again));

  // Cancel the job: every stream ends with the job's final event.
  {
    ::grpc::ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job_id);
    v1::Job job;
    ASSERT_TRUE(stub_->CancelJob(&context, cancel, &job).ok());
  }
  for (auto& watch : watches) {
    v1::JobEvent event;
    while (watch->reader->Read(&event)) {
    }
    EXPECT_TRUE(watch->reader->Finish().ok());
  }
  while (train->Read(&queued)) {
  }
  EXPECT_TRUE(train->Finish().ok());
}

// With token auth, the calls that carry the valid token count as one client whatever their
// address; a read-only call without a token counts against its host instead.
TEST_F(ProductionTest, StreamsWithTheTokenCountAsOneClient) {
  ServerConfig config;
  config.auth_token_file = WriteTokenFile();
  config.auth_allow_read_only = true;
  config.max_streams_per_client = 1;
  StartServer(config);
  const std::string bearer = std::string("Bearer ") + kToken;
  auto train_context = Context(bearer);
  auto train = stub_->Train(train_context.get(), QuickTraining(/*epochs=*/1000));
  v1::JobEvent queued;
  ASSERT_TRUE(train->Read(&queued));

  auto with_token = Context(bearer);
  v1::WatchJobRequest request;
  request.set_job_id(queued.job_id());
  auto refused = stub_->WatchJob(with_token.get(), request);
  v1::JobEvent event;
  EXPECT_FALSE(refused->Read(&event));
  const ::grpc::Status status = refused->Finish();
  EXPECT_EQ(status.error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("the callers holding the bearer token"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(status.error_message().find(kToken), std::string::npos) << "the token leaked";

  std::unique_ptr<OpenWatch> anonymous = StartWatch(*stub_, queued.job_id());
  EXPECT_TRUE(anonymous->accepted) << "a tokenless read-only stream counts against the host";

  auto cancel_context = Context(bearer);
  v1::CancelJobRequest cancel;
  cancel.set_job_id(queued.job_id());
  v1::Job job;
  ASSERT_TRUE(stub_->CancelJob(cancel_context.get(), cancel, &job).ok());
  while (anonymous->reader->Read(&event)) {
  }
  EXPECT_TRUE(anonymous->reader->Finish().ok());
  while (train->Read(&event)) {
  }
  EXPECT_TRUE(train->Finish().ok());
}

// --max_concurrent_streams is HTTP/2's per-connection bound: with 2, two open streams on one
// connection make a third call on it wait (here until its deadline), while another connection
// is served at once.
TEST_F(ProductionTest, ConcurrentStreamsPerConnectionAreBounded) {
  ServerConfig config;
  config.max_concurrent_streams = 2;
  config.max_streams_per_client = 0;
  StartServer(config);
  ::grpc::ClientContext train_context;
  auto train = stub_->Train(&train_context, QuickTraining(/*epochs=*/1000));
  v1::JobEvent queued;
  ASSERT_TRUE(train->Read(&queued));
  std::unique_ptr<OpenWatch> watch = StartWatch(*stub_, queued.job_id());
  ASSERT_TRUE(watch->accepted);

  ::grpc::ClientContext waits;
  waits.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  v1::ListJobsResponse jobs;
  EXPECT_EQ(stub_->ListJobs(&waits, v1::ListJobsRequest(), &jobs).error_code(),
            StatusCode::DEADLINE_EXCEEDED)
      << "a third call on a connection with two streams open should wait";

  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  auto other = v1::Classifier::NewStub(::grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string(server_->port()), ::grpc::InsecureChannelCredentials(), args));
  ::grpc::ClientContext served;
  served.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  EXPECT_TRUE(other->ListJobs(&served, v1::ListJobsRequest(), &jobs).ok());

  {
    ::grpc::ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(queued.job_id());
    v1::Job job;
    ASSERT_TRUE(other->CancelJob(&context, cancel, &job).ok());
  }
  v1::JobEvent event;
  while (watch->reader->Read(&event)) {
  }
  EXPECT_TRUE(watch->reader->Finish().ok());
  while (train->Read(&event)) {
  }
  EXPECT_TRUE(train->Finish().ok());
}

// A channel to the server whose keepalive pings every 100 ms, with or without calls open, and
// without the client-side limits that would space its pings out.
std::shared_ptr<::grpc::Channel> EagerPingChannel(int port) {
  ::grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 100);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 10);
  // Its own connection, not one shared with the fixture's channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return ::grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                     ::grpc::InsecureChannelCredentials(), args);
}

// Connects `channel` (one ListJobs) and waits up to `wait` for it to leave READY; returns whether
// it did.
bool ConnectionDropped(const std::shared_ptr<::grpc::Channel>& channel,
                       std::chrono::milliseconds wait) {
  auto stub = v1::Classifier::NewStub(channel);
  ::grpc::ClientContext context;
  v1::ListJobsResponse jobs;
  EXPECT_TRUE(stub->ListJobs(&context, v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  const auto deadline = std::chrono::system_clock::now() + wait;
  while (channel->GetState(false) == GRPC_CHANNEL_READY) {
    if (!channel->WaitForStateChange(GRPC_CHANNEL_READY, deadline)) return false;
  }
  return true;
}

// The server's keepalive policy is what the flags say. By default (pings no closer than 10 s,
// none on an idle connection) a client pinging an idle connection every 100 ms is sent GOAWAY
// (too_many_pings) after gRPC's strikes; with --keepalive_min_ping_interval=50ms and
// --keepalive_permit_without_calls the same client keeps its connection.
TEST_F(ProductionTest, KeepalivePolicySendsAwayOnlyClientsThatPingTooOften) {
  ServerConfig strict;
  StartServer(strict);
  const Clock::time_point start = Clock::now();
  EXPECT_TRUE(ConnectionDropped(EagerPingChannel(server_->port()), std::chrono::seconds(10)))
      << "the default policy should close a connection pinged every 100 ms";
  std::cout << "connection pinged every 100 ms dropped after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()
            << " ms\n";
  {
    // The server itself goes on serving.
    ::grpc::ClientContext context;
    v1::ListJobsResponse jobs;
    EXPECT_TRUE(stub_->ListJobs(&context, v1::ListJobsRequest(), &jobs).ok());
  }

  ServerConfig lenient;
  lenient.keepalive_min_ping_interval = absl::Milliseconds(50);
  lenient.keepalive_permit_without_calls = true;
  StartServer(lenient);
  EXPECT_FALSE(ConnectionDropped(EagerPingChannel(server_->port()), std::chrono::seconds(2)))
      << "pings every 100 ms are within a 50 ms minimum interval";
}

// Out-of-range transport settings stop the start with a message naming the flag.
TEST_F(ProductionTest, BadKeepaliveOrStreamSettingsStopTheStart) {
  server_.reset();
  ServerConfig config;
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/state";
  config.listen_address = "127.0.0.1:0";
  config.metrics_listen = "";
  config.http_listen = "";
  config.device = "cpu";
  config.keepalive_timeout = absl::ZeroDuration();
  auto server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("--keepalive_timeout"), std::string::npos);

  config.keepalive_timeout = absl::Seconds(20);
  config.max_streams_per_client = -1;
  server = ClassifierServer::Start(config);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("--max_streams_per_client"), std::string::npos);
}

}  // namespace
}  // namespace classifier::testing
