// predict_bench: Predict throughput and latency of a running classifier-server, each beside
// the figure it is judged against, measured in the same run and alternated (A B A B):
//
//   1. throughput per batch size: TrainedModel::PredictProbabilities in this process vs the
//      same batch over gRPC (raw_pixels images), images/s and the ratio gRPC / in-process;
//   2. latency, one caller, one image per request: gRPC Predict vs a gRPC health Check round
//      trip (the transport's "echo") and the in-process batch-1 forward, p50 / p99;
//   3. concurrency: N callers (default 64) each sending one image, closed loop, with the
//      server's dynamic batching vs batch-1 serving (--baseline_server: a second server started
//      with --batch_max_images=1) and vs 1 caller: requests/s, p50 / p99;
//   4. serving while training: the one-caller latency while a training job runs, vs idle.
//
// The model: a tutorial CNN trained here for one epoch on synthetic images, uploaded with
// ImportWeights and deployed, so that both sides run the very same weights. Images are
// synthetic too (the forward pass costs the same whatever the pixels). bench/predict_bench.sh
// starts a server and runs this; see bench/README.md. Prints figures; never a test.
#include <grpcpp/grpcpp.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/dataset.h"
#include "base/image.h"
#include "classifier/v1/classifier.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "model/device.h"
#include "model/network.h"
#include "model/trainer.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "the classifier-server to measure");
ABSL_FLAG(int, threads, 1,
          "LibTorch compute threads in this process: the server's --threads, for a fair ratio");
ABSL_FLAG(std::string, batches, "1,16,64,256,1024,10000", "batch sizes for throughput");
ABSL_FLAG(int, rounds, 3, "alternating in-process / gRPC rounds per batch size");
ABSL_FLAG(double, min_seconds, 0.5, "shortest measurement of one throughput figure");
ABSL_FLAG(int, latency_requests, 2000, "requests per kind for the latency percentiles");
ABSL_FLAG(int, idle_gap_us, 250,
          "idle time before each call of the 'after idling' in-process forward (about a lone "
          "caller's round trip, during which the server's inference thread sleeps); 0 skips it");
ABSL_FLAG(int, callers, 64, "concurrent callers for the concurrency figure");
ABSL_FLAG(double, concurrency_seconds, 3, "length of one concurrency measurement");
ABSL_FLAG(int, concurrency_rounds, 2, "alternating rounds of the concurrency figures");
ABSL_FLAG(std::string, baseline_server, "",
          "a second classifier-server started with --batch_max_images=1 (batch-1 serving), for "
          "the concurrency figure's baseline; empty = compare with 1 caller only");
ABSL_FLAG(std::string, dataset, "fashion-mnist",
          "dataset the imported model is registered for and the serving-while-training job "
          "trains on (the server must have it)");
ABSL_FLAG(bool, pin_malloc, true,
          "fix glibc malloc's mmap and trim thresholds in this process, so that the in-process "
          "figure is the best one and does not depend on the allocation history (see README)");
ABSL_FLAG(int, oip_requests, 1000,
          "requests per kind and round of the Open Inference Protocol comparison (section oip)");
ABSL_FLAG(std::string, sections, "throughput,latency,concurrency,training,oip",
          "which measurements to run, comma-separated");

namespace classifier {
namespace {

namespace v1 = ::classifier::v1;
using Clock = std::chrono::steady_clock;

constexpr int kSide = 28;
constexpr int kImagePixels = kSide * kSide;
constexpr auto kDeadline = std::chrono::seconds(120);

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "predict_bench: %s\n", what.c_str());
  std::exit(EXIT_FAILURE);
}

void Check(const ::grpc::Status& status, const std::string& what) {
  if (!status.ok()) {
    Fail(absl::StrCat(what, ": gRPC code ", static_cast<int>(status.error_code()), ": ",
                      status.error_message()));
  }
}

void SetDeadline(::grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + kDeadline);
}

