#include "model/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/dataset.h"
#include "model/network.h"

namespace classifier {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;

// Four easy classes: a bright 10x10 square in one quadrant, faint noise elsewhere.
Dataset MakeQuadrants(int64_t count, uint32_t seed) {
  Dataset dataset;
  dataset.rows = kSide;
  dataset.cols = kSide;
  dataset.num_classes = 4;
  dataset.pixels.resize(count * kPixels);
  dataset.labels.resize(count);
  uint32_t state = seed;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return state >> 24;
  };
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(next() % 4);
    dataset.labels[i] = static_cast<uint8_t>(label);
    uint8_t* image = dataset.pixels.data() + i * kPixels;
    for (int p = 0; p < kPixels; ++p) image[p] = static_cast<uint8_t>(next() % 40);
    const int top = (label / 2) * 14 + 2 + static_cast<int>(next() % 3);
    const int left = (label % 2) * 14 + 2 + static_cast<int>(next() % 3);
    for (int r = top; r < top + 10; ++r) {
      for (int c = left; c < left + 10; ++c) image[r * kSide + c] = 200 + next() % 56;
    }
  }
  return dataset;
}

TrainOptions SmallOptions() {
  TrainOptions options;
  options.epochs = 3;
  options.batch_size = 20;
  options.learning_rate = 3e-3;
  options.seed = 11;
  options.architecture.num_classes = 4;
  return options;
}

// Records everything; optionally asks to stop after a number of polls.
class RecordingObserver : public TrainingObserver {
 public:
  explicit RecordingObserver(int64_t stop_after_polls = -1) : stop_after_(stop_after_polls) {}
  void OnProgress(const ProgressStats& stats) override { progress.push_back(stats); }
  void OnEpochEnd(const EpochStats& stats) override { epochs.push_back(stats); }
  bool StopRequested() override { return stop_after_ >= 0 && polls++ >= stop_after_; }

  std::vector<ProgressStats> progress;
  std::vector<EpochStats> epochs;
  int64_t polls = 0;

 private:
  const int64_t stop_after_;
};

absl::StatusOr<std::unique_ptr<TrainedModel>> Train(const Dataset& data,
                                                    const TrainOptions& options,
                                                    TrainingObserver& observer) {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  if (!trainer.ok()) return trainer.status();
  return (*trainer)->Run(observer);
}

std::string StateDict(const TrainedModel& model) {
  absl::StatusOr<std::string> bytes = model.ToStateDictBytes();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { data_ = new Dataset(MakeQuadrants(200, 5)); }
  static void TearDownTestSuite() { delete data_; }
  static Dataset* data_;
};
Dataset* TrainerTest::data_ = nullptr;

TEST_F(TrainerTest, LearnsSeparableData) {
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, SmallOptions(), observer);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(observer.epochs.size(), 3u);
  EXPECT_LT(observer.epochs.back().train_loss, observer.epochs.front().train_loss);
  EXPECT_GT(observer.epochs.back().train_accuracy, 0.9);

  absl::StatusOr<EvaluationResult> result = (*model)->Evaluate(MakeQuadrants(100, 99));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->count, 100);
  EXPECT_GT(result->accuracy, 0.9);
  EXPECT_EQ((*model)->device(), "cpu");
  EXPECT_EQ((*model)->architecture().num_classes, 4);
}

TEST_F(TrainerTest, ReportsEpochsAndEvenlySpacedProgress) {
  TrainOptions options = SmallOptions();
  options.epochs = 2;
  options.batch_size = 30;  // 7 batches, the last one of 20 images.
  options.progress_reports_per_epoch = 3;
  RecordingObserver observer;
  ASSERT_TRUE(Train(*data_, options, observer).ok());

  ASSERT_EQ(observer.progress.size(), 6u);
  std::vector<int64_t> batches;
  for (const ProgressStats& p : observer.progress) {
    batches.push_back(p.batch);
    EXPECT_EQ(p.batches, 7);
    EXPECT_EQ(p.epochs, 2);
    EXPECT_GT(p.train_loss, 0);
    EXPECT_GE(p.train_accuracy, 0);
    EXPECT_LE(p.train_accuracy, 1);
    EXPECT_GT(p.images_per_second, 0);
  }
  EXPECT_THAT(batches, ElementsAre(3, 5, 7, 3, 5, 7));
  EXPECT_EQ(observer.progress[0].epoch, 1);
  EXPECT_EQ(observer.progress[3].epoch, 2);
  // The last report of an epoch covers the whole epoch, like its end.
  EXPECT_DOUBLE_EQ(observer.progress[2].train_loss, observer.epochs[0].train_loss);
  EXPECT_DOUBLE_EQ(observer.progress[2].train_accuracy, observer.epochs[0].train_accuracy);

  ASSERT_EQ(observer.epochs.size(), 2u);
  EXPECT_EQ(observer.epochs[0].epoch, 1);
  EXPECT_EQ(observer.epochs[1].epoch, 2);
  EXPECT_EQ(observer.epochs[1].epochs, 2);
  EXPECT_GT(observer.epochs[0].eta_seconds, 0);
  EXPECT_EQ(observer.epochs[1].eta_seconds, 0);
  EXPECT_GT(observer.epochs[1].elapsed_seconds, observer.epochs[0].elapsed_seconds);
  EXPECT_GT(observer.epochs[0].images_per_second, 0);
  // Accuracy over 200 images is a multiple of 1/200.
  const double correct = observer.epochs[1].train_accuracy * 200;
  EXPECT_NEAR(correct, std::round(correct), 1e-9);
}

