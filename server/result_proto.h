// The service's answers in protobuf: plain C++ results (Predict's probabilities, an evaluation,
// a dataset's listing and samples) written into the messages the API returns. The handlers
// validate and compute; these only translate, and never fail.
#ifndef CLASSIFIER_SERVER_RESULT_PROTO_H_
#define CLASSIFIER_SERVER_RESULT_PROTO_H_

#include <vector>

#include "base/metrics.h"
#include "classifier/v1/classifier.pb.h"
#include "server/dataset_catalog.h"

namespace classifier {

// Adds a Predict call's predictions from its probabilities (count x num_classes, image after
// image): the most likely label, and the `top_k` (in [1, num_classes]) most likely ones.
void WritePredictions(const std::vector<float>& probabilities, int count, int num_classes,
                      int top_k, v1::PredictResponse* response);

// The measures of an evaluation: accuracy, loss, count, per-class metrics, confusion matrix.
void WriteEvaluation(const EvaluationResult& result, v1::EvaluateResponse* response);

// A dataset as ListDatasets and RegisterDataset show it (`error` when it is not usable).
void ToDatasetProto(const DatasetListing& listing, v1::DatasetInfo* out);

// Sampled images, their labels and indices; the dataset's name and split are the caller's.
void WriteDatasetSamples(const DatasetSamples& samples, v1::GetDatasetSamplesResponse* response);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_RESULT_PROTO_H_
