// trainer_bench: the service's training loop (model/'s Trainer) run in-process, without gRPC,
// the job queue or the event log: seconds per epoch and test accuracy. bench/train_bench.sh
// runs it beside seed_train.py and the real server; it is also the short program to profile
// (perf record -g -- trainer_bench --limit=12000). Prints figures; never a test.
//
// Compiled a second time as rank_bench (CLASSIFIER_BENCH_RANKS, where distributed/ is built):
// the same loop as one rank of a data-parallel run on c10d, started by torchrun (`torchrun
// --no-python --nproc_per_node=2 rank_bench ...`) or with its environment. Rank 0 prints the
// epochs (the whole world's images per second) and the evaluation; every rank prints its
// all-reduces and the time spent in them. bench/gpu/gpu_check.sh runs it on a GPU, where
// classifier-rank (which needs the server's libraries) is not built.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "base/dataset.h"
#include "base/image.h"
#include "model/device.h"
#include "model/network.h"
#include "model/trainer.h"
#ifdef CLASSIFIER_BENCH_RANKS
#include "distributed/gloo_collective.h"
#include "distributed/rank_environment.h"
#endif

ABSL_FLAG(
    std::string, data_dir, "/usr/share/datasets/fashion-mnist",
    "folder holding the four official IDX files (train-images-idx3-ubyte, ...), plain or .gz");
ABSL_FLAG(int, epochs, 1, "epochs to train");
ABSL_FLAG(int, batch_size, 60, "images per batch (the tutorial's 60)");
ABSL_FLAG(double, learning_rate, 1e-3, "Adam's learning rate (the tutorial's 1e-3)");
ABSL_FLAG(uint64_t, seed, 0, "shuffling and initialisation seed");
ABSL_FLAG(int, threads, 1, "LibTorch compute threads (0 = LibTorch's default)");
ABSL_FLAG(int64_t, limit, 0, "train on the first N images only (0 = all): short profiles");
ABSL_FLAG(bool, evaluate, true, "measure test accuracy after training");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda, cuda:N or auto");
ABSL_FLAG(bool, cuda_graphs, true,
          "on CUDA, replay each full batch's step as a recorded CUDA graph (false: eager)");
ABSL_FLAG(double, dropout, 0, "dropout before the classifier (0 = none): its per-batch masks");
ABSL_FLAG(double, rotation_degrees, 0,
          "augmentation: each image turned by up to this many degrees (0 = none)");
ABSL_FLAG(double, predict_seconds, 0,
          "after the evaluation, time the trained model's in-process Predict "
          "(TrainedModel::PredictProbabilities on test images) at batch 1 and 64 for about this "
          "long each (0 = not)");

namespace classifier {
namespace {

// Prints one line per epoch in the format bench/train_bench.sh parses.
class PrintingObserver : public TrainingObserver {
 public:
  PrintingObserver(int64_t images, bool prints) : images_(images), prints_(prints) {}
  void OnEpochEnd(const EpochStats& stats) override {
    if (!prints_) return;
    // The same figure the service reports: the epoch's images over its images_per_second.
    const double seconds = static_cast<double>(images_) / stats.images_per_second;
    std::printf("epoch %d/%d %.3fs %.0f img/s loss %.4f acc %.2f%%\n", stats.epoch, stats.epochs,
                seconds, stats.images_per_second, stats.train_loss, 100 * stats.train_accuracy);
    std::fflush(stdout);
  }

