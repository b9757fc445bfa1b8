// The rule table of the training options (model/train_options.h): defaults for what a request
// leaves at zero, every rule's refusal naming its field, and the option list checkpoints use.
#include "model/train_options.h"

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

DataShape Mnist() {
  DataShape data;
  data.name = "mnist";
  data.train_count = 1000;
  data.image_height = 28;
  data.image_width = 28;
  data.num_classes = 10;
  data.digits = true;
  return data;
}

// What a request that sets nothing looks like: every field zero.
TrainOptions Unset() {
  TrainOptions options;
  options.epochs = 0;
  options.batch_size = 0;
  options.learning_rate = 0;
  options.augmentation.scale_min = 0;
  options.augmentation.scale_max = 0;
  return options;
}

TEST(TrainOptionsTest, ZeroFieldsGetTheTutorialsDefaultsAndTheNetworkFollowsTheData) {
  DataShape data = Mnist();
  data.num_classes = 7;
  absl::StatusOr<TrainOptions> resolved = ResolveTrainOptions(Unset(), data);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->epochs, kDefaultEpochs);
  EXPECT_EQ(resolved->batch_size, kDefaultBatchSize);
  EXPECT_DOUBLE_EQ(resolved->learning_rate, kDefaultLearningRate);
  // Only the STEP schedule reads its parameters: without it they stay unset.
  EXPECT_EQ(resolved->lr_step_size, 0);
  EXPECT_DOUBLE_EQ(resolved->lr_gamma, 0);
  EXPECT_DOUBLE_EQ(resolved->augmentation.scale_min, 1);
  EXPECT_DOUBLE_EQ(resolved->augmentation.scale_max, 1);
  EXPECT_DOUBLE_EQ(resolved->label_smoothing, 0);
  EXPECT_EQ(resolved->architecture.num_classes, 7);
  EXPECT_EQ(resolved->architecture.image_size, 28);
  // Resolved options are a fixed point, and the trainer's check agrees with the edge's.
  EXPECT_TRUE(CheckTrainOptions(*resolved, data).ok());
  absl::StatusOr<TrainOptions> again = ResolveTrainOptions(*resolved, data);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->epochs, resolved->epochs);
  EXPECT_EQ(again->batch_size, resolved->batch_size);
  EXPECT_EQ(again->lr_step_size, resolved->lr_step_size);
  // The struct's own initial values are the same defaults.
  const TrainOptions plain;
  EXPECT_EQ(plain.epochs, resolved->epochs);
  EXPECT_EQ(plain.batch_size, resolved->batch_size);
  EXPECT_DOUBLE_EQ(plain.learning_rate, resolved->learning_rate);
  EXPECT_EQ(plain.lr_step_size, resolved->lr_step_size);
  EXPECT_DOUBLE_EQ(plain.lr_gamma, resolved->lr_gamma);
}

TEST(TrainOptionsTest, TheStepSchedulesUnsetParametersGetTheirDefaultsAndStayAFixedPoint) {
  TrainOptions step = Unset();
  step.lr_schedule = LearningRateSchedule::kStep;
  absl::StatusOr<TrainOptions> resolved = ResolveTrainOptions(step, Mnist());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->lr_step_size, kDefaultLrStepSize);
  EXPECT_DOUBLE_EQ(resolved->lr_gamma, kDefaultLrGamma);
  absl::StatusOr<TrainOptions> again = ResolveTrainOptions(*resolved, Mnist());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->lr_step_size, kDefaultLrStepSize);
  EXPECT_DOUBLE_EQ(again->lr_gamma, kDefaultLrGamma);
  // Set ones are kept.
  step.lr_step_size = 3;
  step.lr_gamma = 0.5;
  resolved = ResolveTrainOptions(step, Mnist());
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->lr_step_size, 3);
  EXPECT_DOUBLE_EQ(resolved->lr_gamma, 0.5);
}

struct Refusal {
  std::string what;
  void (*change)(TrainOptions&);
  // In the message: the field's name, and a second part (its range, or why).
  std::string field;
  std::string detail;
  absl::StatusCode code = absl::StatusCode::kInvalidArgument;
};

