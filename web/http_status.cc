#include "web/http_status.h"

#include "absl/strings/str_cat.h"
#include "base/json_escape.h"

namespace classifier {

int HttpStatusFor(::grpc::StatusCode code) {
  switch (code) {
    case ::grpc::StatusCode::OK:
      return 200;
    case ::grpc::StatusCode::CANCELLED:
      return 499;
    case ::grpc::StatusCode::INVALID_ARGUMENT:
    case ::grpc::StatusCode::FAILED_PRECONDITION:
    case ::grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case ::grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    case ::grpc::StatusCode::NOT_FOUND:
      return 404;
    case ::grpc::StatusCode::ALREADY_EXISTS:
    case ::grpc::StatusCode::ABORTED:
      return 409;
    case ::grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case ::grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case ::grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case ::grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case ::grpc::StatusCode::UNAVAILABLE:
      return 503;
    default:  // UNKNOWN, INTERNAL, DATA_LOSS
      return 500;
  }
}

std::string StatusCodeName(::grpc::StatusCode code) {
  switch (code) {
    case ::grpc::StatusCode::OK:
      return "OK";
    case ::grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case ::grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case ::grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case ::grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case ::grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case ::grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case ::grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case ::grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case ::grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case ::grpc::StatusCode::ABORTED:
      return "ABORTED";
    case ::grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case ::grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case ::grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case ::grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case ::grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case ::grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::string ErrorJson(const ::grpc::Status& status) {
  return absl::StrCat("{\"error\":{\"code\":", HttpStatusFor(status.error_code()), ",\"status\":\"",
                      StatusCodeName(status.error_code()),
                      "\",\"message\":", JsonQuoted(status.error_message()), "}}\n");
}

}  // namespace classifier