// Nearest-rank percentile of `samples` (seconds), in microseconds.
double PercentileMicros(std::vector<double> samples, double percentile) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const size_t rank = static_cast<size_t>(
      std::max(1.0, std::ceil(percentile / 100 * static_cast<double>(samples.size()))));
  return 1e6 * samples[std::min(rank, samples.size()) - 1];
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n == 0 ? 0 : (n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2);
}

std::string LatencySummary(const std::vector<double>& samples) {
  return absl::StrFormat("%.0f / %.0f us", PercentileMicros(samples, 50),
                         PercentileMicros(samples, 99));
}

// Seeded uint8 images, `count` of them.
std::vector<uint8_t> SyntheticPixels(int64_t count, uint32_t seed) {
  std::mt19937 generator(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> pixels(static_cast<size_t>(count) * kImagePixels);
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(byte(generator));
  return pixels;
}

// A tutorial CNN trained for one epoch on 1,200 synthetic images: real weights, in a second.
std::unique_ptr<TrainedModel> MakeModel() {
  constexpr int kTrainImages = 1200;
  Dataset data;
  data.rows = kSide;
  data.cols = kSide;
  data.num_classes = 10;
  data.pixels = SyntheticPixels(kTrainImages, /*seed=*/1);
  std::mt19937 generator(2);
  for (int i = 0; i < kTrainImages; ++i) data.labels.push_back(generator() % 10);
  TrainOptions options;
  options.epochs = 1;
  options.device = "cpu";
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  if (!trainer.ok()) Fail(trainer.status().ToString());
  TrainingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  if (!model.ok()) Fail(model.status().ToString());
  return *std::move(model);
}

// Uploads a state dict and deploys it; returns the server's model id.
std::string ImportAndDeploy(v1::Classifier::Stub& stub, const std::string& bytes,
                            const std::string& dataset) {
  ::grpc::ClientContext context;
  SetDeadline(context);
  v1::ImportWeightsResponse response;
  std::unique_ptr<::grpc::ClientWriter<v1::ImportWeightsRequest>> writer =
      stub.ImportWeights(&context, &response);
  v1::ImportWeightsRequest request;
  request.set_format(v1::PYTORCH_STATE_DICT);
  request.set_dataset(dataset);
  request.set_data(bytes);  // Tens of KB: one message.
  writer->Write(request);
  writer->WritesDone();
  Check(writer->Finish(), "ImportWeights");
  const std::string model_id = response.model().model_id();
  ::grpc::ClientContext deploy_context;
  SetDeadline(deploy_context);
  v1::DeployModelRequest deploy;
  deploy.set_model_id(model_id);
  v1::Model deployed;
  Check(stub.DeployModel(&deploy_context, deploy, &deployed), "DeployModel");
  return model_id;
}

v1::PredictRequest MakeRequest(const std::vector<uint8_t>& pool, int64_t count,
                               const std::string& model_id) {
  v1::PredictRequest request;
  request.set_model_id(model_id);
  for (int64_t i = 0; i < count; ++i) {
    request.add_images()->set_raw_pixels(
        reinterpret_cast<const char*>(pool.data()) + i * kImagePixels, kImagePixels);
  }
  return request;
}

std::vector<float> ToFloats(const std::vector<uint8_t>& pool, int64_t count) {
  std::vector<float> pixels(static_cast<size_t>(count) * kImagePixels);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = PixelToUnit(pool[i]);
  return pixels;
}

// What one benchmark step calls: a Predict over gRPC, a health Check, a forward in-process.
class Calls {
 public:
  Calls(std::shared_ptr<::grpc::Channel> channel, const TrainedModel& model)
      : stub_(v1::Classifier::NewStub(channel)),
        health_(::grpc::health::v1::Health::NewStub(channel)),
        model_(model) {}

  v1::Classifier::Stub& stub() { return *stub_; }

  void Predict(const v1::PredictRequest& request) {
    ::grpc::ClientContext context;
    SetDeadline(context);
    v1::PredictResponse response;
    Check(stub_->Predict(&context, request, &response), "Predict");
    if (response.predictions_size() != request.images_size()) {
      Fail(absl::StrCat("Predict answered ", response.predictions_size(), " predictions for ",
                        request.images_size(), " images"));
    }
  }

  void Echo() {
    ::grpc::ClientContext context;
    SetDeadline(context);
    ::grpc::health::v1::HealthCheckRequest request;
    ::grpc::health::v1::HealthCheckResponse response;
    Check(health_->Check(&context, request, &response), "Health.Check");
  }

  void Forward(const std::vector<float>& pixels, int64_t count) {
    absl::StatusOr<std::vector<float>> probabilities = model_.PredictProbabilities(pixels, count);
    if (!probabilities.ok()) Fail(probabilities.status().ToString());
  }

 private:
  std::unique_ptr<v1::Classifier::Stub> stub_;
  std::unique_ptr<::grpc::health::v1::Health::Stub> health_;
  const TrainedModel& model_;
};

// Calls `call` (one batch of `batch` images) for at least `min_seconds` and twice; images/s.
double ImagesPerSecond(int64_t batch, double min_seconds, const std::function<void()>& call) {
  const Clock::time_point start = Clock::now();
  int64_t calls = 0;
  double seconds = 0;
  do {
    call();
    ++calls;
    seconds = SecondsSince(start);
  } while (seconds < min_seconds || calls < 2);
  return static_cast<double>(calls * batch) / seconds;
}

struct LoadResult {
  double requests_per_second = 0;
  std::vector<double> latencies;
};
LoadResult ClosedLoop(v1::Classifier::Stub& stub, const v1::PredictRequest& request, int callers,
                      double seconds, int min_calls = 1);

void Throughput(Calls& calls, const std::string& model_id, const std::vector<uint8_t>& pool) {
  std::vector<int64_t> batches;
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',')) {
    int64_t batch = 0;
    if (!absl::SimpleAtoi(text, &batch) || batch < 1 ||
        batch > static_cast<int64_t>(pool.size() / kImagePixels)) {
      Fail(absl::StrCat("bad --batches entry '", text, "'"));
    }
    batches.push_back(batch);
  }
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const double min_seconds = absl::GetFlag(FLAGS_min_seconds);
  std::printf("\n== 1. throughput: in-process PredictProbabilities vs gRPC Predict (raw_pixels)\n");
  // gRPC 1: one call at a time, so the transport (receive, parse, answer: an echo alone takes
  // ~200 us here) adds to every batch's compute. gRPC 2: two calls in flight, as a client after
  // throughput keeps them, so one call's transport overlaps the other's forward pass; the
  // server's compute threads are the same (--inference_threads).
  std::printf("%8s  %14s  %12s  %12s  %8s  %8s  %s\n", "batch", "in-process/s", "gRPC 1 img/s",
              "gRPC 2 img/s", "1 / in", "2 / in", "per-round ratios (2 in flight)");
  for (const int64_t batch : batches) {
    const v1::PredictRequest request = MakeRequest(pool, batch, model_id);
    const std::vector<float> pixels = ToFloats(pool, batch);
    calls.Forward(pixels, batch);  // Warm-up: allocator, oneDNN primitives, connection.
    calls.Predict(request);
    std::vector<double> local;
    std::vector<double> remote;
    std::vector<double> pipelined;
    std::string ratios;
    for (int round = 0; round < rounds; ++round) {
      local.push_back(ImagesPerSecond(batch, min_seconds, [&] { calls.Forward(pixels, batch); }));
      remote.push_back(ImagesPerSecond(batch, min_seconds, [&] { calls.Predict(request); }));
      pipelined.push_back(ClosedLoop(calls.stub(), request, /*callers=*/2,
                                     std::max(min_seconds, 0.5),
                                     /*min_calls=*/10)
                              .requests_per_second *
                          static_cast<double>(batch));
      absl::StrAppend(&ratios, round == 0 ? "" : " ",
                      absl::StrFormat("%.2f", pipelined.back() / local.back()));
    }
    const double local_median = Median(local);
    const double remote_median = Median(remote);
    const double pipelined_median = Median(pipelined);
    std::printf("%8lld  %14.0f  %12.0f  %12.0f  %8.2f  %8.2f  %s\n", static_cast<long long>(batch),
                local_median, remote_median, pipelined_median, remote_median / local_median,
                pipelined_median / local_median, ratios.c_str());
    std::fflush(stdout);
  }
}

