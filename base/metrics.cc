#include "base/metrics.h"

#include <algorithm>
#include <utility>

namespace classifier {

EvaluationResult MetricsFromConfusion(std::vector<std::vector<int64_t>> confusion,
                                      double loss_sum) {
  // The contract says square; pad a ragged matrix with zeros rather than read past a row.
  size_t n = confusion.size();
  for (const std::vector<int64_t>& row : confusion) n = std::max(n, row.size());
  confusion.resize(n);
  for (std::vector<int64_t>& row : confusion) row.resize(n, 0);

  EvaluationResult result;
  std::vector<int64_t> predicted(n, 0);  // Column sums.
  int64_t correct = 0;
  for (size_t t = 0; t < n; ++t) {
    for (size_t p = 0; p < n; ++p) {
      result.count += confusion[t][p];
      predicted[p] += confusion[t][p];
    }
    correct += confusion[t][t];
  }

  result.per_class.resize(n);
  for (size_t c = 0; c < n; ++c) {
    ClassMetrics& metrics = result.per_class[c];
    const int64_t true_positives = confusion[c][c];
    for (size_t p = 0; p < n; ++p) metrics.support += confusion[c][p];
    if (predicted[c] > 0) metrics.precision = static_cast<double>(true_positives) / predicted[c];
    if (metrics.support > 0) {
      metrics.recall = static_cast<double>(true_positives) / metrics.support;
    }
    if (metrics.precision + metrics.recall > 0) {
      metrics.f1 = 2 * metrics.precision * metrics.recall / (metrics.precision + metrics.recall);
    }
  }
  if (result.count > 0) {
    result.accuracy = static_cast<double>(correct) / result.count;
    result.loss = loss_sum / result.count;
  }
  result.confusion = std::move(confusion);
  return result;
}

}  // namespace classifier
