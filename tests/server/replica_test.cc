// Two replicas on one PostgreSQL store, each with its own state directory (no shared file
// system), both real servers on loopback: a model trained on one lists, predicts and exports
// on the other (its weights come from the store), and a deploy on one reaches the other, with no
// failed Predict while it switches. Jobs: one replica's job is watched, listed and cancelled on
// the other; a replica killed with SIGKILL (the real binary, in a process of its own) loses its
// job to the other, which resumes it from its last checkpoint while a watcher sees every event.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/file_util.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "client/channel.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/metrics_scrape.h"
#include "tests/server/server_fixture.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::grpc::ClientContext;

struct Replica {
  std::unique_ptr<ClassifierServer> server;
  std::unique_ptr<v1::Classifier::Stub> stub;
};

// A real PostgreSQL and the data every replica reads; each replica keeps a state directory of
// its own (no shared disk).
class SharedStoreTest : public ::testing::Test {
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
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::PostgresServer> postgres_;
  Dataset test_;
};

class ReplicaTest : public SharedStoreTest {
 protected:
  void SetUp() override {
    SharedStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    a_ = StartReplica("a");
    b_ = StartReplica("b");
  }

  Replica StartReplica(const std::string& name, absl::Duration job_lease = absl::Seconds(10)) {
    ServerConfig config;
    config.job_lease = job_lease;
    config.listen_address = "127.0.0.1:0";
    config.data_dir = dir_.path() + "/data";
    config.fashion_fallback_dir = dir_.path() + "/no-fashion";
    config.state_dir = dir_.path() + "/state-" + name;  // Its own disk, as on another host.
    config.store = postgres_->uri();
    config.metrics_listen = "127.0.0.1:0";
    config.http_listen = "";
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

  Replica a_, b_;
};

TEST_F(ReplicaTest, AModelTrainedOnOneReplicaServesOnTheOtherWithoutASharedDisk) {
  const std::string model_id = Train(a_, /*epochs=*/1);
  ASSERT_FALSE(model_id.empty());
  // B counts it among the models registered (its metric counts the store's, every replica's).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (testing::Sample(testing::Scrape(b_.server->metrics_port()),
                         "classifier_models_registered") != 1 &&
         absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(
      testing::Sample(testing::Scrape(b_.server->metrics_port()), "classifier_models_registered"),
      1);

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

// Reads a stream to its end on a thread of its own, keeping every event.
class StreamCollector {
 public:
  StreamCollector(v1::Classifier::Stub* stub, const std::string& job_id) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_from_sequence(1);
    reader_ = stub->WatchJob(&context_, request);
    thread_ = std::thread([this] {
      v1::JobEvent event;
      while (reader_->Read(&event)) {
        std::lock_guard<std::mutex> lock(mu_);
        events_.push_back(event);
      }
      status_ = reader_->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    });
  }
  ~StreamCollector() {
    context_.TryCancel();
    thread_.join();
  }
  // Waits (a generous deadline) until an event satisfies `wanted`; false when none did.
  bool WaitFor(const std::function<bool(const v1::JobEvent&)>& wanted,
               std::chrono::seconds timeout = std::chrono::seconds(120)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const v1::JobEvent& event : events_) {
          if (wanted(event)) return true;
        }
        if (done_) return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Waits for the stream's end; its status.
  ::grpc::Status Finish() {
    thread_.join();
    thread_ = std::thread([] {});
    return status_;
  }
  std::vector<v1::JobEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  ClientContext context_;
  std::unique_ptr<::grpc::ClientReader<v1::JobEvent>> reader_;
  std::mutex mu_;
  std::vector<v1::JobEvent> events_;
  bool done_ = false;
  ::grpc::Status status_;
  std::thread thread_;
};

// Submits a job and leaves it running (as `classifier-cli train --detach` does): its id.
std::string SubmitDetached(v1::Classifier::Stub* stub, const v1::TrainRequest& request) {
  ClientContext context;
  auto reader = stub->Train(&context, request);
  v1::JobEvent event;
  if (!reader->Read(&event)) {
    ADD_FAILURE() << "Train ended without a first event: " << reader->Finish().error_message();
    return "";
  }
  const std::string job_id = event.job_id();
  context.TryCancel();  // Closing the stream does not stop the job.
  while (reader->Read(&event)) {
  }
  (void)reader->Finish();
  return job_id;
}