TEST_F(TrainerTest, MoreReportsThanBatchesReportEveryBatchOnce) {
  TrainOptions options = SmallOptions();
  options.epochs = 1;
  options.batch_size = 50;  // 4 batches.
  options.progress_reports_per_epoch = 10;
  RecordingObserver observer;
  ASSERT_TRUE(Train(*data_, options, observer).ok());
  std::vector<int64_t> batches;
  for (const ProgressStats& p : observer.progress) batches.push_back(p.batch);
  EXPECT_THAT(batches, ElementsAre(1, 2, 3, 4));
}

TEST_F(TrainerTest, SameSeedGivesBitIdenticalWeights) {
  TrainOptions options = SmallOptions();
  options.epochs = 2;
  RecordingObserver first_observer, second_observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> first = Train(*data_, options, first_observer);
  absl::StatusOr<std::unique_ptr<TrainedModel>> second = Train(*data_, options, second_observer);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(StateDict(**first), StateDict(**second));
  EXPECT_EQ(first_observer.epochs.back().train_loss, second_observer.epochs.back().train_loss);

  options.seed = 12;
  RecordingObserver other_observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> other = Train(*data_, options, other_observer);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(StateDict(**first), StateDict(**other));
}

TEST_F(TrainerTest, RunningTwiceStartsAfresh) {
  TrainOptions options = SmallOptions();
  options.epochs = 1;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok());
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> first = (*trainer)->Run(observer);
  absl::StatusOr<std::unique_ptr<TrainedModel>> second = (*trainer)->Run(observer);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(StateDict(**first), StateDict(**second));
}

TEST_F(TrainerTest, StopRequestedCancelsAtTheBatchBoundary) {
  TrainOptions options = SmallOptions();  // 10 batches an epoch.
  RecordingObserver observer(/*stop_after_polls=*/13);
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, observer);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(model.status().message(), HasSubstr("epoch 2, batch 4"));
  EXPECT_EQ(observer.epochs.size(), 1u);

  RecordingObserver at_once(/*stop_after_polls=*/0);
  model = Train(*data_, options, at_once);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(model.status().message(), HasSubstr("epoch 1, batch 1"));
}

TEST_F(TrainerTest, DivergenceIsAnInternalErrorNamingEpochAndBatch) {
  TrainOptions options = SmallOptions();
  options.learning_rate = 1e30;
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, observer);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(model.status().message(), HasSubstr("epoch 1, batch "));
  EXPECT_THAT(model.status().message(), HasSubstr("learning_rate"));
  EXPECT_TRUE(observer.epochs.empty());
}

TEST_F(TrainerTest, DivergenceInTheOnlyBatchIsCaughtAtTheEpochEnd) {
  TrainOptions options = SmallOptions();
  options.learning_rate = 1e30;
  options.batch_size = static_cast<int>(data_->size());  // One batch an epoch.
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, observer);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(model.status().message(), HasSubstr(", batch 1"));
}