struct LatencySamples {
  std::vector<double> echo;
  std::vector<double> predict;
  std::vector<double> forward;
  std::vector<double> forward_after_idle;  // Each call after --idle_gap_us of sleep.
};

// One image per call, one caller; the three kinds alternate in blocks of 100.
LatencySamples MeasureLatency(Calls& calls, const v1::PredictRequest& one,
                              const std::vector<float>& one_pixels, int requests,
                              bool with_forward) {
  constexpr int kBlock = 100;
  LatencySamples samples;
  const std::chrono::microseconds idle_gap(absl::GetFlag(FLAGS_idle_gap_us));
  // Times `call` n times into `out`; `untimed` (if any) runs before each call, off the clock.
  auto time_block = [](int n, std::vector<double>& out, const std::function<void()>& call,
                       const std::function<void()>& untimed = nullptr) {
    for (int i = 0; i < n; ++i) {
      if (untimed) untimed();
      const Clock::time_point start = Clock::now();
      call();
      out.push_back(SecondsSince(start));
    }
  };
  for (int done = 0; done < requests; done += kBlock) {
    const int n = std::min(kBlock, requests - done);
    time_block(n, samples.echo, [&] { calls.Echo(); });
    time_block(n, samples.predict, [&] { calls.Predict(one); });
    if (!with_forward) continue;
    time_block(n, samples.forward, [&] { calls.Forward(one_pixels, 1); });
    if (idle_gap.count() > 0) {
      time_block(
          n, samples.forward_after_idle, [&] { calls.Forward(one_pixels, 1); },
          [&] { std::this_thread::sleep_for(idle_gap); });
    }
  }
  return samples;
}