// The checks every handed-over job passes, on the events a watcher saw: one gap-free log, one
// `resumed` event where the last checkpoint before it was saved, every epoch, success.
void ExpectOneRunResumedOnce(const std::vector<v1::JobEvent>& events, int epochs) {
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().finished().state(), v1::JOB_STATE_SUCCEEDED)
      << events.back().finished().error();
  v1::JobEvent::CheckpointSaved last_checkpoint;
  int resumes = 0;
  std::set<int> epochs_ended;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i) + 1) << "no gap, nothing twice";
    if (events[i].has_resumed()) {
      ++resumes;
      EXPECT_EQ(events[i].resumed().epoch(), last_checkpoint.epoch());
      EXPECT_EQ(events[i].resumed().batch(), last_checkpoint.batch())
          << "from the last checkpoint saved";
    }
    if (events[i].has_checkpoint_saved()) last_checkpoint = events[i].checkpoint_saved();
    if (events[i].has_epoch_end()) epochs_ended.insert(events[i].epoch_end().epoch());
  }
  EXPECT_EQ(resumes, 1);
  std::set<int> all;
  for (int epoch = 1; epoch <= epochs; ++epoch) all.insert(epoch);
  EXPECT_EQ(epochs_ended, all) << "every epoch ran";
}

TEST_F(ReplicaTest, AJobOnOneReplicaIsWatchedListedAndCancelledOnTheOther) {
  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/50);
  request.set_batch_size(2);  // 300 steps an epoch: it runs until cancelled.
  const std::string job_id = SubmitDetached(a_.stub.get(), request);
  ASSERT_FALSE(job_id.empty());

  // B watches A's job live: it sees A's first epoch end, as A does.
  StreamCollector on_b(b_.stub.get(), job_id);
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_epoch_end(); }))
      << "B's watcher never saw an epoch of A's job";
  {
    ClientContext context;
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    v1::Job job;
    ASSERT_TRUE(b_.stub->GetJob(&context, get, &job).ok());
    EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING) << "running, on A";
    ClientContext list_context;
    v1::ListJobsResponse listed;
    ASSERT_TRUE(b_.stub->ListJobs(&list_context, v1::ListJobsRequest(), &listed).ok());
    ASSERT_EQ(listed.jobs_size(), 1);
    EXPECT_EQ(listed.jobs(0).job_id(), job_id);
  }
  // Cancelled on B, it stops on A.
  {
    ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job_id);
    v1::Job job;
    const ::grpc::Status status = b_.stub->CancelJob(&context, cancel, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); }))
      << "the cancel never reached A";
  ASSERT_TRUE(on_b.Finish().ok());
  const std::vector<v1::JobEvent> seen_on_b = on_b.events();
  ASSERT_FALSE(seen_on_b.empty());
  EXPECT_EQ(seen_on_b.back().finished().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_THAT(seen_on_b.back().finished().error(), ::testing::HasSubstr("cancelled by request"));

  // What B's watcher saw is A's log, event for event.
  StreamCollector on_a(a_.stub.get(), job_id);
  ASSERT_TRUE(on_a.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); }));
  ASSERT_TRUE(on_a.Finish().ok());
  const std::vector<v1::JobEvent> seen_on_a = on_a.events();
  ASSERT_EQ(seen_on_a.size(), seen_on_b.size());
  for (size_t i = 0; i < seen_on_a.size(); ++i) {
    EXPECT_EQ(seen_on_b[i].sequence(), static_cast<int64_t>(i) + 1);
    EXPECT_EQ(seen_on_b[i].SerializeAsString(), seen_on_a[i].SerializeAsString()) << i;
  }
}

