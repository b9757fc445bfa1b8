// replicas_bench: Predict through HAProxy to one replica vs three (issue 12), and what the load
// balancer itself adds, side by side and alternated (A B A B):
//
//   1. throughput: 64 callers in a closed loop, 1 and then 64 images a call, against one
//      replica directly, HAProxy in front of that one replica, and HAProxy in front of three:
//      requests/s, images/s, p50 / p99;
//   2. latency: one caller, one image a call, one replica directly vs through HAProxy: p50 / p99,
//      the difference being the balancer's hop.
//   3. training: the same job (3 epochs of --train_images images, batch 60) on a server whose
//      store is SQLite vs PostgreSQL: seconds per epoch (epochs 2 and 3, from the events' times).
//
// Everything runs on this machine: PostgreSQL (fsync on), three classifier-server processes
// (one compute thread each), two HAProxy processes and the callers share its cores, so three
// replicas cannot give three times one where the cores are fewer than replicas + callers + the
// balancer; the figures say what this machine gives. Prints figures; never a test.
//
//   build/bench/replicas_bench [--seconds=5] [--rounds=2]
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/file_util.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/synthetic_data.h"

ABSL_FLAG(double, seconds, 5, "length of one throughput measurement");
ABSL_FLAG(int, rounds, 2, "alternating rounds of the Predict comparisons");
ABSL_FLAG(int, training_rounds, 5, "alternating rounds of the training comparison");
ABSL_FLAG(int, callers, 64, "concurrent callers of the throughput figures");
ABSL_FLAG(int, latency_requests, 2000, "requests per side of the latency figure");
ABSL_FLAG(int, train_images, 6000, "training images of the training comparison (MNIST: 60000)");
ABSL_FLAG(std::string, haproxy, "/usr/sbin/haproxy", "HAProxy's binary");
ABSL_FLAG(std::string, sections, "throughput,latency,training", "which figures to measure");

namespace classifier {
namespace {

using Clock = std::chrono::steady_clock;

// Thrown to main, so that what was started (PostgreSQL, the servers) is stopped on the way.
[[noreturn]] void Fail(const std::string& message) { throw std::runtime_error(message); }

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(q * (values.size() - 1))];
}

std::unique_ptr<v1::Classifier::Stub> Stub(int port) {
  return v1::Classifier::NewStub(::grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                       ::grpc::InsecureChannelCredentials()));
}

struct Load {
  double requests_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int failures = 0;
};

// `callers` closed-loop callers, each on a connection of its own, for `seconds`.
Load Measure(int port, int callers, const v1::PredictRequest& request, double seconds) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<double> latencies;
  int failures = 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&] {
      auto stub = Stub(port);
      std::vector<double> mine;
      int failed = 0;
      while (!stop.load()) {
        ::grpc::ClientContext context;
        v1::PredictResponse response;
        const auto start = Clock::now();
        if (stub->Predict(&context, request, &response).ok()) {
          mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        } else {
          ++failed;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
      failures += failed;
    });
  }
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (std::thread& thread : threads) thread.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return Load{latencies.size() / elapsed, Percentile(latencies, 0.5), Percentile(latencies, 0.99),
              failures};
}

class Stack {
 public:
  explicit Stack(const std::string& dir) : dir_(dir) {
    absl::StatusOr<std::unique_ptr<testing::PostgresServer>> postgres =
        testing::PostgresServer::Start(/*durable=*/true);
    if (!postgres.ok()) Fail(postgres.status().ToString());
    postgres_ = *std::move(postgres);
    testing::WriteDatasetFiles(
        dir_ + "/data/mnist",
        testing::MakeSyntheticDataset(absl::GetFlag(FLAGS_train_images), 10, 1),
        testing::MakeSyntheticDataset(1000, 10, 2), /*gzip=*/true);
  }

  // A replica of the shared store, or (`store` set) a server of its own store.
  int StartServer(const std::string& name, const std::string& store = "") {
    absl::StatusOr<testing::ServerProcess> server = testing::ServerProcess::Start(
        CLASSIFIER_SERVER_BINARY,
        {"--data_dir", dir_ + "/data", "--state_dir", dir_ + "/state-" + name, "--store",
         store.empty() ? postgres_->uri() : store, "--device", "cpu", "--threads", "1",
         "--inference_threads", "1"},
        dir_ + "/" + name + ".log");
    if (!server.ok()) Fail(server.status().ToString());
    servers_.push_back(*std::move(server));
    return servers_.back().port;
  }

