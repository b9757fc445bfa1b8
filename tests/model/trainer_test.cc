#include "model/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "base/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/device.h"
#include "model/network.h"
#include "tests/testing/shared_data.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using testing::MakeQuadrants;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;

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
  void OnCheckpoint(const TrainingCheckpoint& checkpoint) override {
    checkpoints.push_back(checkpoint);
  }

  // The last checkpoint at an epoch boundary: what a process killed with SIGKILL mid-epoch
  // would have on disk if it persisted those only.
  const TrainingCheckpoint& LastEpochCheckpoint() const {
    for (auto it = checkpoints.rbegin(); it != checkpoints.rend(); ++it) {
      if (it->batch == 0) return *it;
    }
    ADD_FAILURE() << "no epoch-boundary checkpoint";
    return checkpoints.front();
  }

  std::vector<ProgressStats> progress;
  std::vector<EpochStats> epochs;
  std::vector<TrainingCheckpoint> checkpoints;
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

// A new trainer restored from `checkpoint` (none when empty), run with `observer`.
absl::StatusOr<std::unique_ptr<TrainedModel>> Resume(const Dataset& data,
                                                     const TrainOptions& options,
                                                     const std::string& checkpoint,
                                                     TrainingObserver& observer) {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  if (!trainer.ok()) return trainer.status();
  if (!checkpoint.empty()) {
    if (absl::Status status = (*trainer)->Restore(checkpoint); !status.ok()) return status;
  }
  return (*trainer)->Run(observer);
}

std::string StateDict(const TrainedModel& model) {
  absl::StatusOr<std::string> bytes = model.ToStateDictBytes();
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

// Reports must match bit for bit (times aside): same epochs, same sums.
void ExpectSameEpochs(const std::vector<EpochStats>& actual,
                      const std::vector<EpochStats>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].epoch, expected[i].epoch);
    EXPECT_EQ(actual[i].epochs, expected[i].epochs);
    EXPECT_EQ(actual[i].train_loss, expected[i].train_loss) << "epoch " << expected[i].epoch;
    EXPECT_EQ(actual[i].train_accuracy, expected[i].train_accuracy)
        << "epoch " << expected[i].epoch;
  }
}

void ExpectSameProgress(const std::vector<ProgressStats>& actual,
                        const std::vector<ProgressStats>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].epoch, expected[i].epoch);
    EXPECT_EQ(actual[i].batch, expected[i].batch);
    EXPECT_EQ(actual[i].train_loss, expected[i].train_loss) << "report " << i;
    EXPECT_EQ(actual[i].train_accuracy, expected[i].train_accuracy) << "report " << i;
  }
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

// SmallOptions: 10 batches an epoch, 3 epochs. Stopping after 13 polls stops before batch 4 of
// epoch 2, with 3 of its batches done.
constexpr int64_t kStopInEpoch2 = 13;

TEST_F(TrainerTest, CheckpointsAfterEveryEpochAndWhereItStopped) {
  RecordingObserver complete;
  ASSERT_TRUE(Train(*data_, SmallOptions(), complete).ok());
  ASSERT_EQ(complete.checkpoints.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(complete.checkpoints[i].epoch, i + 1);
    EXPECT_EQ(complete.checkpoints[i].batch, 0);
    EXPECT_FALSE(complete.checkpoints[i].bytes.empty());
  }

  RecordingObserver stopped(kStopInEpoch2);
  EXPECT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(stopped.checkpoints.size(), 2u);
  EXPECT_EQ(stopped.checkpoints[0].epoch, 1);
  EXPECT_EQ(stopped.checkpoints[0].batch, 0);
  EXPECT_EQ(stopped.checkpoints[1].epoch, 1);
  EXPECT_EQ(stopped.checkpoints[1].batch, 3);
  // Mid-epoch, the checkpoint also holds the epoch's permutation: 8 bytes an image.
  EXPECT_GE(stopped.checkpoints[1].bytes.size(),
            stopped.checkpoints[0].bytes.size() + 8 * data_->size());
}

// A server killed with SIGKILL in epoch 2 restarts from its last epoch checkpoint, replays
// epoch 2 and ends with the uninterrupted run's weights.
TEST_F(TrainerTest, ResumingFromTheLastEpochCheckpointGivesBitIdenticalWeights) {
  const TrainOptions options = SmallOptions();
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  RecordingObserver killed(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, options, killed).status().code(), absl::StatusCode::kCancelled);
  const TrainingCheckpoint& saved = killed.LastEpochCheckpoint();
  ASSERT_EQ(saved.epoch, 1);

  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok());
  ASSERT_TRUE((*trainer)->Restore(saved.bytes).ok());
  RecordingObserver resumed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(resumed);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));

  // Epochs 2 and 3, each once, with the uninterrupted run's figures.
  ExpectSameEpochs(resumed.epochs, {reference.epochs[1], reference.epochs[2]});
  EXPECT_GT(resumed.epochs[0].elapsed_seconds, killed.epochs[0].elapsed_seconds);
  EXPECT_EQ(resumed.epochs[1].eta_seconds, 0);
  ASSERT_EQ(resumed.checkpoints.size(), 2u);
  EXPECT_EQ(resumed.checkpoints[0].epoch, 2);
  EXPECT_EQ(resumed.checkpoints[1].epoch, 3);

  // Every Run of a restored trainer starts from the checkpoint.
  RecordingObserver again;
  absl::StatusOr<std::unique_ptr<TrainedModel>> second = (*trainer)->Run(again);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(StateDict(**second), StateDict(**uninterrupted));
}

