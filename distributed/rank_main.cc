// classifier-rank: one rank of a data-parallel training job on c10d. Started by torchrun
// (`torchrun --no_python ... classifier-rank ARGS`), by a Kubernetes PyTorchJob, or by hand with
// the torchrun environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE). Every rank reads the
// same request and dataset; rank 0 prints each epoch as a JSON line, writes the checkpoint after
// every epoch and, at the end, the test accuracy and the weights.
//
// Exit status: 0 trained; 1 bad input; 2 the group was lost (a rank died or never joined: run
// again, every rank resumes from --checkpoint, at any world size); 3 stopped by SIGTERM or
// SIGINT (after rank 0 wrote the checkpoint).
#include <google/protobuf/text_format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/file_util.h"
#include "distributed/gloo_collective.h"
#include "distributed/rank_environment.h"
#include "model/device.h"
#include "model/trainer.h"
#include "server/dataset_catalog.h"
#include "server/train_request.h"

ABSL_FLAG(std::string, request, "",
          "the job, as a classifier.v1.TrainRequest in protobuf text format, e.g. "
          "'dataset: \"fashion-mnist\" epochs: 2' (every rank must get the same)");
ABSL_FLAG(std::string, data_dir, "data", "the server's --data_dir: where datasets are found");
ABSL_FLAG(std::string, fashion_fallback_dir, classifier::kDefaultFashionFallbackDir,
          "where fashion-mnist is read when data_dir has none");
ABSL_FLAG(std::string, register_dataset, "",
          "NAME=PATH: the request's dataset is a registered one, in PATH (relative to "
          "--data_dir, as the server registered it)");
ABSL_FLAG(std::string, output, "", "rank 0 writes the trained weights here (a state dict)");
ABSL_FLAG(std::string, checkpoint, "",
          "rank 0 writes the run's checkpoint here after every epoch and when stopped; every "
          "rank resumes from it when it exists");
ABSL_FLAG(std::string, device, "cpu",
          "cpu, cuda, cuda:N or auto (cuda and auto: GPU LOCAL_RANK, modulo this host's GPUs)");
ABSL_FLAG(int, threads, 1, "compute threads of this rank");
ABSL_FLAG(int, join_timeout_s, 120, "seconds to wait for every rank to join");
ABSL_FLAG(int, collective_timeout_s, 300, "seconds one gradient sum may wait for the others");

namespace classifier {
namespace {

enum ExitCode { kTrained = 0, kBadInput = 1, kGroupLost = 2, kStopped = 3 };

// Turns SIGTERM and SIGINT into a flag, on a thread of its own that waits for them (so no
// handler runs inside LibTorch's or Gloo's code). The signals must be blocked in every thread:
// construct it first in main, before any other thread starts.
class StopOnSignal {
 public:
  StopOnSignal() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGUSR1);  // Only ends the waiter.
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    waiter_ = std::thread([this] {
      int signal = 0;
      sigwait(&signals_, &signal);
      if (signal != SIGUSR1) requested_ = true;
    });
  }
  ~StopOnSignal() {
    pthread_kill(waiter_.native_handle(), SIGUSR1);
    waiter_.join();
  }
  bool requested() const { return requested_; }

 private:
  sigset_t signals_;
  std::atomic<bool> requested_{false};
  std::thread waiter_;
};

class RankObserver : public TrainingObserver {
 public:
  RankObserver(int rank, int world_size, std::string checkpoint_path, const StopOnSignal& stop)
      : rank_(rank),
        world_size_(world_size),
        checkpoint_path_(std::move(checkpoint_path)),
        stop_(stop) {}

  void OnEpochEnd(const EpochStats& stats) override {
    if (rank_ != 0) return;
    std::string line = absl::StrFormat(
        "{\"epoch\": %d, \"epochs\": %d, \"train_loss\": %.6f, \"train_accuracy\": %.6f, "
        "\"images_per_second\": %.1f, \"elapsed_seconds\": %.3f, \"world_size\": %d",
        stats.epoch, stats.epochs, stats.train_loss, stats.train_accuracy, stats.images_per_second,
        stats.elapsed_seconds, world_size_);
    if (stats.validation_accuracy) {
      absl::StrAppendFormat(&line, ", \"validation_accuracy\": %.6f", *stats.validation_accuracy);
    }
    std::cout << line << "}" << std::endl;
  }
  bool StopRequested() override { return stop_.requested(); }
  void OnCheckpoint(const TrainingCheckpoint& checkpoint) override {
    if (rank_ != 0 || checkpoint_path_.empty()) return;
    if (absl::Status status = WriteFileAtomically(checkpoint_path_, checkpoint.bytes);
        !status.ok()) {
      std::cerr << "rank 0: writing the checkpoint: " << status.message() << std::endl;
    }
  }

 private:
  const int rank_;
  const int world_size_;
  const std::string checkpoint_path_;
  const StopOnSignal& stop_;
};

int Fail(const absl::Status& status, int rank, ExitCode code) {
  std::cerr << "classifier-rank " << rank << ": " << status.message() << std::endl;
  return code;
}