 private:
  const int64_t images_;
  const bool prints_;  // Only one rank of a data-parallel run prints.
};

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `dir`/`name`, or `dir`/`name`.gz when only that exists.
std::string IdxPath(const std::string& dir, const std::string& name) {
  const std::string plain = dir + "/" + name;
  return access(plain.c_str(), R_OK) == 0 ? plain : plain + ".gz";
}

struct PredictFigures {
  double images_per_second = 0;
  double seconds_per_call = 0;
  int64_t calls = 0;
};

// Calls model.PredictProbabilities on `batch` consecutive test images at a time (wrapping
// round) until `seconds` have passed; the first call, which allocates, is not timed.
absl::StatusOr<PredictFigures> TimePredict(const TrainedModel& model, const Dataset& test,
                                           int64_t batch, double seconds) {
  const int64_t pixels_per_image = test.image_size();
  std::vector<float> pixels(static_cast<size_t>(batch * pixels_per_image));
  int64_t next = 0;
  auto fill = [&] {
    for (int64_t i = 0; i < batch; ++i, next = (next + 1) % test.size()) {
      for (int64_t p = 0; p < pixels_per_image; ++p) {
        pixels[static_cast<size_t>(i * pixels_per_image + p)] =
            PixelToUnit(test.pixels[static_cast<size_t>(next * pixels_per_image + p)]);
      }
    }
  };
  fill();
  absl::StatusOr<std::vector<float>> warm = model.PredictProbabilities(pixels, batch);
  if (!warm.ok()) return warm.status();
  PredictFigures figures;
  double in_calls = 0;
  const double start = MonotonicSeconds();
  while (MonotonicSeconds() - start < seconds) {
    fill();  // Outside the timed call: only the forward is measured.
    const double call_start = MonotonicSeconds();
    absl::StatusOr<std::vector<float>> probabilities = model.PredictProbabilities(pixels, batch);
    in_calls += MonotonicSeconds() - call_start;
    if (!probabilities.ok()) return probabilities.status();
    ++figures.calls;
  }
  figures.seconds_per_call = in_calls / static_cast<double>(figures.calls);
  figures.images_per_second = static_cast<double>(batch) / figures.seconds_per_call;
  return figures;
}

int Main() {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<Dataset> train = LoadIdxDataset(IdxPath(dir, "train-images-idx3-ubyte"),
                                                 IdxPath(dir, "train-labels-idx1-ubyte"));
  if (!train.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", train.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  const int64_t limit = absl::GetFlag(FLAGS_limit);
  if (limit > 0 && limit < train->size()) {
    train->pixels.resize(static_cast<size_t>(limit * train->image_size()));
    train->labels.resize(static_cast<size_t>(limit));
  }

  const int threads = absl::GetFlag(FLAGS_threads);
  SetComputeThreads(threads);
  TrainOptions options;
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.learning_rate = absl::GetFlag(FLAGS_learning_rate);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.device = absl::GetFlag(FLAGS_device);
  options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  options.architecture.dropout = absl::GetFlag(FLAGS_dropout);
  options.augmentation.rotation_degrees = absl::GetFlag(FLAGS_rotation_degrees);
  std::printf(
      "trainer_bench: %lld training images from %s, batch %d, Adam %g, threads %d, device %s, "
      "cuda_graphs %d, dropout %g, rotation %g\n",
      static_cast<long long>(train->size()), dir.c_str(), options.batch_size, options.learning_rate,
      threads, options.device.c_str(), options.cuda_graphs ? 1 : 0, options.architecture.dropout,
      options.augmentation.rotation_degrees);
  std::fflush(stdout);

  // As the server does at its start: the device's one-time start is not a job's.
  const double warm_up_start = MonotonicSeconds();
#ifdef CLASSIFIER_BENCH_RANKS
  const absl::StatusOr<RankEnvironment> environment =
      ReadRankEnvironment([](const char* name) { return std::getenv(name); });
  if (!environment.ok()) {
    std::fprintf(stderr, "rank_bench: %s\n", environment.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  const int rank = environment->rank;
  const absl::StatusOr<std::string> device =
      ResolveRankDevice(options.device, environment->local_rank);
#else
  const int rank = 0;
  const absl::StatusOr<std::string> device = ResolveDevice(options.device);
#endif
  const absl::Status started = device.ok() ? WarmUpDevice(*device) : device.status();
  if (!started.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", started.ToString().c_str());
    return EXIT_FAILURE;
  }
  std::printf("rank %d: device %s, device start %.3fs\n", rank, device->c_str(),
              MonotonicSeconds() - warm_up_start);
  options.device = *device;
  Collective* collective = nullptr;
#ifdef CLASSIFIER_BENCH_RANKS
  absl::StatusOr<std::unique_ptr<GlooCollective>> group =
      GlooCollective::Join(*environment, JoinOptions{});
  if (!group.ok()) {
    std::fprintf(stderr, "rank_bench: %s\n", group.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  if (environment->world_size > 1) collective = group->get();  // One rank trains alone.
#endif
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*train, options, collective);
  if (!trainer.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", trainer.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  // Read before the clock starts: the timed part is training and evaluation, not file reads.
  absl::StatusOr<Dataset> test = LoadIdxDataset(IdxPath(dir, "t10k-images-idx3-ubyte"),
                                                IdxPath(dir, "t10k-labels-idx1-ubyte"));
  if (absl::GetFlag(FLAGS_evaluate) && !test.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", test.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  PrintingObserver observer(train->size(), /*prints=*/rank == 0);
  // CLOCK_MONOTONIC seconds (std::chrono::steady_clock on Linux): with `perf record -k
  // CLOCK_MONOTONIC`, `perf report --time START,END` keeps the training loop only.
  const double training_start = MonotonicSeconds();
  std::printf("training from monotonic %.6f\n", training_start);
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  std::printf("training until monotonic %.6f\n", MonotonicSeconds());
  if (!model.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", model.status().ToString().c_str());
    return EXIT_FAILURE;
  }
#ifdef CLASSIFIER_BENCH_RANKS
  const double trained_seconds = MonotonicSeconds() - training_start;
  std::printf("rank %d of %d: %lld all-reduces, %.3fs in them (%.3f ms each, %.1f%% of %.3fs)\n",
              rank, environment->world_size, static_cast<long long>((*group)->sums()),
              (*group)->seconds_in_sums(),
              1e3 * (*group)->seconds_in_sums() / std::max<int64_t>((*group)->sums(), 1),
              100 * (*group)->seconds_in_sums() / trained_seconds, trained_seconds);
  std::fflush(stdout);
#endif
  if (!absl::GetFlag(FLAGS_evaluate) || rank != 0) return EXIT_SUCCESS;

  absl::StatusOr<EvaluationResult> result = (*model)->Evaluate(*test);
  if (!result.ok()) {
    std::fprintf(stderr, "trainer_bench: %s\n", result.status().ToString().c_str());
    return EXIT_FAILURE;
  }
  std::printf("test accuracy %.4f loss %.4f (%lld images)\n", result->accuracy, result->loss,
              static_cast<long long>(result->count));
  // The GPU target of issue 5: every epoch and the evaluation, data already in memory.
  std::printf("training and evaluation %.3fs\n", MonotonicSeconds() - training_start);
  const double predict_seconds = absl::GetFlag(FLAGS_predict_seconds);
  if (predict_seconds <= 0) return EXIT_SUCCESS;
  for (const int64_t batch : {int64_t{1}, int64_t{64}}) {
    const absl::StatusOr<PredictFigures> figures =
        TimePredict(**model, *test, batch, predict_seconds);
    if (!figures.ok()) {
      std::fprintf(stderr, "trainer_bench: %s\n", figures.status().ToString().c_str());
      return EXIT_FAILURE;
    }
    std::printf("predict batch %lld: %.0f img/s, %.1f us per call (%lld calls)\n",
                static_cast<long long>(batch), figures->images_per_second,
                1e6 * figures->seconds_per_call, static_cast<long long>(figures->calls));
  }
  return EXIT_SUCCESS;
}

}  // namespace
}  // namespace classifier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "The service's training loop in-process: seconds per epoch and test accuracy.\n"
      "  trainer_bench [--data_dir=/usr/share/datasets/fashion-mnist] [--epochs=1] "
      "[--threads=1]");
  absl::ParseCommandLine(argc, argv);
  // Off the main thread, as in the server (its worker and inference threads): glibc trims the
  // main thread's heap when LibTorch frees a large activation and faults it back in at the
  // next allocation, which halves the forward's speed at batch 64 on the main thread.
  int status = EXIT_FAILURE;
  std::thread worker([&status] { status = classifier::Main(); });
  worker.join();
  return status;
}