// A server stopped with SIGTERM persists the checkpoint taken where it stopped, mid-epoch: the
// resumed run finishes that epoch (reported once, with the sums of the batches before the
// stop) and ends with the uninterrupted run's weights.
TEST_F(TrainerTest, ResumingFromTheMidEpochCheckpointGivesBitIdenticalWeights) {
  TrainOptions options = SmallOptions();
  options.progress_reports_per_epoch = 5;  // After batches 2, 4, 6, 8, 10.
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, options, stopped).status().code(), absl::StatusCode::kCancelled);
  ASSERT_EQ(stopped.checkpoints.back().batch, 3);
  ASSERT_EQ(stopped.progress.size(), 6u);  // Epoch 1's five, epoch 2's first.

  RecordingObserver resumed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model =
      Resume(*data_, options, stopped.checkpoints.back().bytes, resumed);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));

  ExpectSameEpochs(resumed.epochs, {reference.epochs[1], reference.epochs[2]});
  // Epoch 2's reports after batch 4, 6, 8 and 10, then epoch 3's: none repeated, none missing.
  ExpectSameProgress(resumed.progress, std::vector<ProgressStats>(reference.progress.begin() + 6,
                                                                  reference.progress.end()));
  EXPECT_EQ(resumed.progress.front().batch, 4);
  EXPECT_GT(resumed.epochs[0].elapsed_seconds, stopped.epochs[0].elapsed_seconds);

  // The same predictions, bit for bit.
  std::vector<float> pixels(4 * kPixels);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = data_->pixels[i] / 255.0f;
  absl::StatusOr<std::vector<float>> expected = (*uninterrupted)->PredictProbabilities(pixels, 4);
  absl::StatusOr<std::vector<float>> actual = (*model)->PredictProbabilities(pixels, 4);
  ASSERT_TRUE(expected.ok() && actual.ok());
  ASSERT_EQ(actual->size(), expected->size());
  EXPECT_EQ(std::memcmp(actual->data(), expected->data(), sizeof(float) * actual->size()), 0);
}

// A checkpoint written by an earlier build (format 1, before label_smoothing existed and the
// option list was declared once; tests/model/testdata/checkpoint_format1.ckpt, stopped at epoch
// 2 batch 3 of SmallOptions() on MakeQuadrants(200, 5)) still resumes: an interrupted job
// survives an upgrade. The end weights are compared with a small tolerance rather than bit for
// bit, because the checkpoint's first epoch ran on the machine that wrote it.
TEST_F(TrainerTest, ACheckpointOfAnEarlierBuildStillResumes) {
  const char* source_dir = std::getenv("CLASSIFIER_SOURCE_DIR");
  ASSERT_NE(source_dir, nullptr) << "ctest sets CLASSIFIER_SOURCE_DIR";
  std::ifstream file(std::string(source_dir) + "/tests/model/testdata/checkpoint_format1.ckpt",
                     std::ios::binary);
  ASSERT_TRUE(file.good());
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_EQ(bytes.size(), 65605u);

  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted =
      Train(*data_, SmallOptions(), reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();
  RecordingObserver resumed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model =
      Resume(*data_, SmallOptions(), bytes, resumed);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(resumed.epochs.size(), 2u) << "epochs 2 and 3 are left";
  EXPECT_EQ(resumed.epochs.front().epoch, 2);

  absl::StatusOr<std::vector<ParameterValues>> expected = (*uninterrupted)->Parameters();
  absl::StatusOr<std::vector<ParameterValues>> actual = (*model)->Parameters();
  ASSERT_TRUE(expected.ok() && actual.ok());
  ASSERT_EQ(actual->size(), expected->size());
  for (size_t p = 0; p < actual->size(); ++p) {
    ASSERT_EQ((*actual)[p].values.size(), (*expected)[p].values.size());
    for (size_t i = 0; i < (*actual)[p].values.size(); ++i) {
      ASSERT_NEAR((*actual)[p].values[i], (*expected)[p].values[i], 1e-4)
          << (*actual)[p].name << "[" << i << "]";
    }
  }

  // Options the old checkpoint predates must still be checked: smoothing it never had is refused.
  TrainOptions smoothing = SmallOptions();
  smoothing.label_smoothing = 0.1;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, smoothing);
  ASSERT_TRUE(trainer.ok());
  EXPECT_THAT((*trainer)->Restore(bytes).message(), HasSubstr("label_smoothing"));
}

// Stops before the first batch, at an epoch boundary (before the epoch's permutation is drawn),
// and mid-epoch, each time resuming a resumed run: still the uninterrupted run, report for
// report.
TEST_F(TrainerTest, AnyChainOfStopsAndRestoresGivesBitIdenticalWeights) {
  TrainOptions options = SmallOptions();
  options.progress_reports_per_epoch = 4;  // After batches 3, 5, 8, 10.
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  std::string checkpoint;
  std::vector<EpochStats> epochs;
  std::vector<ProgressStats> progress;
  // Polls before each stop: (epoch, batch) positions (0, 0), (1, 0), (1, 3), (2, 5), (2, 6).
  for (const int64_t stop_after : {0, 10, 3, 12, 1}) {
    RecordingObserver observer(stop_after);
    absl::StatusOr<std::unique_ptr<TrainedModel>> model =
        Resume(*data_, options, checkpoint, observer);
    ASSERT_EQ(model.status().code(), absl::StatusCode::kCancelled) << model.status();
    ASSERT_FALSE(observer.checkpoints.empty());
    checkpoint = observer.checkpoints.back().bytes;
    epochs.insert(epochs.end(), observer.epochs.begin(), observer.epochs.end());
    progress.insert(progress.end(), observer.progress.begin(), observer.progress.end());
  }
  RecordingObserver last;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Resume(*data_, options, checkpoint, last);
  ASSERT_TRUE(model.ok()) << model.status();
  epochs.insert(epochs.end(), last.epochs.begin(), last.epochs.end());
  progress.insert(progress.end(), last.progress.begin(), last.progress.end());

  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));
  ExpectSameEpochs(epochs, reference.epochs);
  ExpectSameProgress(progress, reference.progress);
}

TEST_F(TrainerTest, RestoringAFinishedRunReturnsItsModel) {
  RecordingObserver complete;
  absl::StatusOr<std::unique_ptr<TrainedModel>> trained = Train(*data_, SmallOptions(), complete);
  ASSERT_TRUE(trained.ok());
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model =
      Resume(*data_, SmallOptions(), complete.checkpoints.back().bytes, observer);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(StateDict(**model), StateDict(**trained));
  EXPECT_TRUE(observer.epochs.empty());
  EXPECT_TRUE(observer.checkpoints.empty());
}

TEST_F(TrainerTest, ProgressReportsMayChangeOnRestore) {
  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  TrainOptions options = SmallOptions();
  options.progress_reports_per_epoch = 2;  // After batches 5 and 10.
  RecordingObserver resumed;
  ASSERT_TRUE(Resume(*data_, options, stopped.checkpoints.back().bytes, resumed).ok());
  std::vector<int64_t> batches;
  for (const ProgressStats& p : resumed.progress) batches.push_back(p.batch);
  EXPECT_THAT(batches, ElementsAre(5, 10, 5, 10));
}