void Latency(Calls& calls, const v1::PredictRequest& one, const std::vector<float>& one_pixels) {
  const int requests = absl::GetFlag(FLAGS_latency_requests);
  MeasureLatency(calls, one, one_pixels, 200, true);  // Warm-up.
  const LatencySamples s = MeasureLatency(calls, one, one_pixels, requests, true);
  std::printf("\n== 2. latency, one caller, one image per request (%d requests each, p50 / p99)\n",
              requests);
  std::printf("gRPC health Check (echo):     %s\n", LatencySummary(s.echo).c_str());
  std::printf("in-process forward, batch 1:  %s\n", LatencySummary(s.forward).c_str());
  if (!s.forward_after_idle.empty()) {
    std::printf("  the same after %d us idle:   %s\n", absl::GetFlag(FLAGS_idle_gap_us),
                LatencySummary(s.forward_after_idle).c_str());
  }
  std::printf("gRPC Predict, 1 image:        %s\n", LatencySummary(s.predict).c_str());
  const double echo50 = PercentileMicros(s.echo, 50);
  const double forward50 = PercentileMicros(s.forward, 50);
  const double predict50 = PercentileMicros(s.predict, 50);
  const double predict99 = PercentileMicros(s.predict, 99);
  std::printf(
      "ratio: Predict p50 / (echo p50 + forward p50) = %.0f / (%.0f + %.0f) = %.2f "
      "(target <= 1.3); Predict p99 %.0f us (target < 1000)\n",
      predict50, echo50, forward50, predict50 / (echo50 + forward50), predict99);
  if (!s.forward_after_idle.empty()) {
    // Not the target's formula: what the forward costs on a thread that slept between calls,
    // as the server's inference thread does between a lone caller's calls (and as the echo's
    // threads do too).
    const double idle50 = PercentileMicros(s.forward_after_idle, 50);
    std::printf("  with the forward after idling: %.0f / (%.0f + %.0f) = %.2f\n", predict50, echo50,
                idle50, predict50 / (echo50 + idle50));
  }
  std::fflush(stdout);
}

