#include "base/metrics.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace classifier {
namespace {

using ::testing::DoubleEq;
using ::testing::ElementsAre;

TEST(MetricsTest, HandComputedThreeClasses) {
  // Rows are the true class, columns the prediction.
  const std::vector<std::vector<int64_t>> confusion = {
      {5, 1, 0},
      {2, 3, 1},
      {0, 0, 4},
  };
  const EvaluationResult result = MetricsFromConfusion(confusion, /*loss_sum=*/8.0);
  EXPECT_EQ(result.count, 16);
  EXPECT_DOUBLE_EQ(result.accuracy, 12.0 / 16.0);
  EXPECT_DOUBLE_EQ(result.loss, 0.5);
  EXPECT_EQ(result.confusion, confusion);
  ASSERT_EQ(result.per_class.size(), 3u);

  // Class 0: 5 right of 6 true, 5 right of 7 predicted.
  EXPECT_DOUBLE_EQ(result.per_class[0].precision, 5.0 / 7.0);
  EXPECT_DOUBLE_EQ(result.per_class[0].recall, 5.0 / 6.0);
  EXPECT_DOUBLE_EQ(result.per_class[0].f1, 10.0 / 13.0);
  EXPECT_EQ(result.per_class[0].support, 6);
  // Class 1: 3 of 6 true, 3 of 4 predicted.
  EXPECT_DOUBLE_EQ(result.per_class[1].precision, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(result.per_class[1].recall, 1.0 / 2.0);
  EXPECT_DOUBLE_EQ(result.per_class[1].f1, 3.0 / 5.0);
  EXPECT_EQ(result.per_class[1].support, 6);
  // Class 2: 4 of 4 true, 4 of 5 predicted.
  EXPECT_DOUBLE_EQ(result.per_class[2].precision, 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(result.per_class[2].recall, 1.0);
  EXPECT_DOUBLE_EQ(result.per_class[2].f1, 8.0 / 9.0);
  EXPECT_EQ(result.per_class[2].support, 4);
}

TEST(MetricsTest, ClassesNeverSeenOrNeverPredictedAreZero) {
  const EvaluationResult result = MetricsFromConfusion(
      {
          {3, 0, 1},  // Class 0.
          {2, 0, 0},  // Class 1: never predicted, so precision 0; recall 0.
          {0, 0, 0},  // Class 2: no images, so recall 0; predicted once wrongly, precision 0.
      },
      /*loss_sum=*/1.0);
  EXPECT_EQ(result.count, 6);
  EXPECT_DOUBLE_EQ(result.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(result.per_class[0].precision, 3.0 / 5.0);
  EXPECT_DOUBLE_EQ(result.per_class[0].recall, 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(result.per_class[1].precision, 0.0);
  EXPECT_DOUBLE_EQ(result.per_class[1].recall, 0.0);
  EXPECT_DOUBLE_EQ(result.per_class[1].f1, 0.0);
  EXPECT_EQ(result.per_class[1].support, 2);
  EXPECT_DOUBLE_EQ(result.per_class[2].precision, 0.0);
  EXPECT_DOUBLE_EQ(result.per_class[2].recall, 0.0);
  EXPECT_DOUBLE_EQ(result.per_class[2].f1, 0.0);
  EXPECT_EQ(result.per_class[2].support, 0);
}

TEST(MetricsTest, PerfectClassifier) {
  const EvaluationResult result = MetricsFromConfusion({{4, 0}, {0, 6}}, /*loss_sum=*/0.0);
  EXPECT_DOUBLE_EQ(result.accuracy, 1.0);
  EXPECT_DOUBLE_EQ(result.loss, 0.0);
  for (const ClassMetrics& metrics : result.per_class) {
    EXPECT_DOUBLE_EQ(metrics.precision, 1.0);
    EXPECT_DOUBLE_EQ(metrics.recall, 1.0);
    EXPECT_DOUBLE_EQ(metrics.f1, 1.0);
  }
}

TEST(MetricsTest, EmptyMatrixHasNoCountAndZeroLoss) {
  EvaluationResult result = MetricsFromConfusion({{0, 0}, {0, 0}}, /*loss_sum=*/0.0);
  EXPECT_EQ(result.count, 0);
  EXPECT_DOUBLE_EQ(result.accuracy, 0.0);
  EXPECT_DOUBLE_EQ(result.loss, 0.0);
  EXPECT_EQ(result.per_class.size(), 2u);
  result = MetricsFromConfusion({}, /*loss_sum=*/0.0);
  EXPECT_EQ(result.count, 0);
  EXPECT_TRUE(result.per_class.empty());
}

TEST(MetricsTest, RaggedMatrixIsPaddedNotOverrun) {
  const EvaluationResult result = MetricsFromConfusion({{1}, {0, 2, 1}}, /*loss_sum=*/0.0);
  ASSERT_EQ(result.confusion.size(), 3u);
  EXPECT_THAT(result.confusion[0], ElementsAre(1, 0, 0));
  EXPECT_THAT(result.confusion[2], ElementsAre(0, 0, 0));
  EXPECT_EQ(result.count, 4);
  EXPECT_THAT(result.accuracy, DoubleEq(0.75));
}

}  // namespace
}  // namespace classifier