TEST_F(TrainerTest, RestoreRejectsBadBytesNamingTheProblem) {
  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  const std::string good = stopped.checkpoints.back().bytes;

  struct Case {
    std::string bytes;
    std::string message;
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  std::string other_version = good;
  other_version[8] = 2;
  std::string zero_payload = good;  // Header intact, payload zeroed: the checksum catches it.
  std::fill(zero_payload.begin() + 28, zero_payload.end(), '\0');
  const std::vector<Case> cases = {
      {"", "not a training checkpoint"},
      {"garbage, not a checkpoint at all", "not a training checkpoint"},
      {std::string(4096, '\xff'), "not a training checkpoint"},
      {good.substr(0, 12), "truncated"},
      {good.substr(0, good.size() / 2), "truncated"},
      {good.substr(0, good.size() - 1), "truncated"},
      {good + "x", "trailing bytes"},
      {flipped, "checksum"},
      {zero_payload, "checksum"},
      {other_version, "version 2"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, SmallOptions());
    ASSERT_TRUE(trainer.ok());
    const absl::Status status = (*trainer)->Restore(c.bytes);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
    EXPECT_THAT(status.message(), HasSubstr("training checkpoint"));
  }
}

TEST_F(TrainerTest, RestoreRejectsACheckpointOfOtherOptionsOrData) {
  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  const std::string checkpoint = stopped.checkpoints.back().bytes;

  struct Case {
    TrainOptions options;
    std::string message;
  };
  std::vector<Case> cases;
  auto add = [&cases](const std::string& message, auto change) {
    TrainOptions options = SmallOptions();
    change(options);
    cases.push_back({options, message});
  };
  add("batch_size = 20, these options have 25", [](TrainOptions& o) { o.batch_size = 25; });
  add("seed = 11, these options have 12", [](TrainOptions& o) { o.seed = 12; });
  add("epochs = 3, these options have 4", [](TrainOptions& o) { o.epochs = 4; });
  add("learning_rate", [](TrainOptions& o) { o.learning_rate = 1e-3; });
  const auto eight_eight = [](TrainOptions& o) { o.architecture.conv_channels = {8, 8}; };
  add("architecture.conv_channels = [8, 16], these options have [8, 8]", eight_eight);
  add("architecture.kernel_size", [](TrainOptions& o) { o.architecture.kernel_size = 5; });
  add("architecture.num_classes", [](TrainOptions& o) { o.architecture.num_classes = 10; });
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, c.options);
    ASSERT_TRUE(trainer.ok()) << c.message;
    const absl::Status status = (*trainer)->Restore(checkpoint);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }

  const Dataset smaller = MakeQuadrants(100, 5);
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(smaller, SmallOptions());
  ASSERT_TRUE(trainer.ok());
  absl::Status status = (*trainer)->Restore(checkpoint);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("training dataset of 200 images, this one has 100"));

  const Dataset other = MakeQuadrants(200, 6);
  trainer = Trainer::Create(other, SmallOptions());
  ASSERT_TRUE(trainer.ok());
  status = (*trainer)->Restore(checkpoint);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("other training data"));

  // A failed Restore leaves the trainer as it was: this one still starts from scratch.
  trainer = Trainer::Create(*data_, SmallOptions());
  ASSERT_TRUE(trainer.ok());
  EXPECT_FALSE((*trainer)->Restore("garbage").ok());
  RecordingObserver observer;
  ASSERT_TRUE((*trainer)->Run(observer).ok());
  EXPECT_EQ(observer.epochs.size(), 3u);
}

TEST_F(TrainerTest, StoppingAfterDivergenceIsTheDivergenceWithoutACheckpoint) {
  TrainOptions options = SmallOptions();
  options.learning_rate = 1e30;
  RecordingObserver diverged;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, diverged);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInternal);
  // The loss of batch b is found non-finite after batch b + 1 is queued; a stop polled before
  // batch b + 1 must find it too, rather than checkpoint a diverged network.
  const std::string message(model.status().message());
  const size_t at = message.find(", batch ");
  ASSERT_NE(at, std::string::npos);
  const int64_t batch = std::stoll(message.substr(at + 8));
  RecordingObserver stopped(/*stop_after_polls=*/batch);
  model = Train(*data_, options, stopped);
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInternal) << model.status();
  EXPECT_EQ(model.status().message(), message);
  EXPECT_TRUE(stopped.checkpoints.empty());
}

// The tutorial's network (the default Architecture): prints the checkpoint's size and the
// time to write and to restore one.
TEST_F(TrainerTest, TutorialNetworkCheckpointIsSmallAndQuick) {
  TrainOptions options;
  options.epochs = 1;
  options.architecture.num_classes = 10;
  class Timer : public RecordingObserver {
   public:
    void OnEpochEnd(const EpochStats& stats) override {
      RecordingObserver::OnEpochEnd(stats);
      epoch_end = std::chrono::steady_clock::now();
    }
    void OnCheckpoint(const TrainingCheckpoint& checkpoint) override {
      write_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_end).count();
      RecordingObserver::OnCheckpoint(checkpoint);
    }
    std::chrono::steady_clock::time_point epoch_end;
    double write_seconds = 0;
  } timer;
  ASSERT_TRUE(Train(*data_, options, timer).ok());
  ASSERT_EQ(timer.checkpoints.size(), 1u);
  const size_t size = timer.checkpoints[0].bytes.size();
  // Weights and Adam's two moments: 3 x 9,098 floats = 109,176 bytes, plus the generator's
  // state and the pickle's framing.
  EXPECT_GT(size, 109176u);
  EXPECT_LT(size, 140000u);

  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE((*trainer)->Restore(timer.checkpoints[0].bytes).ok());
  const double restore_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("tutorial network checkpoint: %zu bytes, written in %.2f ms, restored in %.2f ms\n",
              size, 1e3 * timer.write_seconds, 1e3 * restore_seconds);
}