// `callers` Predict calls always in flight on one completion queue (a closed loop, as
// `callers` clients that each send the next request when the answer arrives). Counts the
// calls that finish within `seconds` after a warm-up of a fifth of that.
LoadResult ClosedLoop(v1::Classifier::Stub& stub, const v1::PredictRequest& request, int callers,
                      double seconds, int min_calls) {
  struct Slot {
    std::unique_ptr<::grpc::ClientContext> context;
    std::unique_ptr<::grpc::ClientAsyncResponseReader<v1::PredictResponse>> reader;
    v1::PredictResponse response;
    ::grpc::Status status;
    Clock::time_point start;
  };
  ::grpc::CompletionQueue queue;
  std::vector<Slot> slots(static_cast<size_t>(callers));
  auto start_call = [&](size_t i) {
    Slot& slot = slots[i];
    slot.context = std::make_unique<::grpc::ClientContext>();
    SetDeadline(*slot.context);
    slot.response.Clear();
    slot.start = Clock::now();
    slot.reader = stub.AsyncPredict(slot.context.get(), request, &queue);
    slot.reader->Finish(&slot.response, &slot.status, reinterpret_cast<void*>(i));
  };
  const Clock::time_point begin = Clock::now();
  const auto to_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Clock::time_point measure_from = begin + to_duration(seconds / 5);
  const Clock::time_point measure_until = measure_from + to_duration(seconds);
  for (size_t i = 0; i < slots.size(); ++i) start_call(i);
  size_t in_flight = slots.size();
  LoadResult result;
  int64_t done = 0;
  Clock::time_point last_done = measure_from;
  void* tag = nullptr;
  bool ok = false;
  while (in_flight > 0 && queue.Next(&tag, &ok)) {
    const size_t i = reinterpret_cast<size_t>(tag);
    Slot& slot = slots[i];
    const Clock::time_point now = Clock::now();
    Check(slot.status, "Predict (concurrent)");
    if (slot.response.predictions_size() != request.images_size()) Fail("wrong answer count");
    // The window lasts `seconds` and at least `min_calls` answers: a few big calls would
    // otherwise make the rate a multiple of 1 / seconds (2 or 3 calls of 10,000 images).
    const bool measuring = now < measure_until || done < min_calls;
    if (now >= measure_from && measuring) {
      ++done;
      last_done = now;
      result.latencies.push_back(std::chrono::duration<double>(now - slot.start).count());
    }
    if (measuring) {
      start_call(i);
    } else {
      --in_flight;
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  // Answers per second from the window's start to its last answer.
  result.requests_per_second =
      static_cast<double>(done) / std::chrono::duration<double>(last_done - measure_from).count();
  return result;
}

// `baseline` (may be null): the same load on a server that serves batch 1 (no batching).
void Concurrency(Calls& calls, const v1::PredictRequest& one, Calls* baseline,
                 const v1::PredictRequest& baseline_one) {
  const int callers = absl::GetFlag(FLAGS_callers);
  const double seconds = absl::GetFlag(FLAGS_concurrency_seconds);
  const int rounds = std::max(1, absl::GetFlag(FLAGS_concurrency_rounds));
  std::printf(
      "\n== 3. concurrency: one image per request, %d callers with dynamic batching vs %s, and "
      "vs 1 caller (%.1f s each, %d rounds alternating)\n",
      callers, baseline != nullptr ? "batch-1 serving (--batch_max_images=1)" : "-", seconds,
      rounds);
  struct Series {
    std::vector<double> rps;
    std::vector<double> latencies;
    std::string rounds;
    void Add(const LoadResult& result) {
      rps.push_back(result.requests_per_second);
      latencies.insert(latencies.end(), result.latencies.begin(), result.latencies.end());
      absl::StrAppend(&rounds, rounds.empty() ? "" : ", ",
                      absl::StrFormat("%.0f", result.requests_per_second));
    }
    void Print(const std::string& name) const {
      std::printf("%-34s %8.0f requests/s (rounds %s), p50 / p99 %s\n", name.c_str(), Median(rps),
                  rounds.c_str(), LatencySummary(latencies).c_str());
    }
  };
  Series single, many, many_baseline;
  for (int round = 0; round < rounds; ++round) {
    single.Add(ClosedLoop(calls.stub(), one, 1, seconds));
    many.Add(ClosedLoop(calls.stub(), one, callers, seconds));
    if (baseline != nullptr) {
      many_baseline.Add(ClosedLoop(baseline->stub(), baseline_one, callers, seconds));
    }
  }
  single.Print("1 caller, batching:");
  many.Print(absl::StrCat(callers, " callers, batching:"));
  if (baseline != nullptr) {
    many_baseline.Print(absl::StrCat(callers, " callers, batch-1 serving:"));
    std::printf(
        "ratio: %d callers batching / batch-1 serving = %.2f requests/s (target >= 2.5); p99 "
        "%.1f ms (target < 20)\n",
        callers, Median(many.rps) / Median(many_baseline.rps),
        PercentileMicros(many.latencies, 99) / 1000);
  }
  std::printf("ratio: %d callers / 1 caller, batching = %.2f requests/s\n", callers,
              Median(many.rps) / Median(single.rps));
  std::fflush(stdout);
}

void WhileTraining(Calls& calls, const v1::PredictRequest& one,
                   const std::vector<float>& one_pixels) {
  const std::string dataset = absl::GetFlag(FLAGS_dataset);
  const int requests = absl::GetFlag(FLAGS_latency_requests);
  std::printf("\n== 4. serving while training: one caller, one image, idle / training / idle\n");
  const LatencySamples before = MeasureLatency(calls, one, one_pixels, requests / 2, false);

  ::grpc::ClientContext train_context;
  v1::TrainRequest train;
  train.set_dataset(dataset);
  train.set_epochs(100);  // Cancelled once measured.
  std::unique_ptr<::grpc::ClientReader<v1::JobEvent>> reader =
      calls.stub().Train(&train_context, train);
  v1::JobEvent event;
  std::string job_id;
  bool started = false;
  while (!started && reader->Read(&event)) {
    job_id = event.job_id();
    started = event.has_started();
    if (event.has_finished()) Fail("the training job ended before it started");
  }
  if (!started) {
    Check(reader->Finish(), "Train");
    Fail("the Train stream ended before the job started");
  }
  std::thread drain([&reader] {
    v1::JobEvent ignored;
    while (reader->Read(&ignored)) {
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));  // Into the epoch proper.
  const LatencySamples during = MeasureLatency(calls, one, one_pixels, requests, false);
  ::grpc::ClientContext cancel_context;
  SetDeadline(cancel_context);
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job_id);
  v1::Job job;
  Check(calls.stub().CancelJob(&cancel_context, cancel, &job), "CancelJob");
  drain.join();
  reader->Finish();  // CANCELLED or OK: the job's end is all that matters here.
  const LatencySamples after = MeasureLatency(calls, one, one_pixels, requests / 2, false);

  std::vector<double> idle = before.predict;
  idle.insert(idle.end(), after.predict.begin(), after.predict.end());
  std::printf("idle:             Predict p50 / p99 %s\n", LatencySummary(idle).c_str());
  std::printf("while training:   Predict p50 / p99 %s (job %s on %s; echo %s)\n",
              LatencySummary(during.predict).c_str(), job_id.c_str(), dataset.c_str(),
              LatencySummary(during.echo).c_str());
  std::printf("ratio: p99 training / idle = %.2f; p99 while training %.0f us (target < 5000)\n",
              PercentileMicros(during.predict, 99) / PercentileMicros(idle, 99),
              PercentileMicros(during.predict, 99));
  std::fflush(stdout);
}

// glibc adapts its mmap threshold to the sizes freed so far and returns memory above the trim
// threshold to the kernel; LibTorch's activations (1.6 MB per conv1 output at batch 64) then
// cost page faults on every call or not, depending on what was allocated before, and the
// in-process figure at a batch size varied 2x between runs. Fixed thresholds make it stable.
void PinMalloc() {
  constexpr int kMmapThreshold = 32 << 20;  // glibc's maximum on 64-bit.
  constexpr int kTrimThreshold = 512 << 20;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) != 1 ||
      mallopt(M_TRIM_THRESHOLD, kTrimThreshold) != 1) {
    Fail("mallopt failed");
  }
}

