// scale_bench: what a request costs on a server whose store holds many models and jobs (filled
// by scale_fill, started by bench/scale_bench.sh), each figure printed as `name: value` lines the
// script gathers into one table per store size:
//
//   list_models_p50_ms / _p99_ms    ListModels, a page of 100 (the first page, then pages further
//                                   in through next_page_token, alternated)
//   list_jobs_p50_ms / _p99_ms      ListJobs, the same
//   predict_cold_p50_ms / _p99_ms   the first Predict (one image) naming a model not in memory
//   predict_cached_p50_ms / _p99_ms the next Predict naming the same model
//   get_job_p50_ms                  GetJob of the job with the longest event log
//   watch_replay_events_per_s       WatchJob of that job from sequence 1, to its end
//   imports_per_s / import_p50_ms   ImportWeights of --weights, one caller, one after another
//
// Prints figures; never a test.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "classifier/v1/classifier.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "the classifier-server to measure");
ABSL_FLAG(std::string, weights, "", "a PyTorch state dict file for the import figure");
ABSL_FLAG(int, list_requests, 200, "requests per list figure");
ABSL_FLAG(int, cold_models, 50, "models whose first (cold) and second Predict are timed");
ABSL_FLAG(int, imports, 200, "imports for the import figure; 0 skips it");
ABSL_FLAG(std::string, dataset, "fashion-mnist",
          "the dataset imports name (the server must have it)");
ABSL_FLAG(std::string, long_job, "", "the job whose events WatchJob replays (empty: skip)");