// The measurement against the tutorial, by hand (slow, and it needs the real data):
//   trainer_test --gtest_also_run_disabled_tests --gtest_filter='*Mnist*'
// On the 10,000 training images the tutorial's own Python loop reaches 97.1-97.5% over seeds
// 0-3; this trainer 96.9-97.5% over seeds 0-5 (96.90% with seed 1). Prints the figures.
TEST(MnistTrainingTest, DISABLED_ReachesTheTutorialsAccuracy) {
  const std::string dir = testing::RealMnistDir();
  if (dir.empty()) GTEST_SKIP() << testing::RealMnistSkipReason();
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

// ---------------------------------------------------------------------------------------------
// Validation split, keep_best, early stopping.

TrainOptions ValidatedOptions() {
  TrainOptions options = SmallOptions();
  options.validation_fraction = 0.25;  // 50 held out, 150 trained on: 8 batches an epoch.
  return options;
}

// The images of `data` at `indices`.
Dataset Subset(const Dataset& data, const std::vector<int64_t>& indices) {
  Dataset subset;
  subset.rows = data.rows;
  subset.cols = data.cols;
  subset.num_classes = data.num_classes;
  for (const int64_t i : indices) {
    subset.pixels.insert(subset.pixels.end(), data.pixels.begin() + i * data.image_size(),
                         data.pixels.begin() + (i + 1) * data.image_size());
    subset.labels.push_back(data.labels[i]);
  }
  return subset;
}

TEST(SplitForValidationTest, IsDisjointCompleteAndSeeded) {
  const ValidationSplit split = SplitForValidation(200, 0.25, /*seed=*/7);
  EXPECT_EQ(split.validation.size(), 50u);
  EXPECT_EQ(split.train.size(), 150u);
  EXPECT_TRUE(std::is_sorted(split.train.begin(), split.train.end()));
  EXPECT_TRUE(std::is_sorted(split.validation.begin(), split.validation.end()));
  std::vector<int64_t> all = split.train;
  all.insert(all.end(), split.validation.begin(), split.validation.end());
  std::sort(all.begin(), all.end());
  for (int64_t i = 0; i < 200; ++i) ASSERT_EQ(all[i], i);  // Disjoint and complete.

  const ValidationSplit same = SplitForValidation(200, 0.25, /*seed=*/7);
  EXPECT_EQ(same.validation, split.validation);
  EXPECT_EQ(same.train, split.train);
  const ValidationSplit other = SplitForValidation(200, 0.25, /*seed=*/8);
  EXPECT_NE(other.validation, split.validation);

  const ValidationSplit none = SplitForValidation(10, 0, /*seed=*/7);
  EXPECT_TRUE(none.validation.empty());
  EXPECT_EQ(none.train.size(), 10u);
}

TEST_F(TrainerTest, ValidationIsReportedEveryEpochAndTrainsOnTheRestOnly) {
  const TrainOptions options = ValidatedOptions();
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(observer.epochs.size(), 3u);
  for (const EpochStats& epoch : observer.epochs) {
    ASSERT_TRUE(epoch.validation_loss.has_value());
    ASSERT_TRUE(epoch.validation_accuracy.has_value());
    EXPECT_GT(*epoch.validation_loss, 0);
    EXPECT_GT(*epoch.validation_accuracy, 0.25) << "no better than chance on 4 classes";
    EXPECT_LE(*epoch.validation_accuracy, 1);
  }
  // The last epoch's validation figures are the model's on the held-out images.
  const ValidationSplit split = SplitForValidation(200, 0.25, options.seed);
  absl::StatusOr<EvaluationResult> held_out = (*model)->Evaluate(Subset(*data_, split.validation));
  ASSERT_TRUE(held_out.ok());
  EXPECT_DOUBLE_EQ(held_out->accuracy, *observer.epochs.back().validation_accuracy);
  EXPECT_NEAR(held_out->loss, *observer.epochs.back().validation_loss, 1e-4);
  EXPECT_EQ((*trainer)->summary().epochs_completed, 3);
  EXPECT_FALSE((*trainer)->summary().stopped_early);

  // Without a split there are no validation figures.
  RecordingObserver plain;
  ASSERT_TRUE(Train(*data_, SmallOptions(), plain).ok());
  EXPECT_FALSE(plain.epochs.back().validation_accuracy.has_value());
}

TEST_F(TrainerTest, KeepBestReturnsTheBestEpochsWeights) {
  TrainOptions options = ValidatedOptions();
  options.keep_best = true;
  options.epochs = 4;
  options.learning_rate = 3e-2;  // Noisy enough that the last epoch need not be the best.
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(observer);
  ASSERT_TRUE(model.ok()) << model.status();
  int best_epoch = 0;
  double best = -1;
  for (const EpochStats& epoch : observer.epochs) {
    if (*epoch.validation_accuracy > best) {
      best = *epoch.validation_accuracy;
      best_epoch = epoch.epoch;
    }
  }
  const TrainingSummary& summary = (*trainer)->summary();
  EXPECT_TRUE(summary.kept_best);
  EXPECT_EQ(summary.best_epoch, best_epoch);
  EXPECT_EQ(summary.best_validation_accuracy, best);
  const ValidationSplit split = SplitForValidation(200, 0.25, options.seed);
  absl::StatusOr<EvaluationResult> held_out = (*model)->Evaluate(Subset(*data_, split.validation));
  ASSERT_TRUE(held_out.ok());
  EXPECT_DOUBLE_EQ(held_out->accuracy, best);
}

TEST_F(TrainerTest, EarlyStoppingEndsARunThatStoppedImproving) {
  TrainOptions options = ValidatedOptions();
  options.epochs = 6;
  options.learning_rate = 1e-12;  // Nothing moves: epoch 1 stays the best.
  options.early_stopping_patience = 2;
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run(observer).ok());
  EXPECT_EQ(observer.epochs.size(), 3u);
  const TrainingSummary& summary = (*trainer)->summary();
  EXPECT_TRUE(summary.stopped_early);
  EXPECT_EQ(summary.epochs_completed, 3);
  EXPECT_EQ(summary.best_epoch, 1);

  // Restored from its last checkpoint, it ends at once, stopped early again.
  RecordingObserver resumed;
  trainer = Trainer::Create(*data_, options);
  ASSERT_TRUE(trainer.ok());
  ASSERT_TRUE((*trainer)->Restore(observer.checkpoints.back().bytes).ok());
  ASSERT_TRUE((*trainer)->Run(resumed).ok());
  EXPECT_TRUE(resumed.epochs.empty());
  EXPECT_TRUE((*trainer)->summary().stopped_early);
}