// The Open Inference Protocol's ModelInfer (raw UINT8 [N, 28, 28], the deployed model by its
// alias) against Predict (raw_pixels) on the same images, one caller, alternating in rounds:
// requests per second and p50 of each, and their ratio.
void OpenInference(std::shared_ptr<::grpc::Channel> channel, Calls& calls,
                   const std::vector<uint8_t>& pool, const std::string& model_id) {
  std::unique_ptr<inference::GRPCInferenceService::Stub> oip =
      inference::GRPCInferenceService::NewStub(channel);
  const int requests = absl::GetFlag(FLAGS_oip_requests);
  const int rounds = std::max(2, absl::GetFlag(FLAGS_rounds));
  std::printf(
      "\n== 5. Open Inference Protocol: ModelInfer vs Predict, one caller, %d requests "
      "per kind and round, %d rounds alternating\n",
      requests, rounds);
  std::printf("%6s  %14s  %14s  %12s  %12s  %10s  %10s\n", "images", "Predict req/s",
              "ModelInfer r/s", "Predict p50", "Infer p50", "r/s ratio", "p50 ratio");
  for (const int64_t batch : {int64_t{1}, int64_t{64}}) {
    const v1::PredictRequest predict = MakeRequest(pool, batch, model_id);
    inference::ModelInferRequest infer;
    infer.set_model_name("classifier");
    auto* input = infer.add_inputs();
    input->set_name("input");
    input->set_datatype("UINT8");
    for (const int64_t dimension : {batch, int64_t{kSide}, int64_t{kSide}}) {
      input->add_shape(dimension);
    }
    infer.add_raw_input_contents(std::string(pool.begin(), pool.begin() + batch * kImagePixels));
    auto call_infer = [&] {
      ::grpc::ClientContext context;
      SetDeadline(context);
      inference::ModelInferResponse response;
      Check(oip->ModelInfer(&context, infer, &response), "ModelInfer");
    };
    auto timed = [&](const std::function<void()>& call, std::vector<double>& latencies) {
      const Clock::time_point start = Clock::now();
      for (int i = 0; i < requests; ++i) {
        const Clock::time_point one = Clock::now();
        call();
        latencies.push_back(SecondsSince(one));
      }
      return requests / SecondsSince(start);
    };
    for (int i = 0; i < 50; ++i) {  // Warm-up, both paths.
      calls.Predict(predict);
      call_infer();
    }
    std::vector<double> predict_rates, infer_rates, predict_latencies, infer_latencies;
    for (int round = 0; round < rounds; ++round) {
      predict_rates.push_back(timed([&] { calls.Predict(predict); }, predict_latencies));
      infer_rates.push_back(timed(call_infer, infer_latencies));
    }
    const double predict_rate = Median(predict_rates);
    const double infer_rate = Median(infer_rates);
    const double predict50 = PercentileMicros(predict_latencies, 50);
    const double infer50 = PercentileMicros(infer_latencies, 50);
    std::printf("%6lld  %14.0f  %14.0f  %9.0f us  %9.0f us  %10.2f  %10.2f\n",
                static_cast<long long>(batch), predict_rate, infer_rate, predict50, infer50,
                infer_rate / predict_rate, infer50 / predict50);
    std::fflush(stdout);
  }
}