TEST_F(TrainerTest, CreateRejectsBadOptionsNamingTheField) {
  struct Case {
    TrainOptions options;
    std::string field;
  };
  std::vector<Case> cases;
  auto add = [&cases](const std::string& field, auto change) {
    TrainOptions options = SmallOptions();
    change(options);
    cases.push_back({options, field});
  };
  add("epochs", [](TrainOptions& o) { o.epochs = 0; });
  add("batch_size", [](TrainOptions& o) { o.batch_size = 0; });
  add("batch_size", [](TrainOptions& o) { o.batch_size = 201; });
  add("learning_rate", [](TrainOptions& o) { o.learning_rate = 0; });
  add("learning_rate", [](TrainOptions& o) { o.learning_rate = -1e-3; });
  add("learning_rate",
      [](TrainOptions& o) { o.learning_rate = std::numeric_limits<double>::quiet_NaN(); });
  add("learning_rate",
      [](TrainOptions& o) { o.learning_rate = std::numeric_limits<double>::infinity(); });
  add("progress_reports_per_epoch", [](TrainOptions& o) { o.progress_reports_per_epoch = -1; });
  add("architecture.image_size", [](TrainOptions& o) { o.architecture.image_size = 14; });
  add("architecture.conv_channels",
      [](TrainOptions& o) { o.architecture.conv_channels = {8, 8, 8, 8, 8, 8}; });
  add("architecture.kernel_size", [](TrainOptions& o) { o.architecture.kernel_size = 2; });
  add("architecture.num_classes", [](TrainOptions& o) { o.architecture.num_classes = 3; });
  add("architecture.input_channels", [](TrainOptions& o) { o.architecture.input_channels = 3; });
  add("device", [](TrainOptions& o) { o.device = "tpu"; });
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, c.options);
    EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(trainer.status().message(), HasSubstr(c.field));
  }
  // The bounds themselves are fine.
  TrainOptions options = SmallOptions();
  options.batch_size = 200;
  EXPECT_TRUE(Trainer::Create(*data_, options).ok());
  options.batch_size = 1;
  EXPECT_TRUE(Trainer::Create(*data_, options).ok());
}

TEST_F(TrainerTest, CreateRejectsMismatchedOrEmptyData) {
  Dataset bad = MakeQuadrants(10, 1);
  bad.labels[3] = 7;  // The architecture has 4 classes.
  bad.num_classes = 4;
  TrainOptions options = SmallOptions();
  options.batch_size = 5;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(bad, options);
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(trainer.status().message(), HasSubstr("training image 3"));

  Dataset empty;
  empty.rows = kSide;
  empty.cols = kSide;
  empty.num_classes = 4;
  trainer = Trainer::Create(empty, options);
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(TrainerTest, TrainsAGeneralisedArchitecture) {
  TrainOptions options = SmallOptions();
  options.epochs = 2;
  options.architecture.conv_channels = {6};
  options.architecture.kernel_size = 5;
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, observer);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_LT(observer.epochs.back().train_loss, observer.epochs.front().train_loss);
  // Its state dict loads back into the same architecture only.
  const std::string bytes = StateDict(**model);
  EXPECT_TRUE(TrainedModel::FromStateDictBytes(bytes, options.architecture, "cpu").ok());
  EXPECT_FALSE(TrainedModel::FromStateDictBytes(bytes, Architecture(), "cpu").ok());
}

// The measurement against the tutorial, by hand (slow, and it needs the real data):
//   trainer_test --gtest_also_run_disabled_tests --gtest_filter='*Mnist*'
// On the 10,000 training images the tutorial's own Python loop reaches 97.1-97.5% over seeds
// 0-3; this trainer 96.9-97.5% over seeds 0-5 (96.90% with seed 1). Prints the figures.
TEST(MnistTrainingTest, DISABLED_ReachesTheTutorialsAccuracy) {
  const std::string dir = "/work/shared/data/mnist";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << dir << " is absent";
  absl::StatusOr<Dataset> train =
      LoadIdxDataset(dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  absl::StatusOr<Dataset> test =
      LoadIdxDataset(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(train.ok() && test.ok());
  TrainOptions options;  // The tutorial's: 10 epochs, batch 60, Adam 1e-3.
  options.seed = 1;
  class Printer : public TrainingObserver {
    void OnEpochEnd(const EpochStats& s) override {
      std::printf("epoch %d/%d loss %.4f accuracy %.4f %.0f images/s elapsed %.1fs eta %.1fs\n",
                  s.epoch, s.epochs, s.train_loss, s.train_accuracy, s.images_per_second,
                  s.elapsed_seconds, s.eta_seconds);
      std::fflush(stdout);
    }
  } printer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*train, options, printer);
  ASSERT_TRUE(model.ok()) << model.status();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<EvaluationResult> result = (*model)->Evaluate(*test);
  ASSERT_TRUE(result.ok()) << result.status();
  std::printf("test accuracy %.4f loss %.4f (evaluated in %.2fs)\n", result->accuracy, result->loss,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  EXPECT_GE(result->accuracy, 0.965);
}

}  // namespace
}  // namespace classifier