  // HAProxy in front of `ports`, as docker/haproxy.cfg configures it.
  int StartBalancer(const std::string& name, const std::vector<int>& ports) {
    const int port = testing::FreeLoopbackPort();
    std::string config = absl::StrCat(
        "global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 2s\n"
        "  timeout client 1h\n  timeout server 1h\n  retries 3\n  option redispatch 1\n"
        "frontend classifier\n  bind 127.0.0.1:",
        port, " proto h2\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n");
    for (size_t i = 0; i < ports.size(); ++i) {
      absl::StrAppend(&config, "  server r", i, " 127.0.0.1:", ports[i], " proto h2 check\n");
    }
    const std::string path = dir_ + "/" + name + ".cfg";
    if (!WriteFileAtomically(path, config).ok()) Fail("cannot write " + path);
    absl::StatusOr<std::unique_ptr<testing::ChildProcess>> balancer = testing::ChildProcess::Start(
        {absl::GetFlag(FLAGS_haproxy), "-db", "-f", path}, dir_ + "/" + name + ".log");
    if (!balancer.ok()) Fail(balancer.status().ToString());
    balancers_.push_back(*std::move(balancer));
    auto stub = Stub(port);
    const absl::Time deadline = absl::Now() + absl::Minutes(1);
    for (;;) {
      ::grpc::ClientContext context;
      v1::ListModelsResponse models;
      if (stub->ListModels(&context, v1::ListModelsRequest(), &models).ok()) return port;
      if (absl::Now() > deadline) Fail("HAProxy did not serve:\n" + balancers_.back()->Log());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 private:
  const std::string dir_;
  std::unique_ptr<testing::PostgresServer> postgres_;
  std::vector<testing::ServerProcess> servers_;
  std::vector<std::unique_ptr<testing::ChildProcess>> balancers_;
};

// Trains `epochs` on the server at `port` and answers the seconds each epoch after the first
// took (between the epoch_end events' times).
std::vector<double> TrainEpochSeconds(int port, int epochs) {
  auto stub = Stub(port);
  v1::TrainRequest request;
  request.set_dataset("mnist");
  request.set_epochs(epochs);
  request.set_batch_size(60);
  request.set_seed(1);
  ::grpc::ClientContext context;
  auto reader = stub->Train(&context, request);
  v1::JobEvent event;
  std::vector<int64_t> ends;
  while (reader->Read(&event)) {
    if (event.has_epoch_end()) {
      ends.push_back(google::protobuf::util::TimeUtil::TimestampToNanoseconds(event.time()));
    }
  }
  if (!reader->Finish().ok() || ends.size() != static_cast<size_t>(epochs)) Fail("training failed");
  std::vector<double> seconds;
  for (size_t i = 1; i < ends.size(); ++i) seconds.push_back((ends[i] - ends[i - 1]) / 1e9);
  return seconds;
}

bool Wants(const std::string& section) {
  return absl::GetFlag(FLAGS_sections).find(section) != std::string::npos;
}

int Main() {
  testing::TempDir dir;
  Stack stack(dir.path());
  const int rounds = absl::GetFlag(FLAGS_rounds);
  std::printf(
      "machine: %u cores; PostgreSQL, 3 replicas (1 compute thread each), 2 HAProxy and "
      "the callers share them\n",
      std::thread::hardware_concurrency());

  if (Wants("training")) {
    const int sqlite = stack.StartServer("sqlite", dir.path() + "/own.db");
    const int postgres = stack.StartServer("postgres-trainer");
    std::vector<double> on_sqlite, on_postgres;
    for (int round = 0; round < absl::GetFlag(FLAGS_training_rounds); ++round) {
      for (double s : TrainEpochSeconds(sqlite, 3)) on_sqlite.push_back(s);
      for (double s : TrainEpochSeconds(postgres, 3)) on_postgres.push_back(s);
    }
    const double a = Percentile(on_sqlite, 0.5), b = Percentile(on_postgres, 0.5);
    std::printf(
        "\ntraining, seconds per epoch (%d images, batch 60; median of %zu epochs):\n"
        "  sqlite %.3f  postgres %.3f  postgres/sqlite %.3f\n",
        absl::GetFlag(FLAGS_train_images), on_sqlite.size(), a, b, b / a);
  }

  if (!Wants("throughput") && !Wants("latency")) return 0;
  const int ports[3] = {stack.StartServer("r0"), stack.StartServer("r1"), stack.StartServer("r2")};
  {
    // A model to serve: the newest, trained on r0 (every replica reads it from the store).
    auto stub = Stub(ports[0]);
    v1::TrainRequest request;
    request.set_dataset("mnist");
    request.set_epochs(1);
    ::grpc::ClientContext context;
    auto reader = stub->Train(&context, request);
    v1::JobEvent event;
    while (reader->Read(&event)) {
    }
    if (!reader->Finish().ok()) Fail("cannot train the model to serve");
  }
  const int one = stack.StartBalancer("lb-1", {ports[0]});
  const int three = stack.StartBalancer("lb-3", {ports[0], ports[1], ports[2]});
  const std::vector<uint8_t> pixels(28 * 28, 100);

  if (Wants("throughput")) {
    for (int images : {1, 64}) {
      v1::PredictRequest request;
      for (int i = 0; i < images; ++i) {
        request.add_images()->set_raw_pixels(std::string(pixels.begin(), pixels.end()));
      }
      const std::pair<const char*, int> targets[] = {{"1 replica, direct", ports[0]},
                                                     {"HAProxy -> 1 replica", one},
                                                     {"HAProxy -> 3 replicas", three}};
      std::vector<Load> loads[3];
      for (int round = 0; round < rounds; ++round) {
        for (int t = 0; t < 3; ++t) {
          loads[t].push_back(Measure(targets[t].second, absl::GetFlag(FLAGS_callers), request,
                                     absl::GetFlag(FLAGS_seconds)));
        }
      }
      std::printf("\n%d callers, %d image(s) a call (median of %d rounds, alternated):\n",
                  absl::GetFlag(FLAGS_callers), images, rounds);
      std::printf("  %-24s %10s %12s %9s %9s %8s %9s\n", "target", "requests/s", "images/s",
                  "p50 ms", "p99 ms", "failed", "vs 1 LB");
      double base = 0;
      for (int t = 0; t < 3; ++t) {
        std::vector<double> rps, p50, p99;
        int failed = 0;
        for (const Load& load : loads[t]) {
          rps.push_back(load.requests_per_s);
          p50.push_back(load.p50_ms);
          p99.push_back(load.p99_ms);
          failed += load.failures;
        }
        const double r = Percentile(rps, 0.5);
        if (t == 1) base = r;
        std::printf("  %-24s %10.0f %12.0f %9.2f %9.2f %8d %9s\n", targets[t].first, r, r * images,
                    Percentile(p50, 0.5), Percentile(p99, 0.5), failed,
                    t == 2 ? absl::StrCat(r / base).substr(0, 5).c_str() : "");
      }
    }
  }

  if (Wants("latency")) {
    v1::PredictRequest request;
    request.add_images()->set_raw_pixels(std::string(pixels.begin(), pixels.end()));
    std::vector<double> direct, balanced;
    auto direct_stub = Stub(ports[0]);
    auto balanced_stub = Stub(one);
    const int per_round = absl::GetFlag(FLAGS_latency_requests) / rounds;
    // A named array, not a braced list in the loop: GCC 14 takes the pairs of such a list for
    // dangling temporaries (-Wdangling-reference).
    const std::pair<v1::Classifier::Stub*, std::vector<double>*> sides[] = {
        {direct_stub.get(), &direct}, {balanced_stub.get(), &balanced}};
    for (int round = 0; round < rounds; ++round) {
      for (const auto& [stub, out] : sides) {
        for (int i = 0; i < per_round; ++i) {
          ::grpc::ClientContext context;
          v1::PredictResponse response;
          const auto start = Clock::now();
          if (!stub->Predict(&context, request, &response).ok()) Fail("Predict failed");
          out->push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        }
      }
    }
    std::printf(
        "\none caller, one image a call (%zu calls each, alternated):\n"
        "  direct p50 %.3f ms p99 %.3f ms; through HAProxy p50 %.3f ms p99 %.3f ms; "
        "HAProxy adds p50 %.3f ms, p99 %.3f ms\n",
        direct.size(), Percentile(direct, 0.5), Percentile(direct, 0.99), Percentile(balanced, 0.5),
        Percentile(balanced, 0.99), Percentile(balanced, 0.5) - Percentile(direct, 0.5),
        Percentile(balanced, 0.99) - Percentile(direct, 0.99));
  }
  return 0;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Predict through HAProxy to 1 vs 3 replicas, the balancer's own latency, and an epoch on "
      "SQLite vs PostgreSQL");
  absl::ParseCommandLine(argc, argv);
  try {
    return classifier::Main();
  } catch (const std::runtime_error& error) {
    std::fprintf(stderr, "replicas_bench: %s\n", error.what());
    return 1;
  }
}
