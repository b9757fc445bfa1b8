// Data parallelism proven against one process: ranks run as threads of this test, each a real
// Trainer on a real c10d Gloo group (over a FileStore and loopback TCP), and must take the
// steps one process takes with the whole batch.
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/gloo_collective.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/trainer.h"
#include "tests/testing/synthetic_data.h"

namespace classifier {
namespace {

using ::testing::HasSubstr;

// Ranks sum their gradients in another order than one process does: to rounding, the same.
constexpr double kTolerance = 1e-5;
// Adam divides each step by the root of a running mean of squared gradients, so a rounding
// difference in a gradient near zero moves its weight by up to learning_rate per step: after
// a dozen Adam steps the weights agree to this (SGD's to kTolerance). Losses agree to kTolerance.
constexpr double kAdamTolerance = 1e-4;

TrainOptions Tutorial() {
  TrainOptions options;
  options.epochs = 3;
  options.batch_size = 60;
  options.learning_rate = 1e-3;
  options.seed = 7;
  options.architecture.num_classes = 4;
  return options;
}

class Recorder : public TrainingObserver {
 public:
  explicit Recorder(int64_t stop_after_polls = -1) : stop_after_(stop_after_polls) {}
  void OnEpochEnd(const EpochStats& stats) override { epochs.push_back(stats); }
  bool StopRequested() override { return stop_after_ >= 0 && polls_++ >= stop_after_; }
  void OnCheckpoint(const TrainingCheckpoint& checkpoint) override {
    checkpoints.push_back(checkpoint);
  }
  std::vector<EpochStats> epochs;
  std::vector<TrainingCheckpoint> checkpoints;

