// The one translation from absl::Status (used inside the service) to
// grpc::Status (the edge).
#ifndef CLASSIFIER_SERVER_STATUS_UTIL_H_
#define CLASSIFIER_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace classifier {

// The codes are the same set, so this keeps the code and the message as they
// are.
::grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_STATUS_UTIL_H_
