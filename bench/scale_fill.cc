// scale_fill: puts many models and finished jobs into a state directory through the store's
// bulk path (Store::PutModels / PutJobs: thousands of rows per transaction), for
// bench/scale_bench.sh. Registering 100,000 models through ImportWeights would take longer than
// the rest of the benchmark; the rows written here are the ones the server itself writes: each
// model has its own weight file (a copy of --weights), its SHA-256 and architecture, trained
// figures on the test split with a confusion matrix; each job has a realistic event log
// (queued, started, a progress report and an epoch end per epoch, a checkpoint, finished).
// One job has a long log (--long_job_events) for the WatchJob replay figure.
//
// Not a test and not part of the service: a benchmark's set-up, run on a stopped server's
// state directory.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/file_util.h"
#include "base/metrics.h"
#include "google/protobuf/util/time_util.h"
#include "model/network.h"
#include "server/job.h"
#include "server/store.h"

ABSL_FLAG(std::string, state_dir, "", "the server's --state_dir (created if missing)");
ABSL_FLAG(std::string, weights, "", "a PyTorch state dict file: every model's weights");
ABSL_FLAG(int, models, 1000, "models to add");
ABSL_FLAG(int, jobs, 100, "finished jobs to add");
ABSL_FLAG(int, long_job_events, 10000,
          "events of one more finished job (100 epochs x 100 progress reports by default); 0 "
          "adds none");
ABSL_FLAG(std::string, dataset, "mnist", "the dataset the models and jobs name");

namespace classifier {
namespace {

constexpr int kBatchRows = 5000;  // Rows per transaction.

google::protobuf::Timestamp At(absl::Time time) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(time));
}

EvaluationResult TrainedFigures(int classes) {
  std::vector<std::vector<int64_t>> confusion(classes, std::vector<int64_t>(classes, 0));
  for (int c = 0; c < classes; ++c) {
    confusion[c][c] = 980;
    confusion[c][(c + 1) % classes] = 20;
  }
  return MetricsFromConfusion(std::move(confusion), /*loss_sum=*/450.0);
}

// A finished job of `epochs` epochs with `reports` progress reports per epoch.
StoredJob FinishedJob(const std::string& job_id, const std::string& dataset, absl::Time created,
                      int epochs, int reports, const std::string& model_id) {
  StoredJob job;
  job.job_id = job_id;
  job.request.set_dataset(dataset);
  job.request.set_epochs(epochs);
  job.request.set_batch_size(60);
  job.request.set_learning_rate(1e-3);
  absl::Time time = created;
  auto add = [&](v1::JobEvent event) {
    event.set_job_id(job_id);
    event.set_sequence(static_cast<int64_t>(job.events.size()) + 1);
    *event.mutable_time() = At(time);
    time += absl::Milliseconds(100);
    job.events.push_back(std::move(event));
  };
  v1::JobEvent event;
  event.mutable_queued()->set_position(0);
  add(event);
  event.Clear();
  event.mutable_started()->set_device("cpu");
  event.mutable_started()->set_train_images(60000);
  event.mutable_started()->set_epochs(epochs);
  add(event);
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    for (int report = 1; report <= reports; ++report) {
      event.Clear();
      v1::JobEvent::Progress* progress = event.mutable_progress();
      progress->set_epoch(epoch);
      progress->set_epochs(epochs);
      progress->set_batch(report * 10);
      progress->set_batches(reports * 10);
      progress->set_train_loss(0.1);
      progress->set_train_accuracy(0.97);
      progress->set_images_per_second(20000);
      add(event);
    }
    event.Clear();
    v1::JobEvent::EpochEnd* end = event.mutable_epoch_end();
    end->set_epoch(epoch);
    end->set_epochs(epochs);
    end->set_train_loss(0.1);
    end->set_train_accuracy(0.97);
    add(event);
  }
  event.Clear();
  event.mutable_checkpoint_saved()->set_epoch(epochs);
  add(event);
  event.Clear();
  v1::JobEvent::Finished* finished = event.mutable_finished();
  finished->set_state(v1::JOB_STATE_SUCCEEDED);
  finished->set_model_id(model_id);
  finished->mutable_test_metrics()->set_accuracy(0.98);
  finished->mutable_test_metrics()->set_count(10000);
  finished->set_epochs_completed(epochs);
  add(event);
  // Its summary, as the server records it with the final event: the snapshot Job derives.
  job.summary =
      Job(StoredJob{job.job_id, job.request, std::nullopt, job.events, "", "", 0}, nullptr)
          .Snapshot();
  return job;
}