int Main() {
  if (absl::GetFlag(FLAGS_pin_malloc)) PinMalloc();
  const int threads = absl::GetFlag(FLAGS_threads);
  SetComputeThreads(threads);
  const std::string sections = absl::GetFlag(FLAGS_sections);
  auto wanted = [&sections](absl::string_view name) {
    for (absl::string_view s : absl::StrSplit(sections, ',')) {
      if (s == name) return true;
    }
    return false;
  };

  ::grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  const std::string target = absl::GetFlag(FLAGS_server);
  std::shared_ptr<::grpc::Channel> channel =
      ::grpc::CreateCustomChannel(target, ::grpc::InsecureChannelCredentials(), arguments);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    Fail(absl::StrCat("cannot connect to ", target));
  }

  // The server serves what it loaded from the uploaded bytes: so does this side.
  const std::unique_ptr<TrainedModel> trained = MakeModel();
  absl::StatusOr<std::string> bytes = trained->ToStateDictBytes();
  if (!bytes.ok()) Fail(bytes.status().ToString());
  absl::StatusOr<std::unique_ptr<TrainedModel>> model =
      TrainedModel::FromStateDictBytes(*bytes, Architecture{}, "cpu");
  if (!model.ok()) Fail(model.status().ToString());
  Calls calls(channel, **model);
  const std::string model_id = ImportAndDeploy(calls.stub(), *bytes, absl::GetFlag(FLAGS_dataset));
  std::printf("predict_bench: server %s, model %s (imported), in-process threads %d\n",
              target.c_str(), model_id.c_str(), threads);
  std::fflush(stdout);

  constexpr int64_t kPoolImages = 10000;
  const std::vector<uint8_t> pool = SyntheticPixels(kPoolImages, /*seed=*/3);
  const v1::PredictRequest one = MakeRequest(pool, 1, model_id);
  const std::vector<float> one_pixels = ToFloats(pool, 1);

  if (wanted("throughput")) Throughput(calls, model_id, pool);
  if (wanted("latency")) Latency(calls, one, one_pixels);
  if (wanted("concurrency")) {
    const std::string baseline_target = absl::GetFlag(FLAGS_baseline_server);
    if (baseline_target.empty()) {
      Concurrency(calls, one, nullptr, one);
    } else {
      std::shared_ptr<::grpc::Channel> baseline_channel = ::grpc::CreateCustomChannel(
          baseline_target, ::grpc::InsecureChannelCredentials(), arguments);
      Calls baseline(baseline_channel, **model);
      const std::string baseline_model =
          ImportAndDeploy(baseline.stub(), *bytes, absl::GetFlag(FLAGS_dataset));
      Concurrency(calls, one, &baseline, MakeRequest(pool, 1, baseline_model));
    }
  }
  if (wanted("training")) WhileTraining(calls, one, one_pixels);
  if (wanted("oip")) OpenInference(channel, calls, pool, model_id);
  return EXIT_SUCCESS;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Predict throughput and latency, in-process vs a running classifier-server.\n"
      "  predict_bench --server=127.0.0.1:PORT [--threads=1] (see bench/README.md)");
  absl::ParseCommandLine(argc, argv);
  // Off the main thread, as in the server (its worker and inference threads): glibc trims the
  // main thread's heap when LibTorch frees a large activation and faults it back in at the
  // next allocation, which halves the forward's speed at batch 64 on the main thread.
  int status = EXIT_FAILURE;
  std::thread worker([&status] { status = classifier::Main(); });
  worker.join();
  return status;
}