TEST_F(TrainerTest, ResumingWithValidationAndKeepBestIsBitIdentical) {
  TrainOptions options = ValidatedOptions();
  options.keep_best = true;
  options.early_stopping_patience = 2;
  options.learning_rate = 3e-2;
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();

  std::string checkpoint;
  std::vector<EpochStats> epochs;
  // Mid-epoch 1, at the end of epoch 1, mid-epoch 2.
  for (const int64_t stop_after : {3, 5, 4}) {
    RecordingObserver observer(stop_after);
    absl::StatusOr<std::unique_ptr<TrainedModel>> model =
        Resume(*data_, options, checkpoint, observer);
    ASSERT_EQ(model.status().code(), absl::StatusCode::kCancelled) << model.status();
    checkpoint = observer.checkpoints.back().bytes;
    epochs.insert(epochs.end(), observer.epochs.begin(), observer.epochs.end());
  }
  RecordingObserver last;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Resume(*data_, options, checkpoint, last);
  ASSERT_TRUE(model.ok()) << model.status();
  epochs.insert(epochs.end(), last.epochs.begin(), last.epochs.end());
  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));
  ExpectSameEpochs(epochs, reference.epochs);
  ASSERT_EQ(epochs.size(), reference.epochs.size());
  for (size_t i = 0; i < epochs.size(); ++i) {
    EXPECT_EQ(epochs[i].validation_loss, reference.epochs[i].validation_loss);
    EXPECT_EQ(epochs[i].validation_accuracy, reference.epochs[i].validation_accuracy);
  }
}

TEST_F(TrainerTest, ValidationOptionsAreCheckedAndMustMatchTheCheckpoint) {
  struct BadCase {
    std::string field;
    TrainOptions options;
  };
  std::vector<BadCase> bad;
  auto add = [&bad](const std::string& field, auto change) {
    TrainOptions options = SmallOptions();
    change(options);
    bad.push_back({field, options});
  };
  add("validation_fraction", [](TrainOptions& o) { o.validation_fraction = 0.6; });
  add("validation_fraction", [](TrainOptions& o) { o.validation_fraction = -0.1; });
  add("validation_fraction",
      [](TrainOptions& o) { o.validation_fraction = std::numeric_limits<double>::quiet_NaN(); });
  add("validation_fraction", [](TrainOptions& o) { o.validation_fraction = 0.001; });
  add("keep_best", [](TrainOptions& o) { o.keep_best = true; });
  add("early_stopping_patience", [](TrainOptions& o) { o.early_stopping_patience = 2; });
  add("early_stopping_patience", [](TrainOptions& o) {
    o.validation_fraction = 0.2;
    o.early_stopping_patience = -1;
  });
  add("batch_size", [](TrainOptions& o) {
    o.validation_fraction = 0.5;
    o.batch_size = 150;
  });
  for (const BadCase& c : bad) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, c.options);
    EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(trainer.status().message(), HasSubstr(c.field));
  }

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, ValidatedOptions(), stopped).status().code(),
            absl::StatusCode::kCancelled);
  const std::string checkpoint = stopped.checkpoints.back().bytes;
  std::vector<std::pair<std::string, TrainOptions>> others;
  auto other = [&others](const std::string& message, auto change) {
    TrainOptions options = ValidatedOptions();
    change(options);
    others.emplace_back(message, options);
  };
  other("validation_fraction", [](TrainOptions& o) { o.validation_fraction = 0.2; });
  other("validation_fraction", [](TrainOptions& o) { o.validation_fraction = 0; });
  other("keep_best", [](TrainOptions& o) { o.keep_best = true; });
  other("early_stopping_patience", [](TrainOptions& o) { o.early_stopping_patience = 3; });
  for (const auto& [message, options] : others) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
    ASSERT_TRUE(trainer.ok()) << message;
    const absl::Status status = (*trainer)->Restore(checkpoint);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(status.message(), HasSubstr(message));
  }
}

// ---------------------------------------------------------------------------------------------
// Optimizers and learning-rate schedules.

TEST(LearningRateForEpochTest, FollowsTheSchedule) {
  TrainOptions options;
  options.learning_rate = 0.1;
  options.epochs = 4;
  EXPECT_EQ(LearningRateForEpoch(options, 3), 0.1);
  options.lr_schedule = LearningRateSchedule::kStep;
  options.lr_step_size = 2;
  options.lr_gamma = 0.5;
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 1), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 2), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 3), 0.05);
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 5), 0.025);
  options.lr_schedule = LearningRateSchedule::kCosine;
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 1), 0.1);
  EXPECT_DOUBLE_EQ(LearningRateForEpoch(options, 3), 0.05);
  EXPECT_LT(LearningRateForEpoch(options, 4), 0.05);
  EXPECT_GT(LearningRateForEpoch(options, 4), 0);
}

struct OptimizerCase {
  const char* name;
  OptimizerKind optimizer;
  double learning_rate;
  double momentum;
  double weight_decay;
  LearningRateSchedule schedule;
};

class OptimizerTest : public TrainerTest, public ::testing::WithParamInterface<OptimizerCase> {
 protected:
  TrainOptions Options() const {
    TrainOptions options = SmallOptions();
    options.optimizer = GetParam().optimizer;
    options.learning_rate = GetParam().learning_rate;
    options.momentum = GetParam().momentum;
    options.weight_decay = GetParam().weight_decay;
    options.lr_schedule = GetParam().schedule;
    if (options.lr_schedule == LearningRateSchedule::kStep) {
      options.lr_step_size = 2;
      options.lr_gamma = 0.5;
    }
    return options;
  }
};

TEST_P(OptimizerTest, LearnsAndResumesBitIdentically) {
  const TrainOptions options = Options();
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();
  ASSERT_EQ(reference.epochs.size(), 3u);
  EXPECT_LT(reference.epochs.back().train_loss, reference.epochs.front().train_loss);
  EXPECT_GT(reference.epochs.back().train_accuracy, 0.5);

  // Mid-epoch 1, then mid-epoch 2, then to the end (through the step schedule's first step).
  std::string checkpoint;
  std::vector<EpochStats> epochs;
  for (const int64_t stop_after : {4, 9}) {
    RecordingObserver observer(stop_after);
    ASSERT_EQ(Resume(*data_, options, checkpoint, observer).status().code(),
              absl::StatusCode::kCancelled);
    checkpoint = observer.checkpoints.back().bytes;
    epochs.insert(epochs.end(), observer.epochs.begin(), observer.epochs.end());
  }
  RecordingObserver last;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Resume(*data_, options, checkpoint, last);
  ASSERT_TRUE(model.ok()) << model.status();
  epochs.insert(epochs.end(), last.epochs.begin(), last.epochs.end());
  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));
  ExpectSameEpochs(epochs, reference.epochs);
}

