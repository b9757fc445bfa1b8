// The dashboard's HTTP server on a real ClassifierServer: the event streams' limit and their end
// at shutdown, with cpp-httplib's own client. The page and the rest of the JSON API are
// tests/e2e/dashboard_e2e_test.sh's (a real browser and curl).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/mutex.h"
#include "server/server.h"
#include "tests/server/server_fixture.h"

namespace classifier {
namespace {

constexpr auto kDeadline = std::chrono::seconds(120);

// One event stream read on a thread of its own, its bytes kept as they come.
class EventStreamReader {
 public:
  EventStreamReader(int port, const std::string& path) {
    done_ = std::async(std::launch::async, [this, port, path] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(std::chrono::minutes(5));
      httplib::Result result = client.Get(path, [this](const char* data, size_t length) {
        MutexLock lock(&mu_);
        body_.append(data, length);
        return true;
      });
      MutexLock lock(&mu_);
      status_ = result ? result->status : -1;
    });
  }

  std::string body() {
    MutexLock lock(&mu_);
    return body_;
  }
  int status() {
    MutexLock lock(&mu_);
    return status_;
  }
  // Waits until the body holds `text`; false at the deadline.
  bool WaitFor(const std::string& text) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (std::chrono::steady_clock::now() < deadline) {
      if (absl::StrContains(body(), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Waits until the stream has ended; false at the deadline.
  bool WaitForEnd() { return done_.wait_for(kDeadline) == std::future_status::ready; }

 private:
  Mutex mu_;
  std::string body_ ABSL_GUARDED_BY(mu_);
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::future<void> done_;
};

class WebServerTest : public testing::ServerFixture {
 protected:
  void SetUp() override {
    testing::ServerFixture::SetUp();
    ServerConfig config;
    config.http_listen = "127.0.0.1:0";
    StartServer(config);
    ASSERT_GT(server_->http_port(), 0);
  }

  // A job that runs until cancelled; returns its id once it runs.
  std::string StartEndlessJob() {
    v1::TrainRequest slow = QuickTraining(/*epochs=*/1000);
    slow.set_batch_size(1);
    train_context_ = std::make_unique<::grpc::ClientContext>();
    train_ = stub_->Train(train_context_.get(), slow);
    v1::JobEvent event;
    EXPECT_TRUE(train_->Read(&event));
    EXPECT_EQ(WaitForJobState(event.job_id(), v1::JOB_STATE_RUNNING), v1::JOB_STATE_RUNNING);
    return event.job_id();
  }

  void Cancel(const std::string& job_id) {
    ::grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    ASSERT_TRUE(stub_->CancelJob(&context, request, &job).ok());
  }

  std::unique_ptr<::grpc::ClientContext> train_context_;
  std::unique_ptr<::grpc::ClientReader<v1::JobEvent>> train_;
};

TEST_F(WebServerTest, EventStreamsBeyondTheLimitAreRefusedAndTheOpenOnesEndWithTheJob) {
  const std::string job_id = StartEndlessJob();
  const std::string path = absl::StrCat("/api/v1/jobs/", job_id, "/events");
  // The web server's default limit (WebServerOptions::max_event_streams).
  constexpr int kLimit = 8;
  std::vector<std::unique_ptr<EventStreamReader>> open;
  for (int i = 0; i < kLimit; ++i) {
    open.push_back(std::make_unique<EventStreamReader>(server_->http_port(), path));
    // Each has replayed the job's first events: it is counted.
    ASSERT_TRUE(open.back()->WaitFor("\"started\"")) << i << ": " << open.back()->body();
  }

  httplib::Client client("127.0.0.1", server_->http_port());
  httplib::Result refused = client.Get(path);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_TRUE(absl::StrContains(refused->body, "RESOURCE_EXHAUSTED")) << refused->body;
  EXPECT_TRUE(absl::StrContains(refused->body, "8 event streams are open")) << refused->body;
  // The rest of the API is still served.
  httplib::Result job = client.Get(absl::StrCat("/api/v1/jobs/", job_id));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, 200);

  Cancel(job_id);
  for (auto& reader : open) {
    ASSERT_TRUE(reader->WaitForEnd());
    EXPECT_EQ(reader->status(), 200);
    const std::string body = reader->body();
    EXPECT_TRUE(absl::StrContains(body, "JOB_STATE_CANCELLED")) << body;
    EXPECT_TRUE(absl::EndsWith(body, "event: end\ndata: {}\n\n")) << body;
  }
  // Their slots are free again: a new stream is served (and replays to the end).
  EventStreamReader again(server_->http_port(), path);
  ASSERT_TRUE(again.WaitForEnd());
  EXPECT_EQ(again.status(), 200);
  EXPECT_TRUE(absl::StrContains(again.body(), "id: 1\n")) << again.body();
}

TEST_F(WebServerTest, ShutdownEndsAnOpenEventStreamInsteadOfWaitingForIt) {
  const std::string job_id = StartEndlessJob();
  EventStreamReader reader(server_->http_port(),
                           absl::StrCat("/api/v1/jobs/", job_id, "/events?from_sequence=2"));
  ASSERT_TRUE(reader.WaitFor("\"started\"")) << reader.body();
  EXPECT_FALSE(absl::StrContains(reader.body(), "\"queued\"")) << "from_sequence=2 replays from 2";

  auto shutdown = std::async(std::launch::async, [this] { server_->Shutdown(); });
  ASSERT_EQ(shutdown.wait_for(kDeadline), std::future_status::ready);
  ASSERT_TRUE(reader.WaitForEnd());
  const std::string body = reader.body();
  // Cut with an error event that says to come back (the job resumes after a restart): never a
  // stream left hanging, never a shutdown waiting on one.
  EXPECT_TRUE(absl::StrContains(body,
                                "event: error\ndata: {\"error\":{\"code\":503,"
                                "\"status\":\"UNAVAILABLE\""))
      << body;
  // Ours (the web server stopped first) or the server's (the job's watch ended first).
  EXPECT_TRUE(absl::StrContains(body, "reconnect") || absl::StrContains(body, "from_sequence"))
      << body;
  // Nothing serves on the port any more.
  httplib::Client client("127.0.0.1", server_->http_port());
  client.set_connection_timeout(std::chrono::seconds(5));
  EXPECT_FALSE(client.Get("/api/v1/jobs"));
}

TEST_F(WebServerTest, ABadOrTakenHttpListenAddressStopsTheStartNamingTheFlag) {
  ServerConfig config;
  config.listen_address = "127.0.0.1:0";
  config.metrics_listen = "";
  config.data_dir = dir_.path() + "/data";
  config.state_dir = dir_.path() + "/other-state";
  config.device = "cpu";
  for (const char* address : {"no-port", "127.0.0.1:http", "127.0.0.1:70000", ":8080"}) {
    config.http_listen = address;
    absl::StatusOr<std::unique_ptr<ClassifierServer>> refused = ClassifierServer::Start(config);
    ASSERT_FALSE(refused.ok()) << address;
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "--http_listen")) << refused.status();
  }
  // The running fixture server's dashboard port is taken.
  config.http_listen = absl::StrCat("127.0.0.1:", server_->http_port());
  absl::StatusOr<std::unique_ptr<ClassifierServer>> refused = ClassifierServer::Start(config);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "--http_listen")) << refused.status();
}

}  // namespace
}  // namespace classifier