int Fill() {
  const std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  const std::string dataset = absl::GetFlag(FLAGS_dataset);
  if (state_dir.empty()) {
    std::fprintf(stderr, "scale_fill: --state_dir is required\n");
    return EXIT_FAILURE;
  }
  absl::StatusOr<std::string> weights = ReadWholeFile(absl::GetFlag(FLAGS_weights));
  if (!weights.ok()) {
    std::fprintf(stderr, "scale_fill: --weights: %s\n", weights.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  absl::StatusOr<Architecture> architecture = InferArchitecture(*weights);
  if (!architecture.ok()) {
    std::fprintf(stderr, "scale_fill: --weights: %s\n", architecture.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  absl::StatusOr<std::unique_ptr<Store>> store =
      Store::Open(absl::StrCat(state_dir, "/classifier.db"));
  if (!store.ok()) {
    std::fprintf(stderr, "scale_fill: %s\n", store.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  const std::string models_dir = absl::StrCat(state_dir, "/models");
  std::filesystem::create_directories(models_dir);
  const std::string sha256 = Sha256Hex(*weights);
  const EvaluationResult figures = TrainedFigures(architecture->num_classes);
  const int model_count = absl::GetFlag(FLAGS_models);
  const int job_count = absl::GetFlag(FLAGS_jobs);
  // Spread over the last 30 days, oldest first, as a service that ran that long would have them.
  const absl::Time start = absl::Now() - absl::Hours(24 * 30);
  const absl::Duration model_step = absl::Hours(24 * 30) / std::max(1, model_count);
  std::vector<ModelRecord> batch;
  for (int i = 0; i < model_count; ++i) {
    ModelRecord record;
    record.model_id = absl::StrFormat("model-%012x", 0x5ca1e0000000ULL + i);
    // Every tenth model came from a job; the rest were imported (no job).
    if (i % 10 == 0 && i / 10 < job_count)
      record.job_id = absl::StrFormat("job-%012x", 0x5ca1e0000000ULL + i / 10);
    record.dataset = dataset;
    record.created = start + model_step * i;
    record.test_metrics = figures;
    record.weights_path = absl::StrCat(models_dir, "/", record.model_id, ".pth");
    record.size_bytes = static_cast<int64_t>(weights->size());
    record.sha256 = sha256;
    record.architecture = *architecture;
    // Plain writes: the one sync the bulk path needs is the file system's, at the end.
    std::ofstream(record.weights_path, std::ios::binary) << *weights;
    batch.push_back(std::move(record));
    if (static_cast<int>(batch.size()) == kBatchRows || i + 1 == model_count) {
      if (absl::Status put = (*store)->PutModels(batch); !put.ok()) {
        std::fprintf(stderr, "scale_fill: %s\n", put.ToString().c_str());
        return EXIT_FAILURE;
      }
      batch.clear();
    }
  }
  std::vector<StoredJob> jobs;
  const absl::Duration job_step = absl::Hours(24 * 30) / std::max(1, job_count);
  const int long_events = absl::GetFlag(FLAGS_long_job_events);
  for (int j = 0; j < job_count + (long_events > 0 ? 1 : 0); ++j) {
    const bool long_job = j == job_count;
    const std::string job_id = absl::StrFormat("job-%012x", 0x5ca1e0000000ULL + j);
    // The long job: 100 epochs, long_events / 100 - 1 reports each (+ its epoch end).
    jobs.push_back(FinishedJob(job_id, dataset, start + job_step * j, long_job ? 100 : 10,
                               long_job ? std::max(1, long_events / 100 - 1) : 1,
                               absl::StrFormat("model-%012x", 0x5ca1e0000000ULL + j * 10)));
    if (static_cast<int>(jobs.size()) == kBatchRows / 10 ||
        j + 1 == job_count + (long_events > 0 ? 1 : 0)) {
      if (absl::Status put = (*store)->PutJobs(jobs); !put.ok()) {
        std::fprintf(stderr, "scale_fill: %s\n", put.ToString().c_str());
        return EXIT_FAILURE;
      }
      jobs.clear();
    }
  }
  std::printf("scale_fill: %d models, %d jobs%s in %s\n", model_count, job_count,
              long_events > 0 ? absl::StrCat(" + 1 of ", long_events, " events").c_str() : "",
              state_dir.c_str());
  return EXIT_SUCCESS;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fills a state directory with models and jobs (bench/scale_bench.sh)");
  absl::ParseCommandLine(argc, argv);
  return classifier::Fill();
}