INSTANTIATE_TEST_SUITE_P(
    Optimizers, OptimizerTest,
    ::testing::Values(OptimizerCase{"AdamWeightDecay", OptimizerKind::kAdam, 3e-3, 0, 1e-4,
                                    LearningRateSchedule::kNone},
                      OptimizerCase{"AdamWCosine", OptimizerKind::kAdamW, 3e-3, 0, 1e-2,
                                    LearningRateSchedule::kCosine},
                      OptimizerCase{"SgdMomentumStep", OptimizerKind::kSgd, 5e-2, 0.9, 1e-4,
                                    LearningRateSchedule::kStep},
                      OptimizerCase{"SgdPlain", OptimizerKind::kSgd, 1e-1, 0, 0,
                                    LearningRateSchedule::kNone}),
    [](const ::testing::TestParamInfo<OptimizerCase>& info) { return info.param.name; });

TEST_F(TrainerTest, OptimizerOptionsAreCheckedAndMustMatchTheCheckpoint) {
  std::vector<std::pair<std::string, TrainOptions>> bad;
  auto add = [&bad](const std::string& field, auto change) {
    TrainOptions options = SmallOptions();
    change(options);
    bad.emplace_back(field, options);
  };
  add("momentum", [](TrainOptions& o) { o.momentum = 0.9; });  // Not SGD.
  add("momentum", [](TrainOptions& o) {
    o.optimizer = OptimizerKind::kSgd;
    o.momentum = 1;
  });
  add("momentum", [](TrainOptions& o) {
    o.optimizer = OptimizerKind::kSgd;
    o.momentum = -0.1;
  });
  add("weight_decay", [](TrainOptions& o) { o.weight_decay = -1e-4; });
  add("weight_decay", [](TrainOptions& o) { o.weight_decay = 2; });
  auto step = [](TrainOptions& o) {
    o.lr_schedule = LearningRateSchedule::kStep;
    o.lr_step_size = 1;
    o.lr_gamma = 0.5;
  };
  add("lr_step_size", [&step](TrainOptions& o) {
    step(o);
    o.lr_step_size = 0;  // The trainer applies no defaults.
  });
  add("lr_gamma", [&step](TrainOptions& o) {
    step(o);
    o.lr_gamma = 0;
  });
  add("lr_gamma", [&step](TrainOptions& o) {
    step(o);
    o.lr_gamma = 1.5;
  });
  add("lr_step_size", [](TrainOptions& o) { o.lr_step_size = 2; });  // Not the STEP schedule.
  add("lr_gamma", [](TrainOptions& o) { o.lr_gamma = 0.5; });
  for (const auto& [field, options] : bad) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
    EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(trainer.status().message(), HasSubstr(field));
  }

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  const std::string checkpoint = stopped.checkpoints.back().bytes;
  std::vector<std::pair<std::string, TrainOptions>> others;
  auto other = [&others](const std::string& message, auto change) {
    TrainOptions options = SmallOptions();
    change(options);
    others.emplace_back(message, options);
  };
  other("optimizer", [](TrainOptions& o) { o.optimizer = OptimizerKind::kAdamW; });
  other("optimizer", [](TrainOptions& o) { o.optimizer = OptimizerKind::kSgd; });
  other("weight_decay", [](TrainOptions& o) { o.weight_decay = 1e-3; });
  other("lr_schedule", [](TrainOptions& o) { o.lr_schedule = LearningRateSchedule::kCosine; });
  other("lr_schedule", step);
  for (const auto& [message, options] : others) {
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
    ASSERT_TRUE(trainer.ok()) << message;
    const absl::Status status = (*trainer)->Restore(checkpoint);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(status.message(), HasSubstr(message));
  }

  // The STEP schedule's parameters must match a checkpoint of a STEP run.
  TrainOptions stepped = SmallOptions();
  step(stepped);
  RecordingObserver stopped_stepping(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, stepped, stopped_stepping).status().code(), absl::StatusCode::kCancelled);
  const std::string step_checkpoint = stopped_stepping.checkpoints.back().bytes;
  for (const auto& [message, change] : std::vector<std::pair<std::string, void (*)(TrainOptions&)>>{
           {"lr_step_size", [](TrainOptions& o) { o.lr_step_size = 2; }},
           {"lr_gamma", [](TrainOptions& o) { o.lr_gamma = 0.9; }},
           {"lr_schedule", [](TrainOptions& o) {
              o.lr_schedule = LearningRateSchedule::kNone;
              o.lr_step_size = 0;
              o.lr_gamma = 0;
            }}}) {
    TrainOptions options = stepped;
    change(options);
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, options);
    ASSERT_TRUE(trainer.ok()) << message << ": " << trainer.status();
    const absl::Status status = (*trainer)->Restore(step_checkpoint);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << message;
    EXPECT_THAT(status.message(), HasSubstr(message));
  }
  absl::StatusOr<std::unique_ptr<Trainer>> same = Trainer::Create(*data_, stepped);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE((*same)->Restore(step_checkpoint).ok());
}

// Label smoothing changes the training loss (PyTorch's definition: a confident network pays for
// the probability it leaves off the other classes), is checked, and must match on restore.
TEST_F(TrainerTest, LabelSmoothingChangesTheTrainingLossAndMustMatchTheCheckpoint) {
  // A trained network, then one epoch at a learning rate too small to move it: the epoch's mean
  // loss is the loss of those weights, with and without smoothing.
  RecordingObserver trained_observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> trained =
      Train(*data_, SmallOptions(), trained_observer);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const std::shared_ptr<const TrainedModel> weights = *std::move(trained);
  auto still_loss = [&](double label_smoothing) {
    TrainOptions options = SmallOptions();
    options.epochs = 1;
    options.learning_rate = 1e-12;
    options.initial_weights = weights;
    options.label_smoothing = label_smoothing;
    RecordingObserver observer;
    absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, observer);
    EXPECT_TRUE(model.ok()) << model.status();
    return observer.epochs.empty() ? -1.0 : observer.epochs.front().train_loss;
  };
  const double plain = still_loss(0);
  const double smoothed = still_loss(0.2);
  ASSERT_GT(plain, 0);
  EXPECT_LT(plain, 0.5) << "the network should have learnt the quadrants";
  // Smoothing 0.2 over 4 classes asks for 0.85 on the label and 0.05 elsewhere: a network that
  // puts nearly all of its probability on the label pays far more than its plain loss.
  EXPECT_GT(smoothed, plain + 0.1) << "plain " << plain << ", smoothed " << smoothed;

  TrainOptions bad = SmallOptions();
  bad.label_smoothing = 1;
  absl::StatusOr<std::unique_ptr<Trainer>> refused = Trainer::Create(*data_, bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("label_smoothing"));

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(*data_, SmallOptions(), stopped).status().code(), absl::StatusCode::kCancelled);
  TrainOptions smoothing = SmallOptions();
  smoothing.label_smoothing = 0.1;
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, smoothing);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const absl::Status restored = (*trainer)->Restore(stopped.checkpoints.back().bytes);
  EXPECT_EQ(restored.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(restored.message(), HasSubstr("label_smoothing = 0"));
}

