// The one translation from absl::Status (used inside the service) to
// grpc::Status (the edge).
#ifndef CLASSIFIER_SERVER_STATUS_UTIL_H_
#define CLASSIFIER_SERVER_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <cstddef>

#include "absl/status/status.h"

namespace classifier {

// gRPC carries a status message in a header, and a client refuses headers above its metadata
// limit (8 KiB by default), replacing the status with a transport error of its own: a message
// that quotes a huge request field (a 1 MiB dataset name) would lose its code and its words.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

// The codes are the same set, so this keeps the code, and the message up to
// kMaxStatusMessageBytes (cut at a UTF-8 character's start, saying how much was cut).
::grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace classifier

#endif  // CLASSIFIER_SERVER_STATUS_UTIL_H_
