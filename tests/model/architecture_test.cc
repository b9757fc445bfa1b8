// Architecture options (wider convs, kernel size, hidden layer, dropout) and fine-tuning
// (initial weights, frozen convolutions), through the public model/ API.
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/network.h"
#include "model/trainer.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::classifier::testing::MakeSyntheticDataset;
using ::testing::HasSubstr;

constexpr int kClasses = 4;

class Recorder : public TrainingObserver {
 public:
  explicit Recorder(int64_t stop_after_polls = -1) : stop_after_(stop_after_polls) {}
  void OnProgress(const ProgressStats& stats) override { progress.push_back(stats); }
  void OnEpochEnd(const EpochStats& stats) override { epochs.push_back(stats); }
  bool StopRequested() override { return stop_after_ >= 0 && polls++ >= stop_after_; }
  void OnCheckpoint(const TrainingCheckpoint& checkpoint) override { last = checkpoint; }
  std::vector<ProgressStats> progress;
  std::vector<EpochStats> epochs;
  TrainingCheckpoint last;
  int64_t polls = 0;

 private:
  const int64_t stop_after_;
};

TrainOptions Options() {
  TrainOptions options;
  options.epochs = 2;
  options.batch_size = 20;
  options.learning_rate = 3e-3;
  options.seed = 7;
  options.architecture.num_classes = kClasses;
  return options;
}

absl::StatusOr<std::unique_ptr<TrainedModel>> Train(const Dataset& data,
                                                    const TrainOptions& options,
                                                    TrainingObserver& observer,
                                                    const std::string& checkpoint = "") {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  if (!trainer.ok()) return trainer.status();
  if (!checkpoint.empty()) {
    if (absl::Status status = (*trainer)->Restore(checkpoint); !status.ok()) return status;
  }
  return (*trainer)->Run(observer);
}

std::vector<float> Pixels(const Dataset& data, int64_t count) {
  std::vector<float> pixels(data.pixels.begin(), data.pixels.begin() + count * data.image_size());
  for (float& p : pixels) p /= 255.0f;
  return pixels;
}

std::vector<ParameterValues> ParametersOf(const TrainedModel& model) {
  absl::StatusOr<std::vector<ParameterValues>> parameters = model.Parameters();
  EXPECT_TRUE(parameters.ok()) << parameters.status();
  return parameters.ok() ? *parameters : std::vector<ParameterValues>();
}

class ArchitectureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new Dataset(MakeSyntheticDataset(240, kClasses, /*seed=*/3));
    other_ = new Dataset(MakeSyntheticDataset(240, kClasses, /*seed=*/4));
  }
  static void TearDownTestSuite() {
    delete data_;
    delete other_;
  }
  static Dataset* data_;
  static Dataset* other_;  // The same classes, other images: for fine-tuning.
};
Dataset* ArchitectureTest::data_ = nullptr;
Dataset* ArchitectureTest::other_ = nullptr;

struct Shape {
  const char* name;
  std::vector<int> conv_channels;
  int kernel_size;
  int hidden_units;
  double dropout;
};

// Test names and failure messages show the shape's name, not its bytes.
void PrintTo(const Shape& shape, std::ostream* out) { *out << shape.name; }

class ArchitectureOptionTest : public ArchitectureTest,
                               public ::testing::WithParamInterface<Shape> {};

