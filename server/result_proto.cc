#include "server/result_proto.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>

#include "google/protobuf/util/time_util.h"

namespace classifier {

void WritePredictions(const std::vector<float>& probabilities, int count, int num_classes,
                      int top_k, v1::PredictResponse* response) {
  std::vector<int> order(num_classes);
  response->mutable_predictions()->Reserve(count);
  for (int i = 0; i < count; ++i) {
    const float* row = probabilities.data() + static_cast<size_t>(i) * num_classes;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [row](int a, int b) { return row[a] > row[b]; });
    v1::Prediction* prediction = response->add_predictions();
    prediction->set_label(order[0]);
    prediction->set_probability(row[order[0]]);
    for (int k = 0; k < top_k; ++k) {
      v1::LabelProbability* entry = prediction->add_top_k();
      entry->set_label(order[k]);
      entry->set_probability(row[order[k]]);
    }
  }
}

void WriteEvaluation(const EvaluationResult& result, v1::EvaluateResponse* response) {
  response->set_accuracy(result.accuracy);
  response->set_loss(result.loss);
  response->set_count(result.count);
  for (size_t label = 0; label < result.per_class.size(); ++label) {
    const ClassMetrics& metrics = result.per_class[label];
    v1::ClassMetrics* out = response->add_per_class();
    out->set_label(static_cast<int32_t>(label));
    out->set_precision(metrics.precision);
    out->set_recall(metrics.recall);
    out->set_f1(metrics.f1);
    out->set_support(metrics.support);
  }
  for (const std::vector<int64_t>& row : result.confusion) {
    response->add_confusion_matrix()->mutable_counts()->Add(row.begin(), row.end());
  }
}

void ToDatasetProto(const DatasetListing& listing, v1::DatasetInfo* out) {
  out->set_name(listing.name);
  out->set_path(listing.path);
  out->set_builtin(listing.builtin);
  if (listing.registered_unix_ms > 0) {
    *out->mutable_registered_time() =
        google::protobuf::util::TimeUtil::MillisecondsToTimestamp(listing.registered_unix_ms);
  }
  if (!listing.info.ok()) {
    out->set_error(std::string(listing.info.status().message()));
    return;
  }
  const DatasetInfo& info = *listing.info;
  out->set_train_images(info.train_count);
  out->set_test_images(info.test_count);
  out->set_num_classes(info.num_classes);
  out->set_image_height(static_cast<int32_t>(info.image_height));
  out->set_image_width(static_cast<int32_t>(info.image_width));
  for (int64_t count : info.train_class_counts) out->add_train_class_counts(count);
  for (int64_t count : info.test_class_counts) out->add_test_class_counts(count);
}

void WriteDatasetSamples(const DatasetSamples& samples, v1::GetDatasetSamplesResponse* response) {
  response->set_image_height(static_cast<int32_t>(samples.rows));
  response->set_image_width(static_cast<int32_t>(samples.cols));
  response->set_pixels(std::string(samples.pixels.begin(), samples.pixels.end()));
  for (int label : samples.labels) response->add_labels(label);
  for (int64_t index : samples.indices) response->add_indices(index);
}

}  // namespace classifier