 private:
  const int64_t stop_after_;
  int64_t polls_ = 0;
};

struct RankOutcome {
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = absl::UnknownError("not run");
  Recorder recorder;
  explicit RankOutcome(int64_t stop_after) : recorder(stop_after) {}
};

// Runs `world_size` ranks of one job as threads; rank r's observer stops after
// stop_after[r] polls (-1: never). As in the server, only rank 0 restores `checkpoint` (when
// given) and only rank 0's options hold `rank0_initial_weights`: the other ranks are new.
std::vector<std::unique_ptr<RankOutcome>> RunRanks(
    const Dataset& data, const TrainOptions& options, int world_size,
    std::vector<int64_t> stop_after = {}, const std::string& checkpoint = "",
    std::shared_ptr<const TrainedModel> rank0_initial_weights = nullptr) {
  stop_after.resize(world_size, -1);
  testing::TempDir directory;
  auto store = c10::make_intrusive<c10d::FileStore>(directory.path() + "/store", world_size);
  std::vector<std::unique_ptr<RankOutcome>> outcomes;
  for (int rank = 0; rank < world_size; ++rank) {
    outcomes.push_back(std::make_unique<RankOutcome>(stop_after[rank]));
  }
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world_size; ++rank) {
    ranks.emplace_back([&, rank] {
      RankOutcome& outcome = *outcomes[rank];
      JoinOptions join;
      join.join_timeout = std::chrono::seconds(120);
      absl::StatusOr<std::unique_ptr<GlooCollective>> group =
          GlooCollective::JoinThroughStore(store, rank, world_size, "127.0.0.1", join);
      if (!group.ok()) {
        outcome.model = group.status();
        return;
      }
      TrainOptions rank_options = options;
      if (rank == 0) rank_options.initial_weights = rank0_initial_weights;
      absl::StatusOr<std::unique_ptr<Trainer>> trainer =
          Trainer::Create(data, rank_options, group->get());
      if (!trainer.ok()) {
        outcome.model = trainer.status();
        return;
      }
      if (rank == 0 && !checkpoint.empty()) {
        if (absl::Status status = (*trainer)->Restore(checkpoint); !status.ok()) {
          outcome.model = status;
          return;
        }
      }
      outcome.model = (*trainer)->Run(outcome.recorder);
    });
  }
  for (std::thread& rank : ranks) rank.join();
  return outcomes;
}

std::unique_ptr<TrainedModel> TrainAlone(const Dataset& data, const TrainOptions& options,
                                         Recorder& recorder, const std::string& checkpoint = "") {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  if (!trainer.ok()) return nullptr;
  if (!checkpoint.empty()) {
    EXPECT_TRUE((*trainer)->Restore(checkpoint).ok());
  }
  absl::StatusOr<std::unique_ptr<TrainedModel>> model = (*trainer)->Run(recorder);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

std::vector<ParameterValues> ParametersOf(const TrainedModel& model) {
  absl::StatusOr<std::vector<ParameterValues>> parameters = model.Parameters();
  EXPECT_TRUE(parameters.ok()) << parameters.status();
  return parameters.ok() ? *parameters : std::vector<ParameterValues>();
}

// The largest difference between two models' weights.
double MaxDifference(const TrainedModel& a, const TrainedModel& b) {
  const std::vector<ParameterValues> left = ParametersOf(a);
  const std::vector<ParameterValues> right = ParametersOf(b);
  EXPECT_EQ(left.size(), right.size());
  double largest = 0;
  for (size_t i = 0; i < left.size() && i < right.size(); ++i) {
    EXPECT_EQ(left[i].name, right[i].name);
    EXPECT_EQ(left[i].values.size(), right[i].values.size());
    for (size_t j = 0; j < left[i].values.size() && j < right[i].values.size(); ++j) {
      largest = std::max(largest, std::abs(double{left[i].values[j]} - right[i].values[j]));
    }
  }
  return largest;
}

// Every rank succeeded, holds exactly rank 0's weights and reported rank 0's figures, and
// those are one process's: the weights to `tolerance`.
void ExpectSameAsAlone(const std::vector<std::unique_ptr<RankOutcome>>& ranks,
                       const TrainedModel& alone, const Recorder& alone_recorder,
                       double tolerance) {
  for (size_t rank = 0; rank < ranks.size(); ++rank) {
    EXPECT_TRUE(ranks[rank]->model.ok()) << "rank " << rank << ": " << ranks[rank]->model.status();
  }
  for (size_t rank = 0; rank < ranks.size(); ++rank) ASSERT_TRUE(ranks[rank]->model.ok());
  const TrainedModel& first = **ranks[0]->model;
  EXPECT_LT(MaxDifference(first, alone), tolerance);
  for (size_t rank = 1; rank < ranks.size(); ++rank) {
    EXPECT_EQ(MaxDifference(**ranks[rank]->model, first), 0) << "rank " << rank;
  }
  const std::vector<EpochStats>& epochs = ranks[0]->recorder.epochs;
  ASSERT_EQ(epochs.size(), alone_recorder.epochs.size());
  for (size_t i = 0; i < epochs.size(); ++i) {
    EXPECT_NEAR(epochs[i].train_loss, alone_recorder.epochs[i].train_loss, kTolerance);
    EXPECT_DOUBLE_EQ(epochs[i].train_accuracy, alone_recorder.epochs[i].train_accuracy);
    ASSERT_EQ(epochs[i].validation_accuracy.has_value(),
              alone_recorder.epochs[i].validation_accuracy.has_value());
    if (epochs[i].validation_accuracy) {
      EXPECT_DOUBLE_EQ(*epochs[i].validation_accuracy,
                       *alone_recorder.epochs[i].validation_accuracy);
      EXPECT_NEAR(*epochs[i].validation_loss, *alone_recorder.epochs[i].validation_loss, 1e-4);
    }
    for (size_t rank = 1; rank < ranks.size(); ++rank) {
      EXPECT_EQ(ranks[rank]->recorder.epochs.at(i).train_loss, epochs[i].train_loss);
    }
  }
}

TEST(DataParallelTest, SgdStepsOfTwoRanksOfThirtyAreOneProcessOfSixty) {
  // Plain SGD: the weights after each step are the summed gradient's, so any error in the sum
  // (a missing shard, a wrong divisor) shows at once.
  const Dataset data = testing::MakeQuadrants(120, 3);
  TrainOptions options = Tutorial();
  options.optimizer = OptimizerKind::kSgd;
  options.learning_rate = 0.05;
  options.epochs = 2;
  Recorder alone_recorder;
  std::unique_ptr<TrainedModel> alone = TrainAlone(data, options, alone_recorder);
  ASSERT_NE(alone, nullptr);
  ExpectSameAsAlone(RunRanks(data, options, 2), *alone, alone_recorder, kTolerance);

  // The steps moved the weights: an untrained model is far from the trained one.
  TrainOptions untrained = options;
  untrained.epochs = 1;
  untrained.learning_rate = 1e-9;
  Recorder ignored;
  std::unique_ptr<TrainedModel> barely = TrainAlone(data, untrained, ignored);
  ASSERT_NE(barely, nullptr);
  EXPECT_GT(MaxDifference(*barely, *alone), 100 * kTolerance);
}

TEST(DataParallelTest, TheTutorialsAdamRunOnTwoRanksMatchesOneProcess) {
  const Dataset data = testing::MakeQuadrants(240, 5);
  Recorder alone_recorder;
  std::unique_ptr<TrainedModel> alone = TrainAlone(data, Tutorial(), alone_recorder);
  ASSERT_NE(alone, nullptr);
  ExpectSameAsAlone(RunRanks(data, Tutorial(), 2), *alone, alone_recorder, kAdamTolerance);
}

TEST(DataParallelTest, AugmentationDropoutValidationAndKeepBestMatchOneProcess) {
  const Dataset data = testing::MakeQuadrants(300, 9);
  TrainOptions options = Tutorial();
  options.augmentation.rotation_degrees = 10;
  options.augmentation.translation = 0.1;
  options.architecture.hidden_units = 16;
  options.architecture.dropout = 0.3;
  options.validation_fraction = 0.2;
  options.keep_best = true;
  options.label_smoothing = 0.1;
  Recorder alone_recorder;
  std::unique_ptr<TrainedModel> alone = TrainAlone(data, options, alone_recorder);
  ASSERT_NE(alone, nullptr);
  ExpectSameAsAlone(RunRanks(data, options, 2), *alone, alone_recorder, kAdamTolerance);
}

TEST(DataParallelTest, ABatchSmallerThanTheWorldLeavesRanksIdleAndStillMatches) {
  // 121 images in batches of 20: each epoch ends with a batch of one image, which only rank 0
  // of three holds; ranks 1 and 2 take part in that step with nothing to add.
  const Dataset data = testing::MakeQuadrants(121, 4);
  TrainOptions options = Tutorial();
  options.batch_size = 20;
  options.epochs = 2;
  Recorder alone_recorder;
  std::unique_ptr<TrainedModel> alone = TrainAlone(data, options, alone_recorder);
  ASSERT_NE(alone, nullptr);
  ExpectSameAsAlone(RunRanks(data, options, 3), *alone, alone_recorder, kAdamTolerance);
}

TEST(DataParallelTest, AStopAskedOfOneRankStopsEveryRankAtTheSameBatch) {
  const Dataset data = testing::MakeQuadrants(240, 5);
  // Rank 1 is asked to stop at its 6th poll (epoch 2, batch 2); rank 0 never is.
  std::vector<std::unique_ptr<RankOutcome>> ranks = RunRanks(data, Tutorial(), 2, {-1, 5});
  for (const auto& rank : ranks) {
    ASSERT_EQ(rank->model.status().code(), absl::StatusCode::kCancelled) << rank->model.status();
  }
  EXPECT_EQ(ranks[0]->model.status().message(), ranks[1]->model.status().message());
  EXPECT_THAT(std::string(ranks[0]->model.status().message()), HasSubstr("epoch 2"));
  ASSERT_FALSE(ranks[0]->recorder.checkpoints.empty());
  for (const auto& rank : ranks) {
    EXPECT_EQ(rank->recorder.checkpoints.back().epoch, 1);
    EXPECT_EQ(rank->recorder.checkpoints.back().batch, 2);
  }

  // Rank 0's checkpoint resumes in one process (another world size) to the uninterrupted run.
  Recorder uninterrupted_recorder;
  std::unique_ptr<TrainedModel> uninterrupted =
      TrainAlone(data, Tutorial(), uninterrupted_recorder);
  Recorder resumed_recorder;
  std::unique_ptr<TrainedModel> resumed =
      TrainAlone(data, Tutorial(), resumed_recorder, ranks[0]->recorder.checkpoints.back().bytes);
  ASSERT_NE(uninterrupted, nullptr);
  ASSERT_NE(resumed, nullptr);
  EXPECT_LT(MaxDifference(*resumed, *uninterrupted), kAdamTolerance);

  // And one process's mid-epoch checkpoint resumes on three ranks, of which only rank 0 has it
  // (ranks 1 and 2 start from what rank 0 sends them).
  Recorder stopped(5);
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(data, Tutorial());
  ASSERT_TRUE(trainer.ok());
  ASSERT_EQ((*trainer)->Run(stopped).status().code(), absl::StatusCode::kCancelled);
  ASSERT_NE(stopped.checkpoints.back().batch, 0);
  std::vector<std::unique_ptr<RankOutcome>> three =
      RunRanks(data, Tutorial(), 3, {}, stopped.checkpoints.back().bytes);
  ASSERT_TRUE(three[0]->model.ok()) << three[0]->model.status();
  EXPECT_LT(MaxDifference(**three[0]->model, *uninterrupted), kAdamTolerance);
  for (int rank : {1, 2}) {
    ASSERT_TRUE(three[rank]->model.ok()) << three[rank]->model.status();
    EXPECT_EQ(MaxDifference(**three[rank]->model, **three[0]->model), 0) << "rank " << rank;
    // Each rank reported only the epochs after the checkpoint's, as rank 0 did.
    EXPECT_EQ(three[rank]->recorder.epochs.size(), three[0]->recorder.epochs.size());
  }
}

TEST(DataParallelTest, FineTuningFromWeightsOnlyRankZeroHoldsMatchesOneProcess) {
  const Dataset data = testing::MakeQuadrants(240, 6);
  TrainOptions pretraining = Tutorial();
  pretraining.epochs = 1;
  pretraining.seed = 11;
  Recorder ignored;
  std::shared_ptr<const TrainedModel> pretrained = TrainAlone(data, pretraining, ignored);
  ASSERT_NE(pretrained, nullptr);

  TrainOptions tuning = Tutorial();
  tuning.epochs = 2;
  TrainOptions tuning_alone = tuning;
  tuning_alone.initial_weights = pretrained;
  Recorder alone_recorder;
  std::unique_ptr<TrainedModel> alone = TrainAlone(data, tuning_alone, alone_recorder);
  ASSERT_NE(alone, nullptr);
  ExpectSameAsAlone(RunRanks(data, tuning, 2, {}, "", pretrained), *alone, alone_recorder,
                    kAdamTolerance);

  // Fine-tuning moved away from a fresh start: without the weights the run ends elsewhere.
  Recorder fresh_recorder;
  std::unique_ptr<TrainedModel> fresh = TrainAlone(data, tuning, fresh_recorder);
  ASSERT_NE(fresh, nullptr);
  EXPECT_GT(MaxDifference(*fresh, *alone), 100 * kAdamTolerance);
}

TEST(GlooCollectiveTest, SumsOverEveryRankAndNamesARankThatNeverJoins) {
  testing::TempDir directory;
  auto store = c10::make_intrusive<c10d::FileStore>(directory.path() + "/store", 2);
  std::vector<torch::Tensor> values(2);
  std::vector<absl::Status> statuses(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ranks.emplace_back([&, rank] {
      absl::StatusOr<std::unique_ptr<GlooCollective>> group =
          GlooCollective::JoinThroughStore(store, rank, 2, "127.0.0.1", JoinOptions());
      if (!group.ok()) {
        statuses[rank] = group.status();
        return;
      }
      EXPECT_EQ((*group)->rank(), rank);
      EXPECT_EQ((*group)->world_size(), 2);
      values[rank] = torch::tensor({1.0f + rank, 10.0f * (rank + 1)});
      EXPECT_EQ((*group)->sums(), 0);
      statuses[rank] = (*group)->SumInPlace(values[rank]);
      EXPECT_EQ((*group)->sums(), 1);
      EXPECT_GT((*group)->seconds_in_sums(), 0);
    });
  }
  for (std::thread& rank : ranks) rank.join();
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(statuses[rank].ok()) << statuses[rank];
    EXPECT_FLOAT_EQ(values[rank][0].item<float>(), 3);
    EXPECT_FLOAT_EQ(values[rank][1].item<float>(), 30);
  }

  // World size 3, and only rank 0 and rank 2 come.
  testing::TempDir other;
  auto lonely = c10::make_intrusive<c10d::FileStore>(other.path() + "/store", 3);
  JoinOptions quick;
  quick.join_timeout = std::chrono::seconds(2);
  std::vector<absl::Status> joined(3);
  std::thread rank2([&] {
    joined[2] = GlooCollective::JoinThroughStore(lonely, 2, 3, "127.0.0.1", quick).status();
  });
  joined[0] = GlooCollective::JoinThroughStore(lonely, 0, 3, "127.0.0.1", quick).status();
  rank2.join();
  for (int rank : {0, 2}) {
    EXPECT_EQ(joined[rank].code(), absl::StatusCode::kDeadlineExceeded) << joined[rank];
    EXPECT_THAT(std::string(joined[rank].message()),
                HasSubstr("rank 1 of WORLD_SIZE 3 did not join within 2 s"));
  }
}

TEST(GlooCollectiveTest, LocalAddressTowardsLoopbackIsLoopback) {
  absl::StatusOr<std::string> address = LocalAddressTowards("127.0.0.1", 29500);
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(*address, "127.0.0.1");
  EXPECT_EQ(LocalAddressTowards("no-such-host.invalid", 29500).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace classifier