// Each option builds, trains, exports its state dict and comes back (its architecture read
// from the file's shapes alone) with the same predictions.
TEST_P(ArchitectureOptionTest, TrainsExportsAndReimportsWithTheSameOutput) {
  const Shape& shape = GetParam();
  TrainOptions options = Options();
  options.architecture.conv_channels = shape.conv_channels;
  options.architecture.kernel_size = shape.kernel_size;
  options.architecture.hidden_units = shape.hidden_units;
  options.architecture.dropout = shape.dropout;
  Recorder recorder;
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = Train(*data_, options, recorder);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(recorder.epochs.size(), 2u);
  EXPECT_LT(recorder.epochs.back().train_loss, recorder.epochs.front().train_loss);

  absl::StatusOr<std::string> bytes = (*model)->ToStateDictBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<Architecture> inferred = InferArchitecture(*bytes);
  ASSERT_TRUE(inferred.ok()) << inferred.status();
  EXPECT_TRUE(SameShape(*inferred, options.architecture))
      << DescribeArchitecture(*inferred) << " vs " << DescribeArchitecture(options.architecture);
  absl::StatusOr<std::unique_ptr<TrainedModel>> reloaded =
      TrainedModel::FromStateDictBytes(*bytes, *inferred, "cpu");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();

  const std::vector<float> pixels = Pixels(*data_, 16);
  absl::StatusOr<std::vector<float>> before = (*model)->PredictProbabilities(pixels, 16);
  absl::StatusOr<std::vector<float>> after = (*reloaded)->PredictProbabilities(pixels, 16);
  ASSERT_TRUE(before.ok() && after.ok());
  ASSERT_EQ(before->size(), 16u * kClasses);
  for (size_t i = 0; i < before->size(); ++i) EXPECT_NEAR((*before)[i], (*after)[i], 1e-6);
  // Inference never drops: the same input gives the same output twice.
  EXPECT_EQ(*(*model)->PredictProbabilities(pixels, 16), *before);

  // The state dict's keys: fc2 exactly when there is a hidden layer.
  absl::StatusOr<std::vector<ParameterShape>> layout = StateDictLayout(options.architecture);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->back().name, shape.hidden_units > 0 ? "fc2.bias" : "fc1.bias");
  EXPECT_EQ(layout->size(), 2 * shape.conv_channels.size() + (shape.hidden_units > 0 ? 4 : 2));
}

INSTANTIATE_TEST_SUITE_P(Shapes, ArchitectureOptionTest,
                         ::testing::Values(Shape{"tutorial", {8, 16}, 3, 0, 0},
                                           Shape{"wide", {32, 64}, 3, 0, 0},
                                           Shape{"kernel5", {8, 16}, 5, 0, 0},
                                           Shape{"three_convs", {8, 16, 16}, 3, 0, 0},
                                           Shape{"hidden", {8, 16}, 3, 32, 0},
                                           Shape{"hidden_dropout", {8, 16}, 3, 32, 0.3},
                                           Shape{"dropout_only", {8}, 3, 0, 0.5}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           return std::string(info.param.name);
                         });

TEST(ArchitectureValidationTest, ImpossibleShapesNameTheField) {
  auto message = [](Architecture a) { return std::string(ValidateArchitecture(a).message()); };
  Architecture a;
  EXPECT_TRUE(ValidateArchitecture(a).ok());
  a.conv_channels = {8, 16, 32, 64, 128};  // 28 -> 14 -> 7 -> 3 -> 1: no room for a fifth.
  EXPECT_THAT(message(a), HasSubstr("architecture.conv_channels"));
  a = Architecture();
  a.conv_channels = {8, 0};
  EXPECT_THAT(message(a), HasSubstr("architecture.conv_channels[1]"));
  a = Architecture();
  a.kernel_size = 4;
  EXPECT_THAT(message(a), HasSubstr("architecture.kernel_size"));
  a = Architecture();
  a.hidden_units = -1;
  EXPECT_THAT(message(a), HasSubstr("architecture.hidden_units"));
  a = Architecture();
  a.dropout = 1.0;
  EXPECT_THAT(message(a), HasSubstr("architecture.dropout"));
  a.dropout = std::nan("");
  EXPECT_THAT(message(a), HasSubstr("architecture.dropout"));
}

TEST(InferArchitectureTest, RefusesWhatIsNotThisFamilysStateDict) {
  EXPECT_EQ(InferArchitecture("not a pickle").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArchitectureTest, DropoutIsSeededAndResumesBitIdentically) {
  TrainOptions options = Options();
  options.architecture.hidden_units = 16;
  options.architecture.dropout = 0.5;
  Recorder first, second, plain;
  absl::StatusOr<std::unique_ptr<TrainedModel>> a = Train(*data_, options, first);
  absl::StatusOr<std::unique_ptr<TrainedModel>> b = Train(*data_, options, second);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*(*a)->ToStateDictBytes(), *(*b)->ToStateDictBytes());
  TrainOptions no_dropout = options;
  no_dropout.architecture.dropout = 0;
  absl::StatusOr<std::unique_ptr<TrainedModel>> c = Train(*data_, no_dropout, plain);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(*(*a)->ToStateDictBytes(), *(*c)->ToStateDictBytes());

  // Stopped mid-epoch 2 and resumed: the same weights as the uninterrupted run.
  Recorder stopped(/*stop_after_polls=*/16);
  EXPECT_EQ(Train(*data_, options, stopped).status().code(), absl::StatusCode::kCancelled);
  Recorder resumed;
  absl::StatusOr<std::unique_ptr<TrainedModel>> d =
      Train(*data_, options, resumed, stopped.last.bytes);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*(*d)->ToStateDictBytes(), *(*a)->ToStateDictBytes());
}