TEST(TrainOptionsTest, EveryRuleRefusesNamingTheField) {
  const std::vector<Refusal> refusals = {
      {"negative epochs", [](TrainOptions& o) { o.epochs = -1; }, "epochs", "[1, 1000]"},
      {"too many epochs", [](TrainOptions& o) { o.epochs = 1001; }, "epochs", "default 10"},
      {"negative learning rate", [](TrainOptions& o) { o.learning_rate = -1; }, "learning_rate",
       "> 0"},
      {"NaN learning rate", [](TrainOptions& o) { o.learning_rate = std::nan(""); },
       "learning_rate", "finite"},
      {"batch bigger than the data", [](TrainOptions& o) { o.batch_size = 1001; }, "batch_size",
       "[1, 1000]"},
      {"negative batch", [](TrainOptions& o) { o.batch_size = -5; }, "batch_size", "mnist"},
      {"momentum of 1",
       [](TrainOptions& o) {
         o.optimizer = OptimizerKind::kSgd;
         o.momentum = 1;
       },
       "momentum", "[0, 1)"},
      {"momentum for Adam", [](TrainOptions& o) { o.momentum = 0.9; }, "momentum", "SGD"},
      {"weight decay above 1", [](TrainOptions& o) { o.weight_decay = 1.5; }, "weight_decay",
       "[0, 1]"},
      {"label smoothing of 1", [](TrainOptions& o) { o.label_smoothing = 1; }, "label_smoothing",
       "[0, 1)"},
      {"negative label smoothing", [](TrainOptions& o) { o.label_smoothing = -0.1; },
       "label_smoothing", "got -0.1"},
      {"step size without the STEP schedule", [](TrainOptions& o) { o.lr_step_size = 3; },
       "lr_step_size", "STEP"},
      {"gamma without the STEP schedule", [](TrainOptions& o) { o.lr_gamma = 0.5; }, "lr_gamma",
       "STEP"},
      // Set is set, even to the STEP schedule's default: the other schedules would ignore it.
      {"the default step size without the STEP schedule",
       [](TrainOptions& o) {
         o.lr_schedule = LearningRateSchedule::kCosine;
         o.lr_step_size = kDefaultLrStepSize;
       },
       "lr_step_size", "STEP"},
      {"step size beyond the epochs",
       [](TrainOptions& o) {
         o.lr_schedule = LearningRateSchedule::kStep;
         o.epochs = 3;
         o.lr_step_size = 4;
       },
       "lr_step_size", "[1, 3]"},
      {"gamma above 1",
       [](TrainOptions& o) {
         o.lr_schedule = LearningRateSchedule::kStep;
         o.lr_gamma = 2;
       },
       "lr_gamma", "(0, 1]"},
      {"too many progress reports", [](TrainOptions& o) { o.progress_reports_per_epoch = 1001; },
       "progress_reports_per_epoch", "[0, 1000]"},
      {"flips of digits", [](TrainOptions& o) { o.augmentation.horizontal_flip = true; },
       "augmentation.horizontal_flip", "a flipped 6 is a 9"},
      {"rotation beyond half a turn",
       [](TrainOptions& o) { o.augmentation.rotation_degrees = 181; },
       "augmentation.rotation_degrees", "180"},
      {"validation above one half", [](TrainOptions& o) { o.validation_fraction = 0.6; },
       "validation_fraction", "[0, 0.5]"},
      {"a split that holds out nothing", [](TrainOptions& o) { o.validation_fraction = 1e-6; },
       "validation_fraction", "holds out none"},
      {"a batch bigger than what the split leaves",
       [](TrainOptions& o) {
         o.validation_fraction = 0.5;
         o.batch_size = 600;
       },
       "batch_size", "at most 500"},
      {"keep_best without a split", [](TrainOptions& o) { o.keep_best = true; }, "keep_best",
       "validation_fraction"},
      {"patience without a split", [](TrainOptions& o) { o.early_stopping_patience = 2; },
       "early_stopping_patience", "validation_fraction"},
      {"negative patience", [](TrainOptions& o) { o.early_stopping_patience = -1; },
       "early_stopping_patience", "[0, 1000]"},
      {"an even kernel", [](TrainOptions& o) { o.architecture.kernel_size = 4; },
       "architecture.kernel_size", "odd"},
      {"frozen random convolutions", [](TrainOptions& o) { o.freeze_convolutions = true; },
       "freeze_convolutions", "init_from_model"},
  };
  for (const Refusal& refusal : refusals) {
    TrainOptions options = Unset();
    refusal.change(options);
    absl::StatusOr<TrainOptions> resolved = ResolveTrainOptions(options, Mnist());
    ASSERT_FALSE(resolved.ok()) << refusal.what;
    EXPECT_EQ(resolved.status().code(), refusal.code) << refusal.what;
    EXPECT_THAT(resolved.status().message(), HasSubstr(refusal.field)) << refusal.what;
    EXPECT_THAT(resolved.status().message(), HasSubstr(refusal.detail)) << refusal.what;
  }
}

TEST(TrainOptionsTest, DataOfAnotherImageSizeIsRefusedNamingBothSizes) {
  DataShape data = Mnist();
  data.name = "big";
  data.image_height = 32;
  data.image_width = 32;
  data.digits = false;
  absl::StatusOr<TrainOptions> resolved = ResolveTrainOptions(Unset(), data);
  ASSERT_FALSE(resolved.ok());
  EXPECT_THAT(resolved.status().message(), HasSubstr("big's images are 32x32"));
  EXPECT_THAT(resolved.status().message(), HasSubstr("architecture.image_size"));
  // Flips are fine on data that is not digits.
  TrainOptions flips = Unset();
  flips.augmentation.horizontal_flip = true;
  data.image_height = 28;
  data.image_width = 28;
  EXPECT_TRUE(ResolveTrainOptions(flips, data).ok());
}

TEST(TrainOptionsTest, CheckpointsSeeEveryOptionThatShapesARunOnceByItsFieldName) {
  TrainOptions options;
  std::vector<std::string> names;
  ForEachRunOption(options, [&names](const char* name, const auto&) { names.push_back(name); });
  const std::set<std::string> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size()) << "an option is listed twice";
  for (const char* expected :
       {"epochs", "batch_size", "learning_rate", "seed", "optimizer", "momentum", "weight_decay",
        "label_smoothing", "lr_schedule", "lr_step_size", "lr_gamma", "validation_fraction",
        "keep_best", "early_stopping_patience", "freeze_convolutions", "architecture.conv_channels",
        "architecture.dropout", "augmentation.translation", "augmentation.vertical_flip"}) {
    EXPECT_EQ(unique.count(expected), 1u) << expected;
  }
  // What may change between a run and its resumption is not listed.
  EXPECT_EQ(unique.count("device"), 0u);
  EXPECT_EQ(unique.count("progress_reports_per_epoch"), 0u);
}

}  // namespace
}  // namespace classifier
