// The server's two names for a model (the README's glossary has the others: v1::Model at the
// API, TrainedModel in model/):
//   ModelRecord  a model as the server records it, one row of the store's models table;
//   LoadedModel  a ModelRecord with its network loaded (model_registry.h): what a request holds.
#ifndef CLASSIFIER_SERVER_MODEL_RECORD_H_
#define CLASSIFIER_SERVER_MODEL_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/metrics.h"
#include "classifier/v1/classifier.pb.h"
#include "model/network.h"

namespace classifier {

// A model as the server records it: what the Store persists and loads, what the registry keeps
// beside the network, and what ListModels answers (ToModelProto). Plain data, copied freely.
struct ModelRecord {
  std::string model_id;
  std::string job_id;  // Empty for imported models.
  std::string dataset;
  absl::Time created;
  EvaluationResult test_metrics;  // count == 0 when the model was never evaluated.
  std::string weights_path;       // A PyTorch state dict file.
  int64_t size_bytes = 0;
  std::string sha256;
  // The network's shape; filled in by ModelRegistry::Register from the network.
  Architecture architecture;
};

// A record as the API and the store's `model` column hold it (deployed is left false: the store
// keeps the deployed id on its own), and back; the weights path is not in the protobuf.
v1::Model ToModelProto(const ModelRecord& record);
ModelRecord FromModelProto(const v1::Model& model, std::string weights_path);

// NOT_FOUND naming the model_id: what every lookup of an unknown model answers.
absl::Status ModelNotFoundError(const std::string& model_id);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_MODEL_RECORD_H_