namespace classifier {
namespace {

namespace v1 = ::classifier::v1;
using Clock = std::chrono::steady_clock;

double Milliseconds(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return values[index];
}

void PrintLatencies(const std::string& name, const std::vector<double>& ms) {
  std::printf("%s_p50_ms: %.3f\n%s_p99_ms: %.3f\n", name.c_str(), Percentile(ms, 0.5), name.c_str(),
              Percentile(ms, 0.99));
}

void Fail(const std::string& what, const grpc::Status& status) {
  std::fprintf(stderr, "scale_bench: %s: %s\n", what.c_str(), status.error_message().c_str());
  std::exit(EXIT_FAILURE);
}

// Times `call` (a page request given the token to send; returns the next token), alternating a
// first page with pages further in.
template <typename Call>
std::vector<double> TimePages(int requests, Call call) {
  std::vector<double> ms;
  std::string token;
  for (int i = 0; i < requests; ++i) {
    const std::string send = i % 2 == 0 ? "" : token;
    const Clock::time_point start = Clock::now();
    std::string next = call(send);
    ms.push_back(Milliseconds(Clock::now() - start));
    token = next.empty() ? "" : next;
  }
  return ms;
}

// One page of 100 models after `token`; exits on an error.
v1::ListModelsResponse ModelsPage(v1::Classifier::Stub& stub, const std::string& token) {
  grpc::ClientContext context;
  v1::ListModelsRequest request;
  request.set_page_size(100);
  request.set_page_token(token);
  v1::ListModelsResponse response;
  if (grpc::Status status = stub.ListModels(&context, request, &response); !status.ok()) {
    Fail("ListModels", status);
  }
  return response;
}

int Run() {
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::Classifier::Stub> stub = v1::Classifier::NewStub(channel);

  PrintLatencies("list_models",
                 TimePages(absl::GetFlag(FLAGS_list_requests), [&](const std::string& token) {
                   return ModelsPage(*stub, token).next_page_token();
                 }));
  PrintLatencies(
      "list_jobs", TimePages(absl::GetFlag(FLAGS_list_requests), [&](const std::string& token) {
        grpc::ClientContext context;
        v1::ListJobsRequest request;
        request.set_page_size(100);
        request.set_page_token(token);
        v1::ListJobsResponse response;
        if (grpc::Status status = stub->ListJobs(&context, request, &response); !status.ok()) {
          Fail("ListJobs", status);
        }
        return response.next_page_token();
      }));

  // Cold models: spread over the registry (pages 1, 3, 5, ...), none used before.
  std::vector<std::string> model_ids;
  {
    std::string token;
    int page = 0;
    while (static_cast<int>(model_ids.size()) < absl::GetFlag(FLAGS_cold_models)) {
      const v1::ListModelsResponse response = ModelsPage(*stub, token);
      if (page++ % 2 == 0 && response.models_size() > 0) {
        model_ids.push_back(response.models(response.models_size() / 2).model_id());
      }
      token = response.next_page_token();
      if (token.empty()) break;
    }
  }
  v1::PredictRequest predict;
  predict.add_images()->mutable_raw_pixels()->assign(28 * 28, '\x80');
  std::vector<double> cold, cached;
  for (const std::string& model_id : model_ids) {
    predict.set_model_id(model_id);
    for (std::vector<double>* figures : {&cold, &cached}) {
      grpc::ClientContext context;
      v1::PredictResponse response;
      const Clock::time_point start = Clock::now();
      if (grpc::Status status = stub->Predict(&context, predict, &response); !status.ok()) {
        Fail("Predict " + model_id, status);
      }
      figures->push_back(Milliseconds(Clock::now() - start));
    }
  }
  PrintLatencies("predict_cold", cold);
  PrintLatencies("predict_cached", cached);

  if (const std::string job_id = absl::GetFlag(FLAGS_long_job); !job_id.empty()) {
    std::vector<double> get;
    for (int i = 0; i < 200; ++i) {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(job_id);
      v1::Job job;
      const Clock::time_point start = Clock::now();
      if (grpc::Status status = stub->GetJob(&context, request, &job); !status.ok()) {
        Fail("GetJob", status);
      }
      get.push_back(Milliseconds(Clock::now() - start));
    }
    std::printf("get_job_p50_ms: %.3f\n", Percentile(get, 0.5));
    for (int round = 0; round < 3; ++round) {
      grpc::ClientContext context;
      v1::WatchJobRequest request;
      request.set_job_id(job_id);
      const Clock::time_point start = Clock::now();
      auto reader = stub->WatchJob(&context, request);
      v1::JobEvent event;
      int64_t events = 0;
      while (reader->Read(&event)) ++events;
      if (grpc::Status status = reader->Finish(); !status.ok()) Fail("WatchJob", status);
      const double seconds = Milliseconds(Clock::now() - start) / 1000;
      std::printf("watch_replay_events: %lld\nwatch_replay_events_per_s: %.0f\n",
                  static_cast<long long>(events), events / seconds);
    }
  }

  if (const int imports = absl::GetFlag(FLAGS_imports); imports > 0) {
    absl::StatusOr<std::string> bytes = ReadWholeFile(absl::GetFlag(FLAGS_weights));
    if (!bytes.ok()) {
      std::fprintf(stderr, "scale_bench: --weights: %s\n", bytes.status().ToString().c_str());
      return EXIT_FAILURE;
    }
    std::vector<double> ms;
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < imports; ++i) {
      const Clock::time_point one = Clock::now();
      grpc::ClientContext context;
      v1::ImportWeightsResponse response;
      auto writer = stub->ImportWeights(&context, &response);
      v1::ImportWeightsRequest request;
      request.set_format(v1::PYTORCH_STATE_DICT);
      request.set_dataset(absl::GetFlag(FLAGS_dataset));
      request.set_data(*bytes);
      writer->Write(request);
      writer->WritesDone();
      if (grpc::Status status = writer->Finish(); !status.ok()) Fail("ImportWeights", status);
      ms.push_back(Milliseconds(Clock::now() - one));
    }
    std::printf("imports_per_s: %.1f\nimport_p50_ms: %.2f\n",
                imports / (Milliseconds(Clock::now() - start) / 1000), Percentile(ms, 0.5));
  }
  return EXIT_SUCCESS;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("measures a classifier-server over a large store (scale_bench.sh)");
  absl::ParseCommandLine(argc, argv);
  return classifier::Run();
}