TEST_F(ArchitectureTest, FineTuningStartsWellBelowAFromScratchRun) {
  TrainOptions options = Options();
  options.epochs = 3;
  Recorder pretraining;
  absl::StatusOr<std::unique_ptr<TrainedModel>> pretrained = Train(*data_, options, pretraining);
  ASSERT_TRUE(pretrained.ok()) << pretrained.status();

  TrainOptions scratch_options = Options();
  scratch_options.epochs = 1;
  scratch_options.progress_reports_per_epoch = 12;  // One per batch.
  TrainOptions tuned_options = scratch_options;
  tuned_options.initial_weights = std::shared_ptr<const TrainedModel>(std::move(*pretrained));
  Recorder scratch, tuned;
  ASSERT_TRUE(Train(*other_, scratch_options, scratch).ok());
  ASSERT_TRUE(Train(*other_, tuned_options, tuned).ok());
  ASSERT_FALSE(scratch.progress.empty());
  ASSERT_FALSE(tuned.progress.empty());
  // The first batch's loss: the pretrained weights already know the classes.
  EXPECT_LT(tuned.progress.front().train_loss, 0.5 * scratch.progress.front().train_loss)
      << "fine-tuned " << tuned.progress.front().train_loss << ", from scratch "
      << scratch.progress.front().train_loss;
  EXPECT_LT(tuned.epochs.front().train_loss, scratch.epochs.front().train_loss);
}

TEST_F(ArchitectureTest, FrozenConvolutionsStayBitForBit) {
  TrainOptions options = Options();
  Recorder pretraining;
  absl::StatusOr<std::unique_ptr<TrainedModel>> pretrained = Train(*data_, options, pretraining);
  ASSERT_TRUE(pretrained.ok());
  const std::vector<ParameterValues> before = ParametersOf(**pretrained);

  TrainOptions frozen = Options();
  frozen.initial_weights = std::shared_ptr<const TrainedModel>(std::move(*pretrained));
  frozen.freeze_convolutions = true;
  Recorder recorder;
  absl::StatusOr<std::unique_ptr<TrainedModel>> tuned = Train(*other_, frozen, recorder);
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  const std::vector<ParameterValues> after = ParametersOf(**tuned);
  ASSERT_EQ(before.size(), after.size());
  int frozen_seen = 0, trained_seen = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i].name, after[i].name);
    if (before[i].name.rfind("conv", 0) == 0) {
      EXPECT_EQ(before[i].values, after[i].values) << before[i].name << " changed";
      ++frozen_seen;
    } else {
      EXPECT_NE(before[i].values, after[i].values) << before[i].name << " did not train";
      ++trained_seen;
    }
  }
  EXPECT_EQ(frozen_seen, 4);
  EXPECT_EQ(trained_seen, 2);
}

TEST_F(ArchitectureTest, InitialWeightsOfAnotherShapeAreAFailedPrecondition) {
  TrainOptions options = Options();
  options.epochs = 1;
  Recorder recorder;
  absl::StatusOr<std::unique_ptr<TrainedModel>> pretrained = Train(*data_, options, recorder);
  ASSERT_TRUE(pretrained.ok());
  TrainOptions wider = Options();
  wider.architecture.conv_channels = {16, 32};
  wider.initial_weights = std::shared_ptr<const TrainedModel>(std::move(*pretrained));
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*data_, wider);
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(trainer.status().message(), HasSubstr("conv [8, 16]"));
  EXPECT_THAT(trainer.status().message(), HasSubstr("conv [16, 32]"));
}

}  // namespace
}  // namespace classifier
