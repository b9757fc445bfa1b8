#include "server/model_record.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/architecture_proto.h"

namespace classifier {

v1::Model ToModelProto(const ModelRecord& record) {
  v1::Model model;
  model.set_model_id(record.model_id);
  model.set_job_id(record.job_id);
  model.set_dataset(record.dataset);
  *model.mutable_created_time() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(record.created));
  model.mutable_test_metrics()->set_accuracy(record.test_metrics.accuracy);
  model.mutable_test_metrics()->set_loss(record.test_metrics.loss);
  model.mutable_test_metrics()->set_count(record.test_metrics.count);
  model.set_size_bytes(record.size_bytes);
  model.set_sha256(record.sha256);
  *model.mutable_architecture() = ToArchitectureProto(record.architecture);
  return model;
}

ModelRecord FromModelProto(const v1::Model& model, std::string weights_path) {
  ModelRecord record;
  record.model_id = model.model_id();
  record.job_id = model.job_id();
  record.dataset = model.dataset();
  record.created = absl::FromUnixNanos(
      google::protobuf::util::TimeUtil::TimestampToNanoseconds(model.created_time()));
  record.test_metrics.accuracy = model.test_metrics().accuracy();
  record.test_metrics.loss = model.test_metrics().loss();
  record.test_metrics.count = model.test_metrics().count();
  record.weights_path = std::move(weights_path);
  record.size_bytes = model.size_bytes();
  record.sha256 = model.sha256();
  record.architecture = ArchitectureFromStored(model.architecture(), model.has_architecture());
  return record;
}

absl::Status ModelNotFoundError(const std::string& model_id) {
  return absl::NotFoundError(absl::StrCat("no model with model_id \"", model_id, "\""));
}

}  // namespace classifier
