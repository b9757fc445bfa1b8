// Classification metrics computed from a confusion matrix. No LibTorch.
#ifndef CLASSIFIER_BASE_METRICS_H_
#define CLASSIFIER_BASE_METRICS_H_

#include <cstdint>
#include <vector>

namespace classifier {

struct ClassMetrics {
  double precision = 0;  // 0 when the class was never predicted.
  double recall = 0;     // 0 when the class has no images.
  double f1 = 0;         // 0 when precision + recall is 0.
  int64_t support = 0;   // Images whose true class is this one.
};

struct EvaluationResult {
  double accuracy = 0;  // Fraction in [0, 1].
  double loss = 0;      // Mean cross-entropy per image.
  int64_t count = 0;
  std::vector<ClassMetrics> per_class;
  // confusion[true][predicted].
  std::vector<std::vector<int64_t>> confusion;
};

// Fills accuracy, count, per_class and confusion from `confusion` (square, rows = true class);
// loss = loss_sum / count (0 when count is 0).
EvaluationResult MetricsFromConfusion(std::vector<std::vector<int64_t>> confusion, double loss_sum);

}  // namespace classifier

#endif  // CLASSIFIER_BASE_METRICS_H_