// ---------------------------------------------------------------------------------------------
// Augmentation.

TrainOptions AugmentedOptions() {
  TrainOptions options = SmallOptions();
  options.augmentation.rotation_degrees = 10;
  options.augmentation.translation = 0.05;
  options.augmentation.scale_min = 0.95;
  options.augmentation.scale_max = 1.05;
  options.augmentation.horizontal_flip = true;
  return options;
}

TEST_F(TrainerTest, AugmentedTrainingLearnsIsSeededAndResumesBitIdentically) {
  const TrainOptions options = AugmentedOptions();
  RecordingObserver reference;
  absl::StatusOr<std::unique_ptr<TrainedModel>> uninterrupted = Train(*data_, options, reference);
  ASSERT_TRUE(uninterrupted.ok()) << uninterrupted.status();
  EXPECT_GT(reference.epochs.back().train_accuracy, 0.5);

  // Augmentation changes the run; the same seed gives the same one.
  RecordingObserver plain;
  absl::StatusOr<std::unique_ptr<TrainedModel>> unaugmented = Train(*data_, SmallOptions(), plain);
  ASSERT_TRUE(unaugmented.ok());
  EXPECT_NE(StateDict(**unaugmented), StateDict(**uninterrupted));
  RecordingObserver again;
  absl::StatusOr<std::unique_ptr<TrainedModel>> repeated = Train(*data_, options, again);
  ASSERT_TRUE(repeated.ok());
  EXPECT_EQ(StateDict(**repeated), StateDict(**uninterrupted));

  std::string checkpoint;
  std::vector<EpochStats> epochs;
  for (const int64_t stop_after : {4, 9}) {
    RecordingObserver observer(stop_after);
    ASSERT_EQ(Resume(*data_, options, checkpoint, observer).status().code(),
              absl::StatusCode::kCancelled);
    checkpoint = observer.checkpoints.back().bytes;
    epochs.insert(epochs.end(), observer.epochs.begin(), observer.epochs.end());
  }
  RecordingObserver last;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Resume(*data_, options, checkpoint, last);
  ASSERT_TRUE(model.ok()) << model.status();
  epochs.insert(epochs.end(), last.epochs.begin(), last.epochs.end());
  EXPECT_EQ(StateDict(**model), StateDict(**uninterrupted));
  ExpectSameEpochs(epochs, reference.epochs);

  // A checkpoint of other augmentation is refused, naming the field.
  for (const auto& [field, change] : std::vector<std::pair<std::string, void (*)(TrainOptions&)>>{
           {"augmentation.rotation_degrees",
            [](TrainOptions& o) { o.augmentation.rotation_degrees = 5; }},
           {"augmentation.translation", [](TrainOptions& o) { o.augmentation.translation = 0; }},
           {"augmentation.scale_max", [](TrainOptions& o) { o.augmentation.scale_max = 1.1; }},
           {"augmentation.horizontal_flip",
            [](TrainOptions& o) { o.augmentation.horizontal_flip = false; }},
           {"augmentation.vertical_flip",
            [](TrainOptions& o) { o.augmentation.vertical_flip = true; }}}) {
    TrainOptions other = options;
    change(other);
    absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, other);
    ASSERT_TRUE(trainer.ok()) << field;
    const absl::Status status = (*trainer)->Restore(checkpoint);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(status.message(), HasSubstr(field));
  }
  TrainOptions bad = options;
  bad.augmentation.rotation_degrees = 400;
  EXPECT_THAT(Trainer::Create(*data_, bad).status().message(),
              HasSubstr("augmentation.rotation_degrees"));
}

// On a GPU, full batches replay a recorded CUDA graph (TrainOptions::cuda_graphs) with Adam's
// arithmetic on the device: the run learns as the eager one does, to float rounding (cuDNN's
// kernels are not bitwise reproducible, so the figures are compared with a tolerance), and a
// run stopped mid-epoch resumes from its checkpoint, moments included. 210 images in batches of
// 20: three eager steps, the recording, replays, and a last partial batch stepped eagerly with
// the recording's gradients. Skipped on a machine without CUDA.
TEST(CudaGraphTrainingTest, LearnsAndResumesLikeEagerSteps) {
  if (!ResolveDevice("cuda").ok()) GTEST_SKIP() << "no CUDA device";
  const Dataset data = MakeQuadrants(210, 5);
  TrainOptions options = SmallOptions();
  options.device = "cuda";
  options.cuda_graphs = false;
  RecordingObserver eager;
  absl::StatusOr<std::unique_ptr<TrainedModel>> eager_model = Train(data, options, eager);
  ASSERT_TRUE(eager_model.ok()) << eager_model.status();

  options.cuda_graphs = true;
  RecordingObserver graphed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> graphed_model = Train(data, options, graphed);
  ASSERT_TRUE(graphed_model.ok()) << graphed_model.status();
  ASSERT_EQ(graphed.epochs.size(), eager.epochs.size());
  for (size_t i = 0; i < eager.epochs.size(); ++i) {
    EXPECT_NEAR(graphed.epochs[i].train_loss, eager.epochs[i].train_loss,
                0.02 * eager.epochs[i].train_loss + 1e-3)
        << "epoch " << i + 1;
  }
  absl::StatusOr<EvaluationResult> eager_result = (*eager_model)->Evaluate(data);
  absl::StatusOr<EvaluationResult> graphed_result = (*graphed_model)->Evaluate(data);
  ASSERT_TRUE(eager_result.ok() && graphed_result.ok());
  EXPECT_GT(graphed_result->accuracy, 0.9);
  EXPECT_NEAR(graphed_result->accuracy, eager_result->accuracy, 0.02);

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(data, options, stopped).status().code(), absl::StatusCode::kCancelled);
  ASSERT_FALSE(stopped.checkpoints.empty());
  ASSERT_GT(stopped.checkpoints.back().batch, 0);
  RecordingObserver resumed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> resumed_model =
      Resume(data, options, stopped.checkpoints.back().bytes, resumed);
  ASSERT_TRUE(resumed_model.ok()) << resumed_model.status();
  ASSERT_EQ(resumed.epochs.size(), 2u);
  EXPECT_NEAR(resumed.epochs.back().train_loss, graphed.epochs.back().train_loss,
              0.02 * graphed.epochs.back().train_loss + 1e-3);
  absl::StatusOr<EvaluationResult> resumed_result = (*resumed_model)->Evaluate(data);
  ASSERT_TRUE(resumed_result.ok());
  EXPECT_NEAR(resumed_result->loss, graphed_result->loss, 0.05 * graphed_result->loss + 1e-3);
}