TEST_F(ReplicaTest, AJobWhoseReplicaIsKilledResumesOnAnotherFromItsLastCheckpoint) {
  // A is the real binary, in a process of its own, with a short lease; B (in this process)
  // renews and claims as often.
  const absl::Duration lease = absl::Seconds(2);
  b_.server.reset();
  b_ = StartReplica("b", lease);
  ASSERT_NE(b_.server, nullptr);
  absl::StatusOr<testing::ServerProcess> a = testing::ServerProcess::Start(
      CLASSIFIER_SERVER_BINARY,  // tests/server/CMakeLists.txt
      {"--data_dir", dir_.path() + "/data", "--fashion_fallback_dir", dir_.path() + "/no-fashion",
       "--state_dir", dir_.path() + "/state-killed", "--store", postgres_->uri(), "--device", "cpu",
       "--threads", "1", "--job_lease", "2s"},
      dir_.path() + "/killed.log");
  ASSERT_TRUE(a.ok()) << a.status();
  auto a_stub = v1::Classifier::NewStub(::grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(a->port), ::grpc::InsecureChannelCredentials()));

  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/6);
  request.set_batch_size(1);  // 600 steps an epoch: A is killed mid-job.
  const std::string job_id = SubmitDetached(a_stub.get(), request);
  ASSERT_FALSE(job_id.empty());
  StreamCollector on_b(b_.stub.get(), job_id);
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) {
    return event.has_checkpoint_saved() && event.checkpoint_saved().epoch() >= 1;
  })) << "A never checkpointed an epoch";
  a->process->Stop(SIGKILL);

  // B takes the job over once A's lease runs out, and finishes it; its watcher, attached to B
  // all along, sees one gap-free log.
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); }))
      << "nobody took the job over";
  ASSERT_TRUE(on_b.Finish().ok());
  const std::vector<v1::JobEvent> events = on_b.events();
  ExpectOneRunResumedOnce(events, 6);
  int resumed_at = 0;
  for (const v1::JobEvent& event : events) {
    if (event.has_resumed()) resumed_at = event.resumed().epoch();
  }
  EXPECT_GE(resumed_at, 1) << "no complete epoch lost";

  ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(b_.stub->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1) << "one model: the job ran to its end once";
  EXPECT_EQ(models.models(0).job_id(), job_id);
}

TEST_F(ReplicaTest, AReplicaThatStopsHandsItsJobOverAtOnce) {
  // A's lease would outlast the test: only A giving it up lets B take the job.
  a_.server.reset();
  a_ = StartReplica("a", absl::Hours(1));
  ASSERT_NE(a_.server, nullptr);
  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/6);
  request.set_batch_size(1);  // 600 steps an epoch: A stops mid-job.
  request.set_progress_reports_per_epoch(20);
  const std::string job_id = SubmitDetached(a_.stub.get(), request);
  ASSERT_FALSE(job_id.empty());
  StreamCollector on_b(b_.stub.get(), job_id);
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_progress(); }));
  a_.server.reset();  // Drains: the job checkpoints where it is, and A gives it up.

  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); }))
      << "B never took the job over";
  ASSERT_TRUE(on_b.Finish().ok());
  ExpectOneRunResumedOnce(on_b.events(), 6);
}

TEST_F(ReplicaTest, AReplicaThatLostItsLeaseStopsAndTheJobRunsOnOnce) {
  const absl::Duration lease = absl::Seconds(2);
  a_.server.reset();
  b_.server.reset();
  a_ = StartReplica("a", lease);
  b_ = StartReplica("b", lease);
  ASSERT_NE(a_.server, nullptr);
  ASSERT_NE(b_.server, nullptr);
  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/6);
  request.set_batch_size(1);  // 600 steps an epoch: the lease is lost mid-job.
  const std::string job_id = SubmitDetached(a_.stub.get(), request);
  ASSERT_FALSE(job_id.empty());
  StreamCollector on_b(b_.stub.get(), job_id);
  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) {
    return event.has_checkpoint_saved() && event.checkpoint_saved().epoch() >= 1;
  }));
  // As if A had stalled past its lease and a replica since gone had claimed the job: A must
  // stop writing at once (fenced), and the job must run on, once, wherever it is claimed next.
  ASSERT_TRUE(
      postgres_->Psql("UPDATE jobs SET owner = 'replica-gone', lease_until_unix_ns = 0 "
                      "WHERE job_id = '" +
                      job_id + "'"));

  ASSERT_TRUE(on_b.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); }))
      << "nobody took the job over";
  ASSERT_TRUE(on_b.Finish().ok());
  ExpectOneRunResumedOnce(on_b.events(), 6);
  ClientContext list_context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(b_.stub->ListModels(&list_context, v1::ListModelsRequest(), &models).ok());
  EXPECT_EQ(models.models_size(), 1) << "one model: the job ended once";
}