int RunRank(const StopOnSignal& stop) {
  absl::StatusOr<RankEnvironment> environment =
      ReadRankEnvironment([](const char* name) { return std::getenv(name); });
  if (!environment.ok()) return Fail(environment.status(), -1, kBadInput);
  const int rank = environment->rank;

  v1::TrainRequest request;
  if (!google::protobuf::TextFormat::ParseFromString(absl::GetFlag(FLAGS_request), &request)) {
    return Fail(absl::InvalidArgumentError("--request is not a TrainRequest in text format"), rank,
                kBadInput);
  }
  if (request.has_sweep()) {
    return Fail(absl::InvalidArgumentError("sweep: a sweep's trials are not run distributed"), rank,
                kBadInput);
  }
  SetComputeThreads(absl::GetFlag(FLAGS_threads));
  DatasetCatalog catalog(absl::GetFlag(FLAGS_data_dir), absl::GetFlag(FLAGS_fashion_fallback_dir));
  if (const std::string registered = absl::GetFlag(FLAGS_register_dataset); !registered.empty()) {
    const size_t equals = registered.find('=');
    if (equals == std::string::npos) {
      return Fail(absl::InvalidArgumentError("--register_dataset must be NAME=PATH"), rank,
                  kBadInput);
    }
    if (absl::StatusOr<DatasetInfo> info =
            catalog.Register(registered.substr(0, equals), registered.substr(equals + 1));
        !info.ok()) {
      return Fail(info.status(), rank, kBadInput);
    }
  }
  absl::StatusOr<std::string> device =
      ResolveRankDevice(absl::GetFlag(FLAGS_device), environment->local_rank);
  if (!device.ok()) return Fail(device.status(), rank, kBadInput);
  // No registry here: a fine-tuning's weights reach ranks 1.. from rank 0 (the server's own
  // worker), with the rest of its starting state, when the run starts.
  absl::StatusOr<TrainPlan> plan =
      PlanTraining(request, catalog, *device, /*registry=*/nullptr,
                   rank == 0 ? InitFromModel::kFromRegistry : InitFromModel::kFromRankZero);
  if (!plan.ok()) return Fail(plan.status(), rank, kBadInput);
  absl::StatusOr<std::shared_ptr<const Dataset>> train = catalog.Load(plan->dataset, Split::kTrain);
  if (!train.ok()) return Fail(train.status(), rank, kBadInput);

  JoinOptions join;
  join.join_timeout = std::chrono::seconds(absl::GetFlag(FLAGS_join_timeout_s));
  join.collective_timeout = std::chrono::seconds(absl::GetFlag(FLAGS_collective_timeout_s));
  absl::StatusOr<std::unique_ptr<GlooCollective>> group = GlooCollective::Join(*environment, join);
  if (!group.ok()) {
    // A port in use is this rank's configuration; anything else may pass on a retry.
    return Fail(
        group.status(), rank,
        group.status().code() == absl::StatusCode::kFailedPrecondition ? kBadInput : kGroupLost);
  }
  // One rank alone trains as the server's single process does (bit for bit).
  absl::StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(**train, plan->options, environment->world_size > 1 ? group->get() : nullptr);
  if (!trainer.ok()) return Fail(trainer.status(), rank, kBadInput);
  const std::string checkpoint_path = absl::GetFlag(FLAGS_checkpoint);
  if (!checkpoint_path.empty()) {
    std::ifstream file(checkpoint_path, std::ios::binary);
    if (file) {
      std::ostringstream bytes;
      bytes << file.rdbuf();
      if (absl::Status status = (*trainer)->Restore(bytes.str()); !status.ok()) {
        return Fail(status, rank, kBadInput);
      }
    }
  }
  RankObserver observer(rank, environment->world_size, checkpoint_path, stop);
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  if (!model.ok()) {
    const absl::StatusCode code = model.status().code();
    return Fail(model.status(), rank,
                code == absl::StatusCode::kCancelled     ? kStopped
                : code == absl::StatusCode::kUnavailable ? kGroupLost
                                                         : kBadInput);
  }
  const GlooCollective& sums = **group;
  std::cerr << absl::StrFormat("{\"rank\": %d, \"allreduces\": %d, \"allreduce_seconds\": %.6f}",
                               rank, sums.sums(), sums.seconds_in_sums())
            << std::endl;
  if (rank != 0) return kTrained;
  absl::StatusOr<std::shared_ptr<const Dataset>> test = catalog.Load(plan->dataset, Split::kTest);
  if (!test.ok()) return Fail(test.status(), rank, kBadInput);
  absl::StatusOr<EvaluationResult> evaluation = (*model)->Evaluate(**test);
  if (!evaluation.ok()) return Fail(evaluation.status(), rank, kBadInput);
  std::cout << absl::StrFormat("{\"test_accuracy\": %.6f, \"test_loss\": %.6f, \"world_size\": %d}",
                               evaluation->accuracy, evaluation->loss, environment->world_size)
            << std::endl;
  if (const std::string output = absl::GetFlag(FLAGS_output); !output.empty()) {
    absl::StatusOr<std::string> weights = (*model)->ToStateDictBytes();
    if (!weights.ok()) return Fail(weights.status(), rank, kBadInput);
    if (absl::Status status = WriteFileAtomically(output, *weights); !status.ok()) {
      return Fail(status, rank, kBadInput);
    }
  }
  return kTrained;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  const classifier::StopOnSignal stop;  // First: before any thread starts.
  absl::SetProgramUsageMessage(
      "one rank of a data-parallel training job; started by torchrun --no_python or with "
      "MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE set");
  absl::ParseCommandLine(argc, argv);
  return classifier::RunRank(stop);
}