// On a GPU, with the options a recorded step must honour: a validation split (the batch is
// gathered through the training indices inside the recording), keep_best, AdamW's decoupled
// decay and a learning rate that changes every epoch (a device value the replays read). The
// run learns as the eager one does, and returns the best epoch's weights. Skipped without CUDA.
TEST(CudaGraphTrainingTest, HonoursValidationKeepBestAdamWAndTheSchedule) {
  if (!ResolveDevice("cuda").ok()) GTEST_SKIP() << "no CUDA device";
  const Dataset data = MakeQuadrants(400, 9);
  TrainOptions options = SmallOptions();
  options.device = "cuda";
  options.epochs = 4;
  options.optimizer = OptimizerKind::kAdamW;
  options.weight_decay = 0.01;
  options.lr_schedule = LearningRateSchedule::kStep;
  options.lr_step_size = 1;
  options.lr_gamma = 0.5;
  options.validation_fraction = 0.25;
  options.keep_best = true;
  std::vector<RecordingObserver> observers(2);
  std::vector<std::unique_ptr<TrainedModel>> models;
  for (const bool graphs : {false, true}) {
    options.cuda_graphs = graphs;
    absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(data, options, observers[graphs]);
    ASSERT_TRUE(model.ok()) << model.status();
    models.push_back(std::move(*model));
  }
  const RecordingObserver& eager = observers[0];
  const RecordingObserver& graphed = observers[1];
  ASSERT_EQ(graphed.epochs.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(graphed.epochs[i].validation_accuracy.has_value());
    EXPECT_NEAR(graphed.epochs[i].train_loss, eager.epochs[i].train_loss,
                0.02 * eager.epochs[i].train_loss + 1e-3)
        << "epoch " << i + 1;
    EXPECT_NEAR(*graphed.epochs[i].validation_accuracy, *eager.epochs[i].validation_accuracy, 0.03)
        << "epoch " << i + 1;
  }
  EXPECT_GT(*graphed.epochs.back().validation_accuracy, 0.9);
  absl::StatusOr<EvaluationResult> result = models[1]->Evaluate(data);
  ASSERT_TRUE(result.ok());
  EXPECT_GT(result->accuracy, 0.9);
}

// Augmentation and dropout draw on the device, per batch (batch_draws.h), and such runs step
// eagerly on a GPU whatever cuda_graphs says; they train there, the same seed gives the same
// first epoch, and a run stopped mid-epoch resumes to the uninterrupted run's end (to cuDNN's
// rounding).
TEST(CudaGraphTrainingTest, AugmentationAndDropoutTrainEagerlyOnCuda) {
  if (!ResolveDevice("cuda").ok()) GTEST_SKIP() << "no CUDA device";
  const Dataset data = MakeQuadrants(200, 5);
  TrainOptions options = AugmentedOptions();
  options.device = "cuda";
  options.architecture.hidden_units = 32;
  options.architecture.dropout = 0.2;
  RecordingObserver first;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(data, options, first);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_GT(first.epochs.back().train_accuracy, 0.5);
  RecordingObserver second;
  ASSERT_TRUE(Train(data, options, second).ok());
  EXPECT_NEAR(second.epochs[0].train_loss, first.epochs[0].train_loss,
              0.02 * first.epochs[0].train_loss);

  RecordingObserver stopped(kStopInEpoch2);
  ASSERT_EQ(Train(data, options, stopped).status().code(), absl::StatusCode::kCancelled);
  ASSERT_FALSE(stopped.checkpoints.empty());
  RecordingObserver resumed;
  ASSERT_TRUE(Resume(data, options, stopped.checkpoints.back().bytes, resumed).ok());
  ASSERT_FALSE(resumed.epochs.empty());
  EXPECT_NEAR(resumed.epochs.back().train_loss, first.epochs.back().train_loss,
              0.02 * first.epochs.back().train_loss + 1e-3);
}

// A model trained on the GPU predicts there as its CPU copy does (the same state dict loaded
// on each device).
TEST(CudaGraphTrainingTest, PredictionsOnCudaMatchTheCpuCopy) {
  if (!ResolveDevice("cuda").ok()) GTEST_SKIP() << "no CUDA device";
  const Dataset data = MakeQuadrants(200, 5);
  TrainOptions options = SmallOptions();
  options.device = "cuda";
  RecordingObserver observer;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(data, options, observer);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<TrainedModel>> on_cpu =
      TrainedModel::FromStateDictBytes(StateDict(**model), options.architecture, "cpu");
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  std::vector<float> pixels(data.pixels.begin(), data.pixels.begin() + 50 * kPixels);
  for (float& pixel : pixels) pixel /= 255;
  absl::StatusOr<std::vector<float>> gpu = (*model)->PredictProbabilities(pixels, 50);
  absl::StatusOr<std::vector<float>> cpu = (*on_cpu)->PredictProbabilities(pixels, 50);
  ASSERT_TRUE(gpu.ok() && cpu.ok());
  ASSERT_EQ(gpu->size(), cpu->size());
  for (size_t i = 0; i < gpu->size(); ++i) EXPECT_NEAR((*gpu)[i], (*cpu)[i], 1e-4) << i;
}

}  // namespace
}  // namespace classifier