// Three replicas, each the real binary in a process of its own, behind HAProxy (Debian's
// package, on loopback ports), as the Compose stack runs them (docker/haproxy.cfg).
class LoadBalancedReplicasTest : public SharedStoreTest {
 public:
  // A channel with the retry policy of the CLI (and the README) for the idempotent RPCs.
  static std::shared_ptr<::grpc::Channel> Channel(int port) {
    ::grpc::ChannelArguments arguments;
    arguments.SetServiceConfigJSON(cli::RetryingServiceConfig());
    return ::grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                       ::grpc::InsecureChannelCredentials(), arguments);
  }

 protected:
  static constexpr int kReplicas = 3;

  void SetUp() override {
    if (!std::filesystem::exists(kHaproxy)) {
      GTEST_SKIP() << kHaproxy << " is not installed (scripts/install-deps.sh installs haproxy)";
    }
    SharedStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (int i = 0; i < kReplicas; ++i) {
      ports_[i] = testing::FreeLoopbackPort();
      agent_ports_[i] = testing::FreeLoopbackPort();
      ASSERT_TRUE(StartReplica(i)) << "replica " << i;
    }
    balancer_port_ = testing::FreeLoopbackPort();
    std::string config = absl::StrCat(
        "global\n  maxconn 4096\n"
        "defaults\n  mode http\n  timeout connect 1s\n  timeout client 1h\n"
        "  timeout server 1h\n  retries 3\n  option redispatch 1\n"
        "frontend classifier\n  bind 127.0.0.1:",
        balancer_port_, " proto h2\n",
        "  default_backend replicas\n"
        "backend replicas\n  balance ",
        balance_, "\n  retry-on conn-failure\n");
    for (int i = 0; i < kReplicas; ++i) {
      absl::StrAppend(&config, "  server r", i, " 127.0.0.1:", ports_[i],
                      " proto h2 check inter 300ms fall 1 rise 2 agent-check agent-port ",
                      agent_ports_[i], " agent-inter 200ms\n");
    }
    ASSERT_TRUE(WriteFileAtomically(dir_.path() + "/haproxy.cfg", config).ok());
    absl::StatusOr<std::unique_ptr<testing::ChildProcess>> balancer = testing::ChildProcess::Start(
        {kHaproxy, "-db", "-f", dir_.path() + "/haproxy.cfg"}, dir_.path() + "/haproxy.log");
    ASSERT_TRUE(balancer.ok()) << balancer.status();
    balancer_ = *std::move(balancer);
    balanced_ = v1::Classifier::NewStub(Channel(balancer_port_));
    // Up once a call goes through.
    const absl::Time deadline = absl::Now() + absl::Minutes(1);
    for (;;) {
      ClientContext context;
      v1::ListModelsResponse models;
      if (balanced_->ListModels(&context, v1::ListModelsRequest(), &models).ok()) break;
      ASSERT_LT(absl::Now(), deadline) << balancer_->Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  bool StartReplica(int i) {
    absl::StatusOr<testing::ServerProcess> server = testing::ServerProcess::Start(
        CLASSIFIER_SERVER_BINARY,  // tests/server/CMakeLists.txt
        {"--data_dir", dir_.path() + "/data", "--fashion_fallback_dir", dir_.path() + "/no-fashion",
         "--state_dir", absl::StrCat(dir_.path(), "/state-", i), "--store", postgres_->uri(),
         "--device", "cpu", "--threads", "1", "--job_lease", "2s", "--lb_agent_listen",
         absl::StrCat("127.0.0.1:", agent_ports_[i]), "--drain_notice", "1s"},
        absl::StrCat(dir_.path(), "/replica-", i, "-", ++starts_, ".log"), ports_[i]);
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return false;
    replicas_[i] = *std::move(server);
    return true;
  }

  std::string TrainThroughBalancer(int epochs) {
    ClientContext context;
    auto reader = balanced_->Train(&context, testing::ServerFixture::QuickTraining(epochs));
    v1::JobEvent event, last;
    while (reader->Read(&event)) last = event;
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(last.finished().state(), v1::JOB_STATE_SUCCEEDED) << last.finished().error();
    return last.finished().model_id();
  }

  static constexpr char kHaproxy[] = "/usr/sbin/haproxy";

  // HAProxy's balancing algorithm.
  std::string balance_ = "roundrobin";
  int ports_[kReplicas] = {};
  int agent_ports_[kReplicas] = {};
  int starts_ = 0;
  testing::ServerProcess replicas_[kReplicas];
  int balancer_port_ = 0;
  std::unique_ptr<testing::ChildProcess> balancer_;
  std::unique_ptr<v1::Classifier::Stub> balanced_;
};

// Callers of Predict, each on a connection of its own, until stopped (or destroyed).
class PredictCallers {
 public:
  // `retry`: with the CLI's retry policy (else one attempt a call).
  PredictCallers(int callers, int port, const v1::PredictRequest& request, bool retry) {
    for (int c = 0; c < callers; ++c) {
      threads_.emplace_back([this, port, request, retry] {
        auto stub = v1::Classifier::NewStub(
            retry ? LoadBalancedReplicasTest::Channel(port)
                  : ::grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                          ::grpc::InsecureChannelCredentials()));
        while (!stop_.load()) {
          ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::PredictResponse response;
          const ::grpc::Status status = stub->Predict(&context, request, &response);
          calls_.fetch_add(1);
          if (!status.ok()) {
            std::lock_guard<std::mutex> lock(mu_);
            failures_.push_back(absl::StrCat(status.error_code(), " ", status.error_message()));
          }
        }
      });
    }
  }
  ~PredictCallers() { Stop(); }
  // Stops and joins them; every failed call's code and message.
  std::vector<std::string> Stop() {
    stop_.store(true);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  int64_t calls() const { return calls_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> calls_{0};
  std::mutex mu_;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

TEST_F(LoadBalancedReplicasTest, SixtyFourCallersSeeNoFailureThroughAKillARestartAndADeploy) {
  const std::string older = TrainThroughBalancer(1);
  const std::string newer = TrainThroughBalancer(1);
  ASSERT_FALSE(older.empty());
  ASSERT_FALSE(newer.empty());

  // A job on the replica that will be killed.
  auto doomed = v1::Classifier::NewStub(Channel(ports_[0]));
  v1::TrainRequest request = testing::ServerFixture::QuickTraining(/*epochs=*/3);
  request.set_batch_size(1);  // 600 steps an epoch: it runs through the kill.
  const std::string job_id = SubmitDetached(doomed.get(), request);
  ASSERT_FALSE(job_id.empty());
  // Watched on a replica that survives (a stream through the balancer may land on the doomed
  // one, and would have to be opened again with from_sequence).
  auto survivor = v1::Classifier::NewStub(Channel(ports_[1]));
  StreamCollector watcher(survivor.get(), job_id);

  // 64 callers, each on a connection of its own to the balancer, one image a call.
  v1::PredictRequest predict;
  predict.add_images()->set_raw_pixels(
      std::string(reinterpret_cast<const char*>(test_.pixels.data()), test_.image_size()));
  PredictCallers callers(64, balancer_port_, predict, /*retry=*/true);
  const absl::Time started = absl::Now();

  ASSERT_TRUE(watcher.WaitFor([](const v1::JobEvent& event) {
    return event.has_checkpoint_saved() && event.checkpoint_saved().epoch() >= 1;
  })) << "the job never checkpointed an epoch";
  replicas_[0].process->Stop(SIGKILL);
  // Back once another replica has taken the job over.
  ASSERT_TRUE(watcher.WaitFor([](const v1::JobEvent& event) { return event.has_resumed(); }))
      << "nobody took the job over";
  ASSERT_TRUE(StartReplica(0));
  {
    ClientContext context;
    v1::DeployModelRequest deploy;
    deploy.set_model_id(older);
    v1::Model deployed;
    const ::grpc::Status status = balanced_->DeployModel(&context, deploy, &deployed);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  // Generous: 64 callers share the cores with the job's batch-1 steps, and a sanitizer build
  // takes minutes for its two epochs left.
  ASSERT_TRUE(watcher.WaitFor([](const v1::JobEvent& event) { return event.has_finished(); },
                              std::chrono::seconds(900)))
      << "the job never finished";
  // 30 s of load at least, the kill, the restart and the deploy inside it.
  while (absl::Now() - started < absl::Seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::vector<std::string> failures = callers.Stop();
  std::cout << callers.calls() << " Predict calls through the balancer in "
            << absl::FormatDuration(absl::Now() - started) << ", " << failures.size()
            << " failed\n";
  EXPECT_GT(callers.calls(), 0);
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << callers.calls()
                                << " calls failed, the first: " << failures.front();
  ASSERT_TRUE(watcher.Finish().ok());
  ExpectOneRunResumedOnce(watcher.events(), 3);

  // Every replica, asked directly, lists the same models and the same jobs.
  auto listing = [](v1::Classifier::Stub* stub) {
    std::set<std::string> ids;
    ClientContext models_context;
    v1::ListModelsResponse models;
    if (stub->ListModels(&models_context, v1::ListModelsRequest(), &models).ok()) {
      for (const v1::Model& model : models.models()) ids.insert(model.model_id());
    }
    ClientContext jobs_context;
    v1::ListJobsResponse jobs;
    if (stub->ListJobs(&jobs_context, v1::ListJobsRequest(), &jobs).ok()) {
      for (const v1::Job& job : jobs.jobs()) {
        ids.insert(absl::StrCat(job.job_id(), " ", v1::JobState_Name(job.state())));
      }
    }
    return ids;
  };
  const std::set<std::string> expected = listing(balanced_.get());
  EXPECT_EQ(expected.size(), 3u + 3u) << "three models, three jobs";
  for (int i = 0; i < kReplicas; ++i) {
    auto stub = v1::Classifier::NewStub(Channel(ports_[i]));
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    std::set<std::string> seen = listing(stub.get());
    while (seen != expected && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      seen = listing(stub.get());
    }
    EXPECT_EQ(seen, expected) << "replica " << i;
  }
}

TEST_F(LoadBalancedReplicasTest, ADrainingReplicaIsLeftBeforeItRefusesACall) {
  ASSERT_FALSE(TrainThroughBalancer(1).empty());
  v1::PredictRequest predict;
  predict.add_images()->set_raw_pixels(
      std::string(reinterpret_cast<const char*>(test_.pixels.data()), test_.image_size()));
  // No retries: every call refused by the draining replica would show.
  PredictCallers callers(64, balancer_port_, predict, /*retry=*/false);
  const int64_t before = callers.calls();
  while (callers.calls() < before + 1000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // SIGTERM: NOT_SERVING at once (the agent says "drain"), calls still taken for 1 s, then
  // refused; HAProxy, asking every 200 ms, has stopped sending by then.
  const int status = replicas_[1].process->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "drained and exited 0";
  const int64_t at_exit = callers.calls();
  while (callers.calls() < at_exit + 1000) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::vector<std::string> failures = callers.Stop();
  std::cout << callers.calls() << " Predict calls without retries, " << failures.size()
            << " failed\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << callers.calls()
                                << " calls failed, the first: " << failures.front();
}

// HAProxy sends every call to the first replica that is up: the CLI's Train lands on replica 0.
class FirstReplicaFirstTest : public LoadBalancedReplicasTest {
 protected:
  FirstReplicaFirstTest() { balance_ = "first"; }
};

TEST_F(FirstReplicaFirstTest, TheCliFollowsItsJobToTheReplicaThatTakesItOver) {
  absl::StatusOr<std::unique_ptr<testing::ChildProcess>> cli = testing::ChildProcess::Start(
      {CLASSIFIER_CLI_BINARY, "--server", absl::StrCat("127.0.0.1:", balancer_port_), "train",
       "--epochs", "4", "--batch_size", "1", "--seed", "3", "--json"},
      dir_.path() + "/cli.log");
  ASSERT_TRUE(cli.ok()) << cli.status();
  ASSERT_TRUE((*cli)->WaitForLog("\"checkpoint_saved\":\\{\"epoch\":1", absl::Minutes(2)))
      << (*cli)->Log();
  replicas_[0].process->Stop(SIGKILL);  // The replica the job runs on, and the CLI's stream.

  // The CLI opens the stream again through the balancer (another replica now) and follows the
  // job to its end there: exit 0, and one gap-free log.
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  while ((*cli)->running() && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::string output = (*cli)->Log();
  ASSERT_FALSE((*cli)->running()) << output;
  EXPECT_TRUE(WIFEXITED((*cli)->exit_status()) && WEXITSTATUS((*cli)->exit_status()) == 0)
      << output;
  EXPECT_THAT(output, ::testing::HasSubstr("watching it again from event"));
  std::vector<v1::JobEvent> events;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (!absl::StartsWith(line, "{")) continue;
    v1::JobEvent event;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &event).ok())
        << line;
    events.push_back(event);
  }
  ExpectOneRunResumedOnce(events, 4);
}

}  // namespace
}  // namespace classifier
